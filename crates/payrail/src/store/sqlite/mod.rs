//! The embedded engine: SQLite through rusqlite, WAL journal.
//!
//! Readers come from a small pool of connections and run inline on the
//! calling task: a primary-key lookup costs a few microseconds, less than a
//! hop to a blocking thread. Writers share one connection, owned by the
//! writer thread, which runs the writes waiting in savepoints of one
//! `BEGIN IMMEDIATE` transaction (so a read-modify-write never races) and
//! commits them together with `synchronous = FULL` (see `writer_thread`).
//!
//! This file holds the writer and the error mapping; the read connections
//! (and the read snapshots status lookups keep) are in `readers.rs`;
//! each aggregate's implementation is in its own file (`partners.rs`,
//! `transactions.rs`, `ledger.rs`, `remittance.rs`, `upstream_work.rs`),
//! the recent token `reqid`s (and `payrail.reqids.db`, the file they are
//! written to) in `reqids.rs`, the schema in `migrations/`, one `.sql` file
//! per version, and online snapshots (`payrail backup`) in `snapshot.rs`.

mod chain;
mod columns;
mod feed;
mod health;
mod kyc;
mod ledger;
mod lookup;
mod migrations;
mod operators;
mod partners;
mod penny_drops;
mod readers;
mod reconcile;
mod remittance;
mod reqids;
mod search;
pub mod snapshot;
mod transactions;
mod upstream_work;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::columns::BadState;
use remittance::routed_since;
use upstream_work::{end_poll, upsert_poll, write_event};

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use ledger::{add_to_wallet, debit_wallet, insert_journal, pay_refund};
use partners::{partner_at, PARTNER_COLUMNS_P, PARTNER_WIDTH};
use readers::Readers;
pub use reqids::{reqid_file_path, reqid_fingerprint, REQID_FLUSH_INTERVAL};
use reqids::{RecentReqids, ReqidFile, ReqidFlusher};

use super::{files, DebitError, Debited, LedgerAudit};
use super::{BeneficiaryDeletion, CallbackSecretInstall, DmtDebit, HistoryNote, NewFeePlan, OperatorEdit};
use super::{ChangeError, ChangeNote, InsertError, NewPartner, Store, StoreError, StoreResult};
#[cfg(test)]
use super::{Claims, RecordStore};
use super::{ConsoleLogin, OtpAttempt, PartnerAccess, PennyDropOutcome, SecretRotation, SeenReqid};
use super::{LedgerStore, PartnerStore, RemittanceStore, TransactionStore, UpstreamWorkStore};
use crate::domain::event::{
    CallbackSecrets, DeliveryAttempt, EventFilter, EventOutcome, EventState, PartnerEvent, PollJob, PollNext,
    DELIVERY_WINDOW_SECS,
};
use crate::domain::fee_plan::FeePlanVersion;
use crate::domain::ledger::{Account, Journal, Statement, WalletMove};
use crate::domain::otp::{OtpCheck, OtpPurpose, OtpRecord};
#[cfg(test)]
use crate::domain::partner::SealedSecret;
use crate::domain::remitter::{Bank, Beneficiary, DmtRoute, MobileNumber, Remitter};
use crate::domain::txn_id::TxnNumbers;
#[cfg(test)]
use crate::domain::{bbps::BillChange, dmt::DmtChange};
use crate::domain::{
    BillPayment, DmtTransfer, HistoryEntry, Paise, Partner, PartnerStatus, ReferenceId, RegistrationId, Timestamp,
    TxnKind,
};

/// The SQLite engine.
pub struct SqliteStore {
    /// The read connections (see `readers.rs`).
    readers: Arc<Readers>,
    /// Where writes go: the writer thread, which owns the writer connection.
    writer: std::sync::mpsc::Sender<WriteJob>,
    /// Token `reqid`s seen recently. Checked in memory: on SQLite one
    /// process serves (the server holds a lock on the data directory), so
    /// memory is shared by every request that can arrive. Written behind,
    /// in batches, so that a restart remembers them.
    reqids: Arc<RecentReqids>,
    /// Where `reqids` are written (`payrail.reqids.db` beside the database).
    reqid_file: Arc<ReqidFile>,
    /// Its thread writes `reqids` out; it stops, after a last write, when the store is dropped.
    _flusher: ReqidFlusher,
    /// How new transactions are numbered.
    numbers: Arc<TxnNumbers>,
    /// The installation's id, part of every upstream reference.
    installation: Arc<str>,
}

fn connection(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).with_context(|| format!("Failed to open {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // No mmap: a connection drops its whole mapping (and its page cache)
    // whenever the database changed since its last read, which every
    // payment's commit does, and faulting the pages of a large file back in
    // costs more than reading the few a lookup needs (BENCHMARKS.md: +20%
    // lookups and a fifth of the p99 on 2,000,000 records). Read
    // connections map it while the store is quiet (`readers.rs`).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 0;",
    )
    .context("Failed to configure the SQLite connection")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Maps a rusqlite error: a busy or unopenable database is "unavailable".
fn store_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match error.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | SystemIoFailure | DiskFull) => {
            StoreError::Unavailable(error.into())
        }
        _ => StoreError::Other(error.into()),
    }
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation))
        && error.to_string().contains("UNIQUE")
}

fn conversion_error(column: usize, error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(error))
}

/// Creates the database file 0600 before SQLite opens it (SQLite gives its
/// `-wal` and `-shm` files the database file's mode), and makes an existing
/// store's companions 0600 too.
fn private_database(path: &Path) -> anyhow::Result<()> {
    files::private_file(path)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        files::make_private_if_present(Path::new(&companion))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if need be) the database file and migrates it.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            files::private_dir(dir)?;
        }
        private_database(path)?;
        let mut writer = connection(path)?;
        // The writer's commits are what partners are told is done: each
        // commit syncs the WAL, so an acknowledged payment survives power
        // loss or an OS crash, not only a crash of payrail. Readers stay
        // NORMAL (they commit nothing).
        writer.execute_batch("PRAGMA synchronous = FULL").context("Failed to make the writer durable")?;
        migrations::migrate(&mut writer)?;
        let (reqid_file, seen) = ReqidFile::open(path, &mut writer)?;
        let (reqid_file, reqids) = (Arc::new(reqid_file), Arc::new(RecentReqids::default()));
        reqids.load(seen)?;
        let numbers = Arc::new(transactions::txn_numbers(&writer)?);
        let installation: String = writer
            .query_row(crate::store::upstream_work::sql::INSTALLATION_ID, [], |row| row.get(0))
            .context("Failed to read the installation id")?;
        let (jobs, queue) = std::sync::mpsc::channel();
        let readers = Arc::new(Readers::new(path));
        let told = Arc::clone(&readers);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_thread(writer, queue, &told))
            .context("Failed to start the SQLite writer")?;
        Ok(SqliteStore {
            readers,
            _flusher: ReqidFlusher::start(Arc::clone(&reqid_file), Arc::clone(&reqids))?,
            reqid_file,
            writer: jobs,
            reqids,
            numbers,
            installation: installation.into(),
        })
    }

    /// Runs `f` on a pooled read connection, inline, outside any
    /// transaction (see [`Readers::fresh`]).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        self.readers.fresh(f)
    }

    /// Runs `f` on the writer connection, on the writer thread, inside a
    /// savepoint of a group transaction (see `writer_thread`); answers
    /// once the group's commit has made `f`'s writes durable, or failed.
    async fn write<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: WriteJob = Box::new(move |conn| {
            let result = f(conn);
            Box::new(move |committed: StoreResult<()>| {
                let _ = answer.send(match (result, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(refused), _) => Err(refused),
                    (Ok(_), Err(e)) => Err(E::from(e)),
                });
            })
        });
        // A write that was never run (its group could not begin) or whose
        // writer is gone: nothing was written, and trying later may work.
        let stopped = || E::from(StoreError::Unavailable(anyhow::anyhow!("the SQLite write was not made")));
        self.writer.send(job).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// A write waiting for the writer thread: it runs inside the group's
/// transaction and returns what to do once the group's commit is known.
type WriteJob = Box<dyn FnOnce(&mut Connection) -> Finish + Send>;

/// Answers a write once its group's commit is known.
type Finish = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// At most this many writes share one commit.
const GROUP_LIMIT: usize = 64;

/// The writer thread (group commit). It takes every write that is waiting
/// (up to [`GROUP_LIMIT`]), runs each in its own savepoint inside one
/// `BEGIN IMMEDIATE` transaction, and commits them together: with
/// `synchronous = FULL` that is one WAL sync per group instead of one per
/// write, so durability costs little under concurrency. A write that fails
/// rolls back to its savepoint alone; a caller hears back only after the
/// commit that holds its write, and if that commit fails, every write of
/// the group is told so. Ends when the store is dropped.
fn writer_thread(mut conn: Connection, queue: std::sync::mpsc::Receiver<WriteJob>, readers: &Readers) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        run_group(&mut conn, group, readers);
    }
}

/// Runs one group of writes in one transaction and answers each. A write
/// that is not run (the transaction could not begin, or was lost) is
/// dropped, and its caller hears that the writer failed.
fn run_group(conn: &mut Connection, group: Vec<WriteJob>, readers: &Readers) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::warn!(error = %e, "a write group could not begin");
        return;
    }
    let mut finishes = Vec::with_capacity(group.len());
    for job in group {
        // A panic unwinds through the write's savepoint, which rolls it back.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn))) {
            Ok(finish) => finishes.push(finish),
            Err(_) => tracing::error!("a SQLite write panicked; it was rolled back"),
        }
        // Some failures (I/O, a full disk) roll the whole transaction back.
        if conn.is_autocommit() {
            break;
        }
    }
    let committed = if conn.is_autocommit() {
        Err(anyhow::anyhow!("the group's transaction was rolled back"))
    } else {
        // Every row the group wrote joins its chain before the commit.
        chain::seal_pending(conn).and_then(|()| conn.execute_batch("COMMIT")).map_err(anyhow::Error::from)
    };
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    // Before any write of the group is answered (see `readers.rs`).
    readers.committed();
    for finish in finishes {
        finish(committed.as_ref().map(|_| ()).map_err(|e| StoreError::Unavailable(anyhow::anyhow!("{e:#}"))));
    }
}

fn poisoned() -> StoreError {
    StoreError::Other(anyhow::anyhow!("a SQLite connection lock was poisoned"))
}

/// A write's own savepoint inside its group's transaction (see
/// [`writer_thread`]): `commit` keeps its changes for the group's commit,
/// dropping it rolls them back.
fn immediate(conn: &mut Connection) -> StoreResult<rusqlite::Savepoint<'_>> {
    conn.savepoint().map_err(store_error)
}

#[async_trait]
impl Store for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn flush(&self) -> StoreResult<()> {
        let (file, reqids) = (Arc::clone(&self.reqid_file), Arc::clone(&self.reqids));
        tokio::task::spawn_blocking(move || file.flush(&reqids))
            .await
            .map_err(|e| StoreError::Other(anyhow::anyhow!("reqid flush failed: {e}")))?
    }
}

/// Every row of a query.
fn all_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, f)?;
    rows.collect()
}

/// Runs `sql` (prepared once per connection) with `params`: how many rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<usize> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(store_error)
}

/// The row of a query, if it has one.
fn optional_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    conn.prepare_cached(sql)?.query_row(params, f).optional()
}

/// Whether the partner exists.
fn partner_exists(conn: &Connection, partner: RegistrationId) -> rusqlite::Result<bool> {
    conn.prepare_cached(super::partners::sql::PARTNER_EXISTS)?.exists([partner.number()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_or_unopenable_database_is_unavailable_not_internal() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED, rusqlite::ffi::SQLITE_CANTOPEN] {
            let error = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            assert!(matches!(store_error(error), StoreError::Unavailable(_)), "code {code}");
        }
        let corrupt = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), None);
        assert!(matches!(store_error(corrupt), StoreError::Other(_)));
    }

    pub(super) mod lifecycle {
        use super::super::*;

        /// Declares each named test: it opens a store in a directory of its
        /// own and runs `cases::<name>(&store)`, the test's body. After
        /// `partner:`, the store first gets a partner, whose id the body
        /// is handed as well.
        macro_rules! sqlite_tests {
            (partner: $($name:ident),+ $(,)?) => {$(
                #[tokio::test]
                async fn $name() {
                    use $crate::store::sqlite::tests::lifecycle::{open, partner};
                    let (_dir, store) = open();
                    let p = partner(&store).await;
                    cases::$name(&store, p).await
                }
            )+};
            ($($name:ident),+ $(,)?) => {$(
                #[tokio::test]
                async fn $name() {
                    let (_dir, store) = $crate::store::sqlite::tests::lifecycle::open();
                    cases::$name(&store).await
                }
            )+};
        }
        pub(in crate::store::sqlite) use sqlite_tests;

        use crate::domain::remitter::{MonthlyLimit, TransferMode};
        use crate::domain::{BillStatus, DmtCharges, DmtStatus, IpAllowlist};

        /// Unwraps in a test, showing the error.
        pub(in crate::store::sqlite) fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
            result.unwrap_or_else(|e| panic!("{e}"))
        }

        pub(in crate::store::sqlite) fn at(unix: i64) -> Timestamp {
            Timestamp::from_unix(1_700_000_000 + unix)
        }

        pub(in crate::store::sqlite) fn note(unix: i64) -> ChangeNote {
            ChangeNote { source: crate::domain::ChangeSource::Admin, reason: None, at: at(unix) }
        }

        pub(in crate::store::sqlite) fn open() -> (tempfile::TempDir, Arc<SqliteStore>) {
            let dir = ok(tempfile::tempdir());
            let store = ok(SqliteStore::open(&dir.path().join("payrail.db")));
            (dir, Arc::new(store))
        }

        pub(in crate::store::sqlite) async fn partner(store: &SqliteStore) -> RegistrationId {
            let new = NewPartner {
                number: None,
                name: "test".into(),
                require_token: false,
                allowlist: IpAllowlist::from_nets(Vec::new()),
                secret: SealedSecret(vec![7; 32]),
                authorised_key_hash: None,
                created_at: at(0),
            };
            ok(store.insert_partner(new).await).registration_id
        }

        pub(in crate::store::sqlite) async fn top_up(
            store: &SqliteStore,
            partner: RegistrationId,
            rupees: i64,
            unix: i64,
        ) -> WalletMove {
            ok(store.post_journal(Journal::top_up(partner, Paise::rupees(rupees), "top-up".into(), at(unix))).await)
        }

        pub(in crate::store::sqlite) fn mobile() -> MobileNumber {
            ok(MobileNumber::parse("9876543210"))
        }

        /// A ₹`rupees` transfer with a ₹10 charge (₹3.50 to the provider).
        pub(in crate::store::sqlite) fn transfer(
            partner: RegistrationId,
            reference: &str,
            rupees: i64,
            status: DmtStatus,
        ) -> DmtTransfer {
            DmtTransfer {
                ackno: 0,
                partner,
                reference: ok(ReferenceId::parse(reference)),
                amount: Paise::rupees(rupees),
                account: "123456789".into(),
                utr: None,
                status,
                charges: DmtCharges::compute(Paise::rupees(10), Paise::new(350), at(0)),
                created_at: at(10),
                refund_txn_id: None,
                refunded_at: None,
                upstream_ackno: None,
            }
        }

        pub(in crate::store::sqlite) fn route(bank: Bank) -> DmtRoute {
            DmtRoute { remitter: mobile(), beneficiary_id: 1, bank, mode: TransferMode::Imps }
        }

        pub(in crate::store::sqlite) fn no_limit() -> MonthlyLimit {
            MonthlyLimit { since: at(0), limit: Paise::rupees(1_000_000) }
        }

        pub(in crate::store::sqlite) async fn send(
            store: &SqliteStore,
            partner: RegistrationId,
            reference: &str,
            rupees: i64,
        ) -> Result<Debited<DmtTransfer>, DebitError> {
            let t = transfer(partner, reference, rupees, DmtStatus::InProcess);
            store
                .create_dmt_debited(DmtDebit {
                    transfer: t,
                    route: route(Bank::Bank1),
                    limit: no_limit(),
                    note: note(10),
                    poll_at: None,
                })
                .await
        }

        pub(in crate::store::sqlite) fn bill(partner: RegistrationId, reference: &str, rupees: i64) -> BillPayment {
            BillPayment {
                txnid: 0,
                partner,
                reference: ok(ReferenceId::parse(reference)),
                operator_name: "Power".into(),
                ca_number: "CA1".into(),
                amount: Paise::rupees(rupees),
                ad1: None,
                ad2: None,
                ad3: None,
                commission: Paise::new(21),
                tds: Paise::new(1),
                status: BillStatus::Pending,
                operator_ref: None,
                created_at: at(10),
                refund_txn_id: None,
                refunded_at: None,
            }
        }

        pub(in crate::store::sqlite) async fn audit_is_clean(store: &SqliteStore) -> LedgerAudit {
            let audit = ok(store.audit().await);
            assert_eq!(audit, LedgerAudit { journals: audit.journals, ..LedgerAudit::default() });
            audit
        }

        pub(in crate::store::sqlite) fn raw(store: &SqliteStore, sql: &str) {
            let conn = ok(connection(store.readers.path()));
            ok(conn.execute_batch(sql));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_debits_never_overdraw_the_wallet() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 20 * 110, 1).await;
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move { send(&store, p, &format!("C{i}"), 100).await })
                })
                .collect();
            let mut succeeded = 0;
            for task in tasks {
                match ok(task.await) {
                    Ok(debited) => {
                        assert!(debited.wallet.closing >= Paise::ZERO);
                        succeeded += 1;
                    }
                    Err(DebitError::InsufficientFunds { balance }) => assert!(balance < Paise::rupees(110)),
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(succeeded, 20);
            assert_eq!(ok(store.wallet_balance(p).await), Paise::ZERO);
            assert_eq!(audit_is_clean(&store).await.journals, 21);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn grouped_writes_commit_together_and_a_refused_one_alone_is_undone() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 1_000, 1).await;
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..40 {
                let store = Arc::clone(&store);
                // Every fourth reuses a reference: refused, and nothing of it is written.
                let reference = if i % 4 == 3 { format!("G{}", i - 1) } else { format!("G{i}") };
                tasks.spawn(async move { store.create_bill_debited(bill(p, &reference, 10), note(5), None).await });
            }
            let (mut paid, mut refused) = (0, 0);
            while let Some(result) = tasks.join_next().await {
                match ok(result) {
                    Ok(_) => paid += 1,
                    Err(DebitError::Duplicate(_)) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!((paid, refused), (30, 10));
            assert_eq!(ok(store.counts().await).1, 30);
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000 - 300));
            audit_is_clean(&store).await;
        }

        sqlite_tests!(the_writer_commits_durably_and_readers_need_not);
        sqlite_tests!(partner: a_debited_transfer_takes_amount_plus_charge_and_its_journal_balances, a_duplicate_reference_is_refused_and_nothing_is_debited, the_monthly_limit_is_per_pipe_and_ignores_refunded_transfers, a_refund_credits_the_wallet_exactly_once, refunding_an_imported_transfer_moves_no_money);

        /// The bodies of the tests above, each run on a store of its own.
        mod cases {
            use super::*;

            pub(super) async fn a_debited_transfer_takes_amount_plus_charge_and_its_journal_balances(
                store: &Arc<SqliteStore>,
                p: RegistrationId,
            ) {
                top_up(store, p, 1_000, 1).await;
                let debited = ok(send(store, p, "R1", 100).await);
                assert!(debited.record.ackno > 0);
                assert_eq!(debited.wallet, WalletMove { opening: Paise::rupees(1_000), closing: Paise::rupees(890) });
                assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(890));
                let (stored, history) =
                    ok(store.dmt_with_history(debited.record.ackno).await).unwrap_or_else(|| panic!());
                assert_eq!(stored, debited.record);
                assert_eq!(history.len(), 1);
                assert_eq!(ok(store.dmt_route(debited.record.ackno).await), Some(route(Bank::Bank1)));
                assert_eq!(audit_is_clean(store).await.journals, 2);
            }

            pub(super) async fn a_duplicate_reference_is_refused_and_nothing_is_debited(
                store: &Arc<SqliteStore>,
                p: RegistrationId,
            ) {
                top_up(store, p, 1_000, 1).await;
                ok(send(store, p, "R1", 100).await);
                assert!(matches!(send(store, p, "R1", 100).await, Err(DebitError::Duplicate(r)) if r == "R1"));
                let imported = transfer(p, "R2", 100, DmtStatus::Success);
                ok(store.insert_dmt_batch(vec![imported], note(5), Arc::new(|_| ())).await);
                assert!(matches!(send(store, p, "R2", 100).await, Err(DebitError::Duplicate(_))));
                assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(890));
                assert_eq!(ok(store.counts().await), (2, 0));
                audit_is_clean(store).await;
            }

            pub(super) async fn the_monthly_limit_is_per_pipe_and_ignores_refunded_transfers(
                store: &Arc<SqliteStore>,
                p: RegistrationId,
            ) {
                top_up(store, p, 10_000, 1).await;
                let limit = MonthlyLimit { since: at(0), limit: Paise::rupees(150) };
                let make = |reference: &str, bank: Bank| {
                    let t = transfer(p, reference, 100, DmtStatus::InProcess);
                    store.create_dmt_debited(DmtDebit {
                        transfer: t,
                        route: route(bank),
                        limit: limit.clone(),
                        note: note(10),
                        poll_at: None,
                    })
                };
                let first = ok(make("R1", Bank::Bank1).await);
                let refused = make("R2", Bank::Bank1).await;
                assert!(
                    matches!(refused, Err(DebitError::MonthlyLimit { remaining }) if remaining == Paise::rupees(50))
                );
                assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(9_890));
                ok(make("R2", Bank::Bank2).await);
                let usage = ok(store.remitter_usage(p, &mobile(), at(0)).await);
                assert_eq!(
                    usage,
                    crate::domain::remitter::PerBank {
                        bank1: Paise::rupees(100),
                        bank2: Paise::rupees(100),
                        bank3: Paise::ZERO
                    }
                );
                assert_eq!(
                    ok(store.remitter_usage(p, &mobile(), at(11)).await),
                    crate::domain::remitter::PerBank::default()
                );
                ok(store.change_dmt(first.record.ackno, DmtChange::Fail, note(20)).await);
                let refund = DmtChange::Refund { refund_txn_id: None };
                ok(store.change_dmt(first.record.ackno, refund, note(21)).await);
                ok(make("R3", Bank::Bank1).await);
                audit_is_clean(store).await;
            }

            pub(super) async fn a_refund_credits_the_wallet_exactly_once(store: &Arc<SqliteStore>, p: RegistrationId) {
                top_up(store, p, 1_000, 1).await;
                let ackno = ok(send(store, p, "R1", 100).await).record.ackno;
                ok(store.change_dmt(ackno, DmtChange::Fail, note(20)).await);
                let refund = DmtChange::Refund { refund_txn_id: None };
                let refunded = ok(store.change_dmt(ackno, refund.clone(), note(21)).await);
                assert_eq!(refunded.status, DmtStatus::Refunded);
                assert!(refunded.refund_txn_id.is_some_and(|id| !id.is_empty()));
                assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000));
                assert!(matches!(store.change_dmt(ackno, refund, note(22)).await, Err(ChangeError::Forbidden(_))));
                assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000));

                let txnid = ok(store.create_bill_debited(bill(p, "B1", 200), note(30), None).await).record.txnid;
                assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(800));
                ok(store.change_bill(txnid, BillChange::Fail, note(31)).await);
                ok(store.change_bill(txnid, BillChange::Refund { refund_txn_id: Some("X1".into()) }, note(32)).await);
                assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000));
                assert_eq!(audit_is_clean(store).await.journals, 5);
            }

            pub(super) async fn refunding_an_imported_transfer_moves_no_money(
                store: &Arc<SqliteStore>,
                p: RegistrationId,
            ) {
                top_up(store, p, 1_000, 1).await;
                let imported = transfer(p, "I1", 100, DmtStatus::Failed);
                let ackno = ok(store.insert_dmt_batch(vec![imported], note(5), Arc::new(|_| ())).await)[0];
                let refund = DmtChange::Refund { refund_txn_id: None };
                ok(store.change_dmt(ackno, refund, note(6)).await);
                assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000));
                assert_eq!(audit_is_clean(store).await.journals, 1);
            }

            pub(super) async fn the_writer_commits_durably_and_readers_need_not(store: &Arc<SqliteStore>) {
                let pragma = |conn: &Connection| conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0));
                let writer = ok(store.write(move |conn| pragma(conn).map_err(store_error)).await);
                assert_eq!(writer, 2, "FULL: every commit syncs the WAL");
                assert_eq!(ok(store.read(pragma)), 1, "readers stay NORMAL");
            }
        }
    }
}
