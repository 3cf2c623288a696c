//! The production engine: PostgreSQL through tokio-postgres and a deadpool
//! pool, shareable by several payrail instances.
//!
//! Point lookups run statements prepared once per connection
//! (`prepare_cached`). A state change locks its row (`SELECT … FOR UPDATE`)
//! and commits together with its history row, so instances sharing the
//! database never lose an update. Batch inserts send 5,000 rows per
//! statement as one array per column (`INSERT … SELECT … FROM UNNEST`), which
//! loads a million rows in seconds where one statement per row takes minutes.
//!
//! Token `reqid`s live in a table (`seen_reqids`), not in memory as on
//! SQLite: every instance sharing the database must see every replay.
//!
//! Money moves only together with a ledger journal. A debit is a guarded
//! `UPDATE wallets … RETURNING`, whose row lock serialises the partner's
//! debits until the transaction ends; checks that must see every earlier
//! debit (the monthly limit) run after it, under READ COMMITTED.
//!
//! Upstream poll jobs and partner events are work queues that every
//! instance's workers share. A claim is one statement, `UPDATE … FROM (SELECT
//! … FOR UPDATE SKIP LOCKED)`, that leases what it picked: concurrent claims
//! pass over each other's rows instead of waiting or taking them twice, and
//! only the lease holder can settle a job or an event afterwards.
//!
//! This file holds the pool and the error mapping; each aggregate's
//! implementation is in its own file (`partners.rs`, `transactions.rs`,
//! `ledger.rs`, `remittance.rs`, `upstream_work.rs`), and the schema in
//! `migrations/`, one `.sql` file per version.

mod chain;
mod columns;
mod feed;
mod health;
mod kyc;
mod ledger;
mod migrations;
mod operators;
mod partners;
mod penny_drops;
mod reconcile;
mod remittance;
mod search;
#[cfg(test)]
mod test_db;
mod transactions;
mod upstream_work;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Hook, HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::types::{FromSqlOwned, ToSql, Type};
use tokio_postgres::{IsolationLevel, Row};

use super::columns::BadState;
use super::remittance::sql::ROUTE_USAGE;
use upstream_work::{end_poll, insert_event, schedule_poll};

use super::transactions::{bill_columns, dmt_columns};
use super::{BeneficiaryDeletion, CallbackSecretInstall, DmtDebit, HistoryNote, NewFeePlan, OperatorEdit};
use super::{ChangeError, ChangeNote, InsertError, NewPartner, Store, StoreError, StoreResult};
#[cfg(test)]
use super::{Claims, RecordStore};
use super::{ConsoleLogin, OtpAttempt, PartnerAccess, PennyDropOutcome, SecretRotation, SeenReqid};
use super::{DebitError, Debited, LedgerAudit};
use super::{LedgerStore, PartnerStore, RemittanceStore, TransactionStore, UpstreamWorkStore};
use crate::domain::event::{
    self, CallbackSecrets, DeliveryAttempt, EventFilter, EventOutcome, EventState, PartnerEvent, PollJob, PollNext,
};
use crate::domain::fee_plan::FeePlanVersion;
use crate::domain::ledger::{Account, Journal, Statement, WalletMove};
use crate::domain::otp::{OtpCheck, OtpPurpose, OtpRecord};
#[cfg(test)]
use crate::domain::partner::SealedSecret;
use crate::domain::remitter::{Bank, Beneficiary, DmtRoute, MobileNumber, MonthlyLimit, Remitter};
use crate::domain::txn_id::TxnNumbers;
#[cfg(test)]
use crate::domain::{bbps::BillChange, dmt::DmtChange};
use crate::domain::{
    BillPayment, DmtTransfer, HistoryEntry, Paise, Partner, PartnerStatus, RegistrationId, Timestamp, TxnKind,
};
use ledger::{charge_wallet, insert_journal, pay_back};
use partners::{partner_at, PARTNER_WIDTH};

/// How many connections the pool holds.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection before the store reports
/// itself unavailable, rather than hanging while the database is down.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection unused for longer is verified before it is handed out.
const VERIFY_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Asks a connection last taken `idle` ago an empty query, if that is
/// longer than [`VERIFY_IDLE_AFTER`]; a connection that fails it is dropped
/// and the pool takes or makes another. Under load connections come back
/// within milliseconds and cost no round trip (verifying every one was a
/// round trip per statement run outside a transaction, and per group of
/// bill payments).
async fn verify_idle(client: &mut deadpool_postgres::ClientWrapper, idle: Duration) -> Result<(), HookError> {
    if idle > VERIFY_IDLE_AFTER {
        client.simple_query("").await.map_err(HookError::Backend)?;
    }
    Ok(())
}

// Declared after the column macros, which their SQL uses.
mod debited;
mod lookup;
mod lookup_batches;

/// The PostgreSQL engine.
pub struct PostgresStore {
    pool: Pool,
    /// Partners as status lookups last read them.
    partners_seen: lookup::PartnersSeen,
    /// The connections partner calls share (see `lookup.rs`).
    lanes: lookup::Lanes,
    /// The tasks that run status lookups in batches.
    lookup_batches: lookup_batches::LookupBatches,
    /// The group committers of bill payments paid from the wallet.
    bill_writers: debited::BillWriters,
    /// How new transactions are numbered.
    numbers: TxnNumbers,
    /// The installation's id, part of every upstream reference.
    installation: Arc<str>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`)
    /// and migrates it. TLS follows the URL's `sslmode` and `sslrootcert`, as
    /// libpq's do (see [`super::postgres_tls`]).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (config, tls) = super::postgres_tls::from_url(url)?;
        Self::connect_tls(config, tls).await
    }

    #[cfg(test)]
    async fn connect_with(config: tokio_postgres::Config) -> anyhow::Result<Self> {
        let tls = super::postgres_tls::RustlsConnect::new(super::postgres_tls::TlsMode::Prefer, None)?;
        Self::connect_tls(config, tls).await
    }

    async fn connect_tls(
        config: tokio_postgres::Config,
        tls: super::postgres_tls::RustlsConnect,
    ) -> anyhow::Result<Self> {
        // A connection taken again soon after its last use is only checked
        // for a closed socket; one idle for longer is asked an empty query
        // first (`verify_idle`), so that a server restart is noticed before
        // a request's statement fails on it.
        let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .pre_recycle(Hook::async_fn(|client, metrics| Box::pin(verify_idle(client, metrics.last_used()))))
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .context("Failed to build the PostgreSQL connection pool")?;
        let mut client = pool.get().await.context("Failed to connect to PostgreSQL")?;
        migrations::migrate(&mut client).await?;
        let numbers = transactions::txn_numbers(&client).await?;
        let what = "Failed to read the installation id";
        let installation: String = query_one(&client, crate::store::upstream_work::sql::INSTALLATION_ID, &[], what)
            .await?
            .try_get(0)
            .context(what)?;
        drop(client);
        let installation: Arc<str> = installation.into();
        let bill_writers = debited::BillWriters::start(&pool, &numbers, &installation);
        let lookup_batches = lookup_batches::LookupBatches::start(&pool);
        Ok(PostgresStore {
            pool,
            numbers,
            partners_seen: lookup::PartnersSeen::default(),
            lanes: lookup::Lanes::default(),
            lookup_batches,
            bill_writers,
            installation,
        })
    }

    /// A pooled connection, or "unavailable" if none comes in time.
    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// `.context(…)` for database results that keeps "unavailable" (a lost or
/// refused connection, worth a retry) apart from every other failure.
trait StoreContext<T> {
    /// Wraps the error with `what` ("Failed to …") as a [`StoreError`].
    fn store_context(self, what: &'static str) -> StoreResult<T>;
}

impl<T> StoreContext<T> for Result<T, tokio_postgres::Error> {
    fn store_context(self, what: &'static str) -> StoreResult<T> {
        self.map_err(|error| store_error(error, what))
    }
}

/// Wraps a database error with `what` ("Failed to …"), classified.
fn store_error(error: tokio_postgres::Error, what: &'static str) -> StoreError {
    let unavailable = connection_lost(&error);
    let error = anyhow::Error::new(error).context(what);
    if unavailable {
        StoreError::Unavailable(error)
    } else {
        StoreError::Other(error)
    }
}

/// Whether `error` means the server could not be reached or dropped us,
/// rather than that the query itself failed.
fn connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Class 08 is "connection exception"; 57P0x are shutdowns and
        // start-ups; 53300 is "too many connections".
        Some(code) => code.code().starts_with("08") || matches!(code.code(), "57P01" | "57P02" | "57P03" | "53300"),
        None => std::error::Error::source(error).is_some_and(|cause| cause.is::<std::io::Error>()),
    }
}

/// Maps a failure to get a pooled connection. Every one of them but a
/// misconfigured pool means the database cannot be reached right now.
fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Timeout(_) | PoolError::Closed | PoolError::Backend(_) => {
            StoreError::Unavailable(anyhow::Error::new(error).context("Failed to get a PostgreSQL connection"))
        }
        other => StoreError::Other(anyhow::Error::new(other).context("Failed to get a PostgreSQL connection")),
    }
}

/// Defines a function that prepares a statement (once per connection) and
/// runs it with the client's method of the same name, naming `what` failed.
macro_rules! prepared {
    ($(#[$doc:meta])* $name:ident -> $out:ty) => {
        $(#[$doc])*
        async fn $name(
            client: &impl GenericClient,
            sql: &str,
            params: &[&(dyn ToSql + Sync)],
            what: &'static str,
        ) -> StoreResult<$out> {
            let statement = client.prepare_cached(sql).await.store_context(what)?;
            client.$name(&statement, params).await.store_context(what)
        }
    };
}

prepared!(
    /// Runs a statement that returns at most one row.
    query_opt -> Option<Row>
);
prepared!(
    /// Runs a statement that returns exactly one row.
    query_one -> Row
);
prepared!(
    /// Runs a statement that returns rows.
    query -> Vec<Row>
);
prepared!(
    /// Runs a statement; returns the rows affected.
    execute -> u64
);

/// Runs a statement planned for these very parameters: an unnamed statement
/// in one round trip, never a cached plan. For writes keyed by arrays of row
/// ids: a cached generic plan made while the table was small (a fresh store)
/// hash-joins over a scan of the whole table, and keeps doing so as the
/// table grows until the next `ANALYZE`.
async fn execute_planned(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    what: &'static str,
) -> StoreResult<u64> {
    tx.execute_typed(sql, params).await.store_context(what)
}

/// Reads every row with `decode`; a row that does not decode is a fault (`what`).
fn decode_all<T>(
    rows: &[Row],
    decode: impl FnMut(&Row) -> anyhow::Result<T>,
    what: &'static str,
) -> StoreResult<Vec<T>> {
    rows.iter().map(decode).collect::<anyhow::Result<_>>().context(what).map_err(StoreError::Other)
}

/// Decodes the row, if any; a row that does not decode is a fault.
fn decode<T>(row: Option<Row>, from_row: fn(&Row) -> anyhow::Result<T>) -> StoreResult<Option<T>> {
    row.as_ref().map(from_row).transpose().context("Failed to read a stored row").map_err(StoreError::Other)
}

/// Why a transaction that moves a wallet stopped. Nothing was written.
enum Stop {
    /// A refusal or failure, reported as it is.
    Refused(DebitError),
    /// The wallet holds too little. Its balance is read after the rollback:
    /// an aborted transaction can read nothing.
    Overdrawn,
}

impl From<DebitError> for Stop {
    fn from(error: DebitError) -> Self {
        Stop::Refused(error)
    }
}

impl From<StoreError> for Stop {
    /// A foreign-key violation means an unknown partner (every new row names
    /// one), the wallets' CHECK an overdrawn wallet; anything else is a failure.
    fn from(error: StoreError) -> Self {
        match sql_state(&error) {
            Some(&SqlState::FOREIGN_KEY_VIOLATION) => Stop::Refused(DebitError::UnknownPartner),
            Some(&SqlState::CHECK_VIOLATION) => Stop::Overdrawn,
            _ => Stop::Refused(DebitError::Store(error)),
        }
    }
}

/// The SQLSTATE of the database error inside `error`, if it holds one.
fn sql_state(error: &StoreError) -> Option<&SqlState> {
    let (StoreError::Unavailable(error) | StoreError::Other(error)) = error;
    error.downcast_ref::<tokio_postgres::Error>().and_then(tokio_postgres::Error::code)
}

/// Refuses `MonthlyLimit` if the transfer would take the remitter past the
/// limit on the route's pipe. Run after the wallet debit: its row lock
/// serialises the partner's transfers, so every earlier one has committed
/// and this statement's snapshot sees it.
async fn check_limit(
    tx: &Transaction<'_>,
    transfer: &DmtTransfer,
    route: &DmtRoute,
    limit: &MonthlyLimit,
) -> Result<(), Stop> {
    let params: [&(dyn ToSql + Sync); 4] =
        [&transfer.partner.number(), &route.remitter.as_str(), &route.bank.number(), &limit.since.unix()];
    let row = query_one(tx, ROUTE_USAGE, &params, "Failed to sum the remitter's transfers").await?;
    let used = Paise::new(row.try_get(0).store_context("Failed to read the remitter's usage")?);
    if used + transfer.amount > limit.limit {
        let remaining = (limit.limit - used).max(Paise::ZERO);
        return Err(Stop::Refused(DebitError::MonthlyLimit { remaining }));
    }
    Ok(())
}

/// Begins a `REPEATABLE READ READ ONLY` transaction: several reads that see one snapshot.
async fn snapshot(client: &mut deadpool_postgres::Client) -> StoreResult<Transaction<'_>> {
    let builder = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true);
    builder.start().await.store_context("Failed to begin a consistent read")
}

/// Reads the first two columns of an audit row.
fn pair<A: FromSqlOwned, B: FromSqlOwned>(row: &Row) -> Result<(A, B), tokio_postgres::Error> {
    Ok((row.try_get(0)?, row.try_get(1)?))
}

#[async_trait]
impl Store for PostgresStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }
}

impl PostgresStore {
    /// Reports how a wallet transaction ended; an overdrawn wallet's balance
    /// is read now, after the rollback.
    async fn settle<T: Send>(&self, partner: RegistrationId, result: Result<T, Stop>) -> Result<T, DebitError> {
        match result {
            Ok(value) => Ok(value),
            Err(Stop::Refused(error)) => Err(error),
            Err(Stop::Overdrawn) => Err(DebitError::InsufficientFunds { balance: self.wallet_balance(partner).await? }),
        }
    }
}

#[cfg(test)]
mod tests {
    //! These run against a real server: set `PAYRAIL_TEST_DATABASE_URL` to a
    //! role that may create databases. Each test gets a database of its own.

    use super::ledger::debit_journal;
    pub(in crate::store::postgres) use super::test_db::*;
    use super::*;
    use crate::domain::ledger::Purpose;
    use crate::domain::remitter::TransferMode;
    use crate::domain::DmtStatus;

    pub(in crate::store::postgres) const P: i64 = 554;

    pub(in crate::store::postgres) fn partner() -> RegistrationId {
        RegistrationId::new(P)
    }

    pub(in crate::store::postgres) fn at(unix: i64) -> Timestamp {
        Timestamp::from_unix(unix)
    }

    /// What [`transfer`] costs the wallet: ₹1000 and a ₹10 charge.
    pub(in crate::store::postgres) const TRANSFER_COST: i64 = 100_000 + 1_000;

    pub(super) fn route(bank: Bank) -> anyhow::Result<DmtRoute> {
        Ok(DmtRoute { remitter: MobileNumber::parse("9876543210")?, beneficiary_id: 1, bank, mode: TransferMode::Imps })
    }

    pub(super) fn no_limit() -> MonthlyLimit {
        MonthlyLimit { since: at(0), limit: Paise::rupees(100_000_000) }
    }

    pub(in crate::store::postgres) async fn top_up(
        store: &PostgresStore,
        paise: i64,
        when: i64,
    ) -> Result<WalletMove, DebitError> {
        store.post_journal(Journal::top_up(partner(), Paise::new(paise), "top-up".into(), at(when))).await
    }

    pub(in crate::store::postgres) async fn debit(
        store: &PostgresStore,
        reference: &str,
    ) -> Result<Debited<DmtTransfer>, DebitError> {
        let transfer = transfer(P, 0, reference).map_err(|e| DebitError::Store(e.into()))?;
        let route = route(Bank::Bank1).map_err(|e| DebitError::Store(e.into()))?;
        store
            .create_dmt_debited(DmtDebit { transfer, route, limit: no_limit(), note: note("api"), poll_at: None })
            .await
    }

    pub(in crate::store::postgres) async fn balance(store: &PostgresStore) -> anyhow::Result<i64> {
        Ok(store.wallet_balance(partner()).await?.get())
    }

    pub(in crate::store::postgres) async fn raw_sql(store: &PostgresStore, sql: &str) -> anyhow::Result<()> {
        store.pool.get().await?.batch_execute(sql).await?;
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_debits_never_overdraw_the_wallet() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        db.store.insert_partner(new_partner(Some(P))).await?;
        top_up(&db.store, 20 * TRANSFER_COST + 999, 100).await?;
        let shared = Arc::new(PostgresStore::connect_with(db.config.clone()).await?);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let store = Arc::clone(&shared);
            tasks.spawn(async move { debit(&store, &format!("C{i}")).await });
        }
        let (mut debited, mut refused) = (0, 0);
        while let Some(result) = tasks.join_next().await {
            match result? {
                Ok(d) => {
                    assert!(d.wallet.closing.get() >= 0);
                    debited += 1;
                }
                Err(DebitError::InsufficientFunds { balance }) => {
                    assert!(balance.get() >= 0 && balance.get() < TRANSFER_COST);
                    refused += 1;
                }
                Err(other) => return Err(other.into()),
            }
        }
        shared.pool.close();
        assert_eq!((debited, refused), (20, 30));
        assert_eq!(balance(&db.store).await?, 999);
        assert_eq!(db.store.counts().await?, (20, 0));
        assert_eq!(db.store.audit().await?, LedgerAudit { journals: 21, ..LedgerAudit::default() });
        db.finish().await
    }

    #[tokio::test]
    async fn concurrent_transfers_never_pass_the_monthly_limit() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        db.store.insert_partner(new_partner(Some(P))).await?;
        top_up(&db.store, 30 * TRANSFER_COST, 100).await?;
        let shared = Arc::new(PostgresStore::connect_with(db.config.clone()).await?);
        let limit = MonthlyLimit { since: at(0), limit: Paise::rupees(5_000) };
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let (store, limit) = (Arc::clone(&shared), limit.clone());
            let (transfer, route) = (transfer(P, 0, &format!("M{i}"))?, route(Bank::Bank2)?);
            tasks.spawn(async move {
                store.create_dmt_debited(DmtDebit { transfer, route, limit, note: note("api"), poll_at: None }).await
            });
        }
        let mut debited = 0;
        while let Some(result) = tasks.join_next().await {
            match result? {
                Ok(_) => debited += 1,
                Err(DebitError::MonthlyLimit { remaining }) => assert_eq!(remaining, Paise::ZERO),
                Err(other) => return Err(other.into()),
            }
        }
        shared.pool.close();
        assert_eq!(debited, 5);
        assert_eq!(balance(&db.store).await?, 25 * TRANSFER_COST);
        db.finish().await
    }

    postgres_tests!(partner: a_debited_transfer_takes_amount_and_charge_once_per_reference, the_monthly_limit_counts_the_pipe_since_the_month_began, a_refund_credits_the_wallet_exactly_once);

    /// The bodies of the tests above, each run on a store of its own.
    mod cases {
        use super::*;

        pub(super) async fn a_debited_transfer_takes_amount_and_charge_once_per_reference(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            let refused = debit(store, "D1").await;
            assert!(matches!(refused, Err(DebitError::InsufficientFunds { balance }) if balance == Paise::ZERO));
            top_up(store, 2 * TRANSFER_COST + 5, 100).await?;
            let debited = debit(store, "D1").await?;
            assert!(debited.record.ackno > 0);
            assert_eq!(debited.wallet.opening.get() - debited.wallet.closing.get(), TRANSFER_COST);
            assert_eq!(store.dmt_route(debited.record.ackno).await?, Some(route(Bank::Bank1)?));
            let (stored, history) =
                store.dmt_with_history(debited.record.ackno).await?.ok_or_else(|| anyhow::anyhow!("missing"))?;
            assert_eq!(stored, debited.record);
            assert_eq!(history.len(), 1);

            assert!(matches!(debit(store, "D1").await, Err(DebitError::Duplicate(r)) if r == "D1"));
            assert_eq!(balance(store).await?, TRANSFER_COST + 5);
            assert_eq!(store.counts().await?, (1, 0));

            let mut client = store.pool.get().await?;
            let tx = client.transaction().await?;
            let journal = debit_journal(&tx, TxnKind::Dmt, debited.record.ackno).await?;
            assert!(journal.is_some_and(|j| j.is_balanced() && j.wallet_change().get() == -TRANSFER_COST));
            drop(tx);

            let bill = store.create_bill_debited(bill(P, 0, "B1")?, note("api"), None).await?;
            assert_eq!(bill.wallet.closing.get(), TRANSFER_COST + 5 - 25_000);
            let dup = store.create_bill_debited(self::bill(P, 0, "B1")?, note("api"), None).await;
            assert!(matches!(dup, Err(DebitError::Duplicate(_))));
            let stranger = store.create_bill_debited(self::bill(999, 0, "B2")?, note("api"), None).await;
            assert!(matches!(stranger, Err(DebitError::UnknownPartner)));
            let audit = store.audit().await?;
            assert_eq!(audit, LedgerAudit { journals: 3, ..LedgerAudit::default() });
            Ok(())
        }

        pub(super) async fn the_monthly_limit_counts_the_pipe_since_the_month_began(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            top_up(store, 10 * TRANSFER_COST, 100).await?;
            let limit = MonthlyLimit { since: at(1_600_000_000), limit: Paise::rupees(1_500) };
            let send = |reference: &str, bank: Bank| {
                let transfer = transfer(P, 0, reference);
                let route = route(bank);
                let limit = limit.clone();
                async move {
                    anyhow::Ok(
                        store
                            .create_dmt_debited(DmtDebit {
                                transfer: transfer?,
                                route: route?,
                                limit,
                                note: note("api"),
                                poll_at: None,
                            })
                            .await,
                    )
                }
            };
            send("L1", Bank::Bank1).await??;
            let refused = send("L2", Bank::Bank1).await?;
            assert!(matches!(refused, Err(DebitError::MonthlyLimit { remaining }) if remaining == Paise::rupees(500)));
            assert_eq!(balance(store).await?, 9 * TRANSFER_COST);
            send("L3", Bank::Bank2).await??;
            let mobile = MobileNumber::parse("9876543210")?;
            let usage = store.remitter_usage(partner(), &mobile, at(1_600_000_000)).await?;
            assert_eq!(
                usage,
                crate::domain::remitter::PerBank {
                    bank1: Paise::rupees(1_000),
                    bank2: Paise::rupees(1_000),
                    bank3: Paise::ZERO
                }
            );
            // Transfers before `since` do not count; refunded ones neither.
            assert_eq!(
                store.remitter_usage(partner(), &mobile, at(1_700_000_000)).await?,
                crate::domain::remitter::PerBank::default()
            );
            raw_sql(store, "UPDATE dmt_transfers SET status = 0 WHERE reference_id = 'L1'").await?;
            send("L4", Bank::Bank1).await??;
            Ok(())
        }

        pub(super) async fn a_refund_credits_the_wallet_exactly_once(store: &PostgresStore) -> anyhow::Result<()> {
            top_up(store, TRANSFER_COST + 100_000, 100).await?;
            let ackno = debit(store, "R1").await?.record.ackno;
            assert_eq!(balance(store).await?, 100_000);
            store.change_dmt(ackno, DmtChange::Fail, note("admin")).await?;
            assert_eq!(balance(store).await?, 100_000);
            let refund = DmtChange::Refund { refund_txn_id: None };
            let refunded = store.change_dmt(ackno, refund.clone(), note("admin")).await?;
            assert_eq!(refunded.status, DmtStatus::Refunded);
            assert_eq!(balance(store).await?, TRANSFER_COST + 100_000);
            let again = store.change_dmt(ackno, refund.clone(), note("admin")).await;
            assert!(matches!(again, Err(ChangeError::Forbidden(_))));
            assert_eq!(balance(store).await?, TRANSFER_COST + 100_000);

            // An imported transfer was never paid from the wallet: no money moves.
            let imported =
                store.insert_dmt_batch(vec![transfer(P, 0, "IMP")?], note("import"), no_progress()).await?[0];
            store.change_dmt(imported, DmtChange::Fail, note("admin")).await?;
            store.change_dmt(imported, refund, note("admin")).await?;
            assert_eq!(balance(store).await?, TRANSFER_COST + 100_000);

            let txnid = store.create_bill_debited(bill(P, 0, "B1")?, note("api"), None).await?.record.txnid;
            store.change_bill(txnid, BillChange::Fail, note("admin")).await?;
            store.change_bill(txnid, BillChange::Refund { refund_txn_id: Some("R-1".into()) }, note("admin")).await?;
            assert_eq!(balance(store).await?, TRANSFER_COST + 100_000);

            let statement = store.wallet_statement(partner(), at(0)..at(i64::MAX)).await?;
            let purposes: Vec<Purpose> = statement.lines.iter().map(|l| l.purpose).collect();
            let expected = [Purpose::TopUp, Purpose::Debit, Purpose::Refund, Purpose::Debit, Purpose::Refund];
            assert_eq!(purposes, expected);
            assert_eq!(statement.lines[2].txn, Some((TxnKind::Dmt, ackno)));
            assert_eq!(statement.closing().get(), TRANSFER_COST + 100_000);
            assert_eq!(store.audit().await?, LedgerAudit { journals: 5, ..LedgerAudit::default() });
            Ok(())
        }
    }
}
