//! A fresh PostgreSQL database per test and the records tests insert: set
//! `PAYRAIL_TEST_DATABASE_URL` to a role that may create databases.

use super::*;
use crate::domain::{BillStatus, DmtCharges, DmtStatus, ReferenceId};

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

/// A change note from `source` at a fixed time.
pub(super) fn note(source: &str) -> ChangeNote {
    ChangeNote { source: source.into(), reason: None, at: Timestamp::from_unix(1_700_000_000) }
}

/// A progress callback that ignores progress.
pub(super) fn no_progress() -> Arc<dyn Fn(u64) + Send + Sync> {
    Arc::new(|_| {})
}

/// A partner to add, with a fixed number or the next one.
pub(super) fn new_partner(number: Option<i64>) -> NewPartner {
    NewPartner {
        number,
        name: "Test partner".into(),
        require_token: true,
        allowlist: IpAllowlist::default(),
        secret: SealedSecret(vec![1, 2, 3]),
        authorised_key_hash: None,
        created_at: Timestamp::from_unix(1_600_000_000),
    }
}

/// An in-process transfer of ₹1,000 (`ackno` 0 asks for a new one).
pub(super) fn transfer(partner: i64, ackno: i64, reference: &str) -> anyhow::Result<DmtTransfer> {
    let at = Timestamp::from_unix(1_650_000_000);
    Ok(DmtTransfer {
        ackno,
        partner: RegistrationId::new(partner),
        reference: ReferenceId::parse(reference)?,
        amount: Paise::rupees(1000),
        account: "1234567890".into(),
        utr: None,
        status: DmtStatus::InProcess,
        charges: DmtCharges::compute(Paise::new(1000), Paise::new(350), at),
        created_at: at,
        refund_txn_id: None,
        refunded_at: None,
    })
}

/// A pending bill payment of ₹250 (`txnid` 0 asks for a new one).
pub(super) fn bill(partner: i64, txnid: i64, reference: &str) -> anyhow::Result<BillPayment> {
    Ok(BillPayment {
        txnid,
        partner: RegistrationId::new(partner),
        reference: ReferenceId::parse(reference)?,
        operator_name: "Power Co".into(),
        ca_number: "CA-1".into(),
        amount: Paise::rupees(250),
        ad1: Some("extra".into()),
        ad2: None,
        ad3: None,
        commission: Paise::new(125),
        tds: Paise::new(3),
        status: BillStatus::Pending,
        operator_ref: None,
        created_at: Timestamp::from_unix(1_650_000_000),
        refund_txn_id: None,
        refunded_at: None,
    })
}

/// `count` new transfers referenced `prefix0`, `prefix1`, …
pub(super) fn transfers(partner: i64, prefix: &str, count: usize) -> anyhow::Result<Vec<DmtTransfer>> {
    (0..count).map(|i| transfer(partner, 0, &format!("{prefix}{i}"))).collect()
}
