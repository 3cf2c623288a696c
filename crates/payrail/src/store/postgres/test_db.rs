//! A fresh PostgreSQL database per test (set `PAYRAIL_TEST_DATABASE_URL` to
//! a role that may create databases), and the records tests insert.

use super::*;

/// A store on a fresh database, dropped by [`TestDb::finish`].
pub(super) struct TestDb {
    /// The store, migrated.
    pub(super) store: PostgresStore,
    /// How to connect to the database.
    pub(super) config: tokio_postgres::Config,
    /// A connection to the server's maintenance database.
    pub(super) admin: tokio_postgres::Client,
    /// The test database's name.
    pub(super) name: String,
}

impl TestDb {
    /// A fresh database and its store; `None` (the test SKIPs) without a server.
    pub(super) async fn create() -> anyhow::Result<Option<TestDb>> {
        let Ok(url) = std::env::var("PAYRAIL_TEST_DATABASE_URL") else {
            eprintln!("SKIPPED: PAYRAIL_TEST_DATABASE_URL not set");
            return Ok(None);
        };
        let mut config: tokio_postgres::Config = url.parse()?;
        let (admin, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let name = format!("payrail_test_{:016x}", rand::random::<u64>());
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        config.dbname(&name);
        let store = PostgresStore::connect_with(config.clone()).await?;
        Ok(Some(TestDb { store, config, admin, name }))
    }

    /// Closes the store and drops the database.
    pub(super) async fn finish(self) -> anyhow::Result<()> {
        self.store.pool.close();
        self.admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await?;
        Ok(())
    }
}

/// Declares each named test: on a fresh database (a SKIP without a server)
/// it runs `cases::<name>(&store)`, the test's body, then drops the
/// database. After `partner:`, the database first gets partner
/// [`P`](super::tests::P).
macro_rules! postgres_tests {
    (partner: $($name:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $name() -> anyhow::Result<()> {
            use $crate::store::postgres::{test_db, tests::P};
            let Some(db) = test_db::TestDb::create().await? else { return Ok(()) };
            db.store.insert_partner(test_db::new_partner(Some(P))).await?;
            cases::$name(&db.store).await?;
            db.finish().await
        }
    )+};
    ($($name:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $name() -> anyhow::Result<()> {
            let Some(db) = $crate::store::postgres::test_db::TestDb::create().await? else { return Ok(()) };
            cases::$name(&db.store).await?;
            db.finish().await
        }
    )+};
}
pub(super) use postgres_tests;

pub(super) use crate::store::transactions::conformance::{bill, new_partner, no_progress, note, transfer, transfers};
