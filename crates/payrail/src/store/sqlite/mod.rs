//! The embedded engine: SQLite through rusqlite, WAL journal.
//!
//! Readers come from a small pool of connections and run inline on the
//! calling task: a primary-key lookup costs a few microseconds, less than a
//! hop to a blocking thread. Writers share one connection, owned by the
//! writer thread, which runs the writes waiting in savepoints of one
//! `BEGIN IMMEDIATE` transaction (so a read-modify-write never races) and
//! commits them together with `synchronous = FULL` (see [`writer_thread`]).

mod debited;
mod ledger;
mod lookup;
mod partners;
mod remittance;
mod transactions;
mod upstream_work;

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use super::{files, DebitError, Debited, LedgerAudit};
use super::{ChangeError, ChangeNote, InsertError, NewPartner, Store, StoreError};
use super::{LedgerStore, PartnerStore, RemittanceStore, TransactionStore, UpstreamWorkStore};
use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::event::{
    bill_payload, dmt_payload, CallbackSecrets, DeliveryAttempt, EventFilter, EventOutcome, EventState, PartnerEvent,
    PollJob, PollNext, DELIVERY_WINDOW_SECS,
};
use crate::domain::fee_plan::{FeePlan, FeePlanVersion};
use crate::domain::ledger::{Account, Journal, Posting, Purpose, Statement, StatementLine, WalletMove};
use crate::domain::otp::{OtpCheck, OtpPurpose, OtpRecord, TextLimits, OTP_LIFETIME_SECS, TEXT_DAY_SECS};
use crate::domain::partner::SealedSecret;
use crate::domain::remitter::{
    AccountNumber, Bank, Beneficiary, DmtRoute, Ifsc, MobileNumber, MonthlyLimit, Remitter, TransferMode,
};
use crate::domain::txn_id::TxnNumbers;
use crate::domain::upstream;
use crate::domain::{
    BillPayment, BillStatus, DmtCharges, DmtStatus, DmtTransfer, HistoryEntry, IpAllowlist, Paise, Partner,
    PartnerStatus, ReferenceId, RegistrationId, Timestamp, TxnKind,
};

/// Schema versions, applied in order; each runs once.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE partners (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    require_token         INTEGER NOT NULL,
    allow_ips             TEXT    NOT NULL,
    secret                BLOB    NOT NULL,
    previous_secret       BLOB,
    previous_secret_until INTEGER,
    authorised_key_hash   BLOB,
    created_at            INTEGER NOT NULL
);
CREATE TABLE dmt_transfers (
    ackno           INTEGER PRIMARY KEY,
    partner_id      INTEGER NOT NULL REFERENCES partners(id),
    reference_id    TEXT    NOT NULL,
    amount          INTEGER NOT NULL,
    account         TEXT    NOT NULL,
    utr             TEXT,
    status          INTEGER NOT NULL,
    customer_charge INTEGER NOT NULL,
    provider_share  INTEGER NOT NULL,
    gst             INTEGER NOT NULL,
    discount        INTEGER NOT NULL,
    commission      INTEGER NOT NULL,
    tds             INTEGER NOT NULL,
    net_commission  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    refund_txn_id   TEXT,
    refunded_at     INTEGER,
    UNIQUE (partner_id, reference_id)
);
CREATE TABLE bill_payments (
    txnid          INTEGER PRIMARY KEY,
    partner_id     INTEGER NOT NULL REFERENCES partners(id),
    reference_id   TEXT    NOT NULL,
    operator_name  TEXT    NOT NULL,
    ca_number      TEXT    NOT NULL,
    amount         INTEGER NOT NULL,
    ad1            TEXT,
    ad2            TEXT,
    ad3            TEXT,
    commission     INTEGER NOT NULL,
    tds            INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    operator_ref   TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    refund_txn_id  TEXT,
    refunded_at    INTEGER,
    UNIQUE (partner_id, reference_id)
);
CREATE TABLE status_history (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    txn_id      INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    reason      TEXT
);
CREATE INDEX status_history_by_txn ON status_history (kind, txn_id, id);
CREATE TABLE refunds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    txn_id     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE wallets (
    partner_id INTEGER PRIMARY KEY REFERENCES partners(id),
    balance    INTEGER NOT NULL CHECK (balance >= 0)
);
CREATE TABLE journals (
    id         INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    purpose    TEXT    NOT NULL,
    kind       TEXT,
    txn_id     INTEGER,
    memo       TEXT    NOT NULL,
    at         INTEGER NOT NULL
);
CREATE UNIQUE INDEX journals_once_per_txn ON journals (kind, txn_id, purpose);
CREATE INDEX journals_by_partner ON journals (partner_id, at);
CREATE TABLE postings (
    id         INTEGER PRIMARY KEY,
    journal_id INTEGER NOT NULL REFERENCES journals(id),
    account    TEXT    NOT NULL,
    amount     INTEGER NOT NULL
);
CREATE INDEX postings_by_journal ON postings (journal_id);
CREATE INDEX postings_by_account ON postings (account);
CREATE TABLE fee_plans (
    partner_id     INTEGER NOT NULL REFERENCES partners(id),
    version        INTEGER NOT NULL,
    effective_from INTEGER NOT NULL,
    plan           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (partner_id, version)
);
CREATE TABLE remitters (
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    mobile     TEXT    NOT NULL,
    first_name TEXT,
    last_name  TEXT,
    kyc_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (partner_id, mobile)
);
CREATE TABLE beneficiaries (
    id             INTEGER PRIMARY KEY,
    partner_id     INTEGER NOT NULL,
    remitter_mobile TEXT   NOT NULL,
    name           TEXT    NOT NULL,
    account        TEXT    NOT NULL,
    ifsc           TEXT    NOT NULL,
    bank_name      TEXT,
    created_at     INTEGER NOT NULL,
    deleted_at     INTEGER,
    FOREIGN KEY (partner_id, remitter_mobile) REFERENCES remitters(partner_id, mobile)
);
CREATE INDEX beneficiaries_by_remitter ON beneficiaries (partner_id, remitter_mobile);
CREATE TABLE otps (
    token      TEXT    PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    purpose    TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    code_hash  BLOB    NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    used       INTEGER NOT NULL
);
CREATE TABLE dmt_routes (
    ackno           INTEGER PRIMARY KEY REFERENCES dmt_transfers(ackno),
    partner_id      INTEGER NOT NULL,
    remitter_mobile TEXT    NOT NULL,
    beneficiary_id  INTEGER NOT NULL,
    bank            INTEGER NOT NULL,
    mode            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX dmt_routes_by_remitter ON dmt_routes (partner_id, remitter_mobile, bank, created_at);
"#,
    r#"
CREATE TABLE partner_callbacks (
    partner_id  INTEGER PRIMARY KEY REFERENCES partners(id),
    url         TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE upstream_polls (
    kind         TEXT    NOT NULL,
    txn_id       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_poll_at INTEGER,
    lease_owner  TEXT,
    lease_until  INTEGER,
    PRIMARY KEY (kind, txn_id)
);
CREATE INDEX upstream_polls_due ON upstream_polls (next_poll_at);
CREATE TABLE partner_events (
    id              INTEGER PRIMARY KEY,
    partner_id      INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    txn_id          INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    deliver_until   INTEGER NOT NULL,
    delivered_at    INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER
);
CREATE INDEX partner_events_due ON partner_events (state, next_attempt_at);
CREATE INDEX partner_events_by_txn ON partner_events (kind, txn_id, id);
CREATE INDEX partner_events_by_partner ON partner_events (partner_id, id);
CREATE TABLE delivery_attempts (
    event_id     INTEGER NOT NULL REFERENCES partner_events(id),
    attempt      INTEGER NOT NULL,
    instance     TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    http_status  INTEGER,
    error        TEXT,
    PRIMARY KEY (event_id, attempt)
);
"#,
    // Issue 9 item 9 (OTP texts per mobile).
    r#"
CREATE TABLE otp_texts (
    mobile  TEXT    NOT NULL,
    sent_at INTEGER NOT NULL
);
CREATE INDEX otp_texts_by_mobile ON otp_texts (mobile, sent_at);
CREATE INDEX otp_texts_by_time ON otp_texts (sent_at);
"#,
    // Issue 9 items 6, 7, 22, 23 (replays, callback secrets, orderly delivery).
    r#"
CREATE TABLE seen_reqid_batches (
    id           INTEGER PRIMARY KEY,
    last_seen_at INTEGER NOT NULL,
    fingerprints BLOB    NOT NULL
);
CREATE TABLE upstream_reqids (
    reqid   TEXT    PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
CREATE INDEX upstream_reqids_by_age ON upstream_reqids (seen_at);
ALTER TABLE partner_events ADD COLUMN redelivered_at INTEGER;
CREATE TABLE partner_callback_secrets (
    partner_id            INTEGER PRIMARY KEY REFERENCES partners(id),
    secret                BLOB    NOT NULL,
    previous_secret       BLOB,
    previous_secret_until INTEGER,
    updated_at            INTEGER NOT NULL
);
"#,
    // Issue 9 item 24: new ackno/txnid are a keyed permutation of a counter
    // (domain::txn_id); the secret is written at first open (see
    // `txn_numbers`). Rows made before keep their numbers.
    r#"
CREATE TABLE txn_number_secret (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    secret  TEXT    NOT NULL
);
CREATE TABLE txn_number_counters (
    kind  TEXT    PRIMARY KEY,
    next  INTEGER NOT NULL
);
INSERT INTO txn_number_counters (kind, next) VALUES ('dmt', 0), ('bbps', 0);
"#,
    // Issue 9 (money): the poller's claim is one index range scan in due
    // order; held jobs (no due time) are outside the index.
    r#"
DROP INDEX upstream_polls_due;
CREATE INDEX upstream_polls_due ON upstream_polls (next_poll_at, txn_id, kind) WHERE next_poll_at IS NOT NULL;
"#,
    // issue 9 item 10: the master key's check value, one row.
    r#"
CREATE TABLE master_key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    mac        BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
"#,
];

/// `reqid`s seen within the replay window, in two generations per shard:
/// entries move to `previous` when a window has passed and are dropped a
/// window later, so every operation is O(1) and memory holds at most two
/// windows of traffic. Sharded so that concurrent requests rarely contend.
///
/// Memory is the check; the `seen_reqid_batches` table makes it outlive a
/// restart. A new `reqid` is also queued as its [`reqid_fingerprint`]
/// (`unflushed`, in its shard, under the lock already held) for the
/// [`ReqidFlusher`], which writes the queue as ONE row every
/// [`REQID_FLUSH_INTERVAL`]: a status lookup never waits for a write, and
/// the store pays one small blob insert per interval, not one indexed row
/// per lookup (that cost a fifth of the lookup rate). Fingerprints read back
/// at start-up are checked beside the keys (`restored`).
struct RecentReqids {
    shards: Vec<Mutex<Generations>>,
    /// The latest cutoff asked for: batches seen before it can be pruned.
    cutoff: std::sync::atomic::AtomicI64,
}

/// A `reqid` seen: (its fingerprint, unix seconds).
type SeenReqid = (u64, i64);

#[derive(Default)]
struct Generations {
    current: HashMap<(i64, String), i64>,
    previous: HashMap<(i64, String), i64>,
    rotated_at: i64,
    /// Fingerprints read back from the table at start-up, with when they were seen.
    restored: HashMap<u64, i64>,
    unflushed: Vec<SeenReqid>,
}

impl Default for RecentReqids {
    fn default() -> Self {
        RecentReqids {
            shards: (0..16).map(|_| Mutex::new(Generations::default())).collect(),
            cutoff: std::sync::atomic::AtomicI64::new(0),
        }
    }
}

/// A stable 64-bit fingerprint of a partner's `reqid` (FNV-1a), what the
/// table keeps. Two reqids sharing one would only make the later one look
/// like a replay in the window after a restart; a partner cannot aim that at
/// another partner's token without knowing its `reqid` in advance.
pub fn reqid_fingerprint(partner: i64, reqid: &str) -> u64 {
    partner
        .to_le_bytes()
        .iter()
        .chain([0xff].iter())
        .chain(reqid.as_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

impl RecentReqids {
    /// The shard of a fingerprint: the same for every call with its key.
    fn shard(&self, fingerprint: u64) -> Result<std::sync::MutexGuard<'_, Generations>, StoreError> {
        self.shards[(fingerprint % 16) as usize].lock().map_err(|_| poisoned())
    }

    /// Records `reqid`; `false` if it was seen at or after `cutoff`.
    fn remember(&self, partner: i64, reqid: &str, now: i64, cutoff: i64) -> Result<bool, StoreError> {
        // A read first: the cutoff moves once a second, and a write on every
        // lookup would bounce the cache line between cores.
        if cutoff > self.cutoff.load(std::sync::atomic::Ordering::Relaxed) {
            self.cutoff.fetch_max(cutoff, std::sync::atomic::Ordering::Relaxed);
        }
        let fingerprint = reqid_fingerprint(partner, reqid);
        let mut generations = self.shard(fingerprint)?;
        let window = now - cutoff;
        if now - generations.rotated_at >= window {
            generations.previous = std::mem::take(&mut generations.current);
            generations.restored.retain(|_, at| *at >= cutoff);
            generations.rotated_at = now;
        }
        let key = (partner, reqid.to_owned());
        let seen_at = generations.current.get(&key).or_else(|| generations.previous.get(&key)).copied();
        let restored_at = || generations.restored.get(&fingerprint).copied();
        if seen_at.or_else(restored_at).is_some_and(|at| at >= cutoff) {
            return Ok(false);
        }
        generations.current.insert(key, now);
        generations.unflushed.push((fingerprint, now));
        Ok(true)
    }

    /// Loads fingerprints read back from the table (at start-up), unqueued.
    fn load(&self, rows: Vec<SeenReqid>) -> Result<(), StoreError> {
        for (fingerprint, seen_at) in rows {
            let mut generations = self.shard(fingerprint)?;
            let at = generations.restored.entry(fingerprint).or_insert(seen_at);
            *at = (*at).max(seen_at);
        }
        Ok(())
    }

    /// Takes everything queued for the table.
    fn take_unflushed(&self) -> Result<Vec<SeenReqid>, StoreError> {
        let mut taken = Vec::new();
        for shard in &self.shards {
            taken.append(&mut shard.lock().map_err(|_| poisoned())?.unflushed);
        }
        Ok(taken)
    }

    /// The latest cutoff asked for (0 before the first request).
    fn cutoff(&self) -> i64 {
        self.cutoff.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How often new token `reqid`s are written to `seen_reqid_batches`. A
/// `kill -9` (or a power cut) forgets at most the `reqid`s of this last
/// interval, and the next start accepts those tokens once more while they
/// are fresh.
pub const REQID_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Writes queued `reqid`s through the writer thread (in its next group
/// commit) and prunes batches older than the cutoff, then waits for that
/// commit. On failure the rows are handed back, to be tried with the next
/// batch.
fn flush_reqids(
    writer: &std::sync::mpsc::Sender<WriteJob>,
    reqids: &RecentReqids,
    carried: &mut Vec<SeenReqid>,
) -> Result<(), StoreError> {
    carried.append(&mut reqids.take_unflushed()?);
    if carried.is_empty() {
        return Ok(());
    }
    let (batch, last_seen_at) = encode_reqids(carried);
    let cutoff = reqids.cutoff();
    let (answer, answered) = std::sync::mpsc::channel();
    let job: WriteJob = Box::new(move |conn| {
        let written = write_reqids(conn, &batch, last_seen_at, cutoff).map_err(store_error);
        Box::new(move |committed: Result<(), StoreError>| {
            let _ = answer.send(written.and(committed));
        })
    });
    let not_made = || StoreError::Unavailable(anyhow::anyhow!("the token reqids were not written"));
    writer.send(job).map_err(|_| not_made())?;
    answered.recv().map_err(|_| not_made())??;
    carried.clear();
    Ok(())
}

/// A batch's blob: 16 bytes a `reqid` (fingerprint, seen at; little-endian),
/// and the latest time in it.
fn encode_reqids(rows: &[SeenReqid]) -> (Vec<u8>, i64) {
    let mut blob = Vec::with_capacity(rows.len() * 16);
    for (fingerprint, seen_at) in rows {
        blob.extend_from_slice(&fingerprint.to_le_bytes());
        blob.extend_from_slice(&seen_at.to_le_bytes());
    }
    (blob, rows.iter().map(|(_, at)| *at).max().unwrap_or_default())
}

/// What [`encode_reqids`] wrote (a torn tail is ignored).
fn decode_reqids(blob: &[u8]) -> impl Iterator<Item = SeenReqid> + '_ {
    blob.chunks_exact(16).map(|entry| {
        let (fingerprint, seen_at) = entry.split_at(8);
        let word = |bytes: &[u8]| bytes.try_into().map(u64::from_le_bytes).unwrap_or_default();
        (word(fingerprint), word(seen_at) as i64)
    })
}

/// Inside the writer thread's group transaction, in a savepoint of its own.
fn write_reqids(conn: &mut Connection, batch: &[u8], last_seen_at: i64, cutoff: i64) -> rusqlite::Result<()> {
    let tx = conn.savepoint()?;
    tx.prepare_cached("INSERT INTO seen_reqid_batches (last_seen_at, fingerprints) VALUES (?1, ?2)")?
        .execute(params![last_seen_at, batch])?;
    tx.prepare_cached("DELETE FROM seen_reqid_batches WHERE last_seen_at < ?1")?.execute([cutoff])?;
    tx.commit()
}

/// The thread that writes new `reqid`s every [`REQID_FLUSH_INTERVAL`]; on
/// drop it is told to stop, writes what is left, and is joined.
struct ReqidFlusher {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReqidFlusher {
    fn start(writer: std::sync::mpsc::Sender<WriteJob>, reqids: Arc<RecentReqids>) -> anyhow::Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("payrail-reqids".into())
            .spawn(move || {
                let mut carried = Vec::new();
                loop {
                    let stopping =
                        !matches!(stopped.recv_timeout(REQID_FLUSH_INTERVAL), Err(RecvTimeoutError::Timeout));
                    if let Err(error) = flush_reqids(&writer, &reqids, &mut carried) {
                        tracing::warn!(%error, pending = carried.len(), "token reqids not written yet");
                    }
                    if stopping {
                        return;
                    }
                }
            })
            .context("Failed to start the token reqid writer")?;
        Ok(ReqidFlusher { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for ReqidFlusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every `reqid` fingerprint in the table (it holds about one window:
/// older batches are pruned as new ones are written).
fn stored_reqids(conn: &Connection) -> rusqlite::Result<Vec<SeenReqid>> {
    let mut stmt = conn.prepare("SELECT fingerprints FROM seen_reqid_batches")?;
    let blobs = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(blobs.iter().flat_map(|blob| decode_reqids(blob)).collect())
}

/// The remitter's live beneficiary with this account number at this bank
/// (IFSC prefix): `?1` partner, `?2` mobile, `?3` account, `?4` bank.
const SAME_ACCOUNT: &str = "SELECT id FROM beneficiaries WHERE partner_id = ?1 AND remitter_mobile = ?2 \
                            AND account = ?3 AND substr(ifsc, 1, 4) = ?4 AND deleted_at IS NULL";

/// How many read connections the pool keeps.
const READERS: usize = 8;

/// The SQLite engine.
pub struct SqliteStore {
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
    /// Where writes go: the writer thread, which owns the writer connection.
    writer: std::sync::mpsc::Sender<WriteJob>,
    /// Token `reqid`s seen recently. Checked in memory: on SQLite one
    /// process serves (the server holds a lock on the data directory), so
    /// memory is shared by every request that can arrive. Written behind,
    /// in batches, so that a restart remembers them.
    reqids: Arc<RecentReqids>,
    /// Its thread writes `reqids` out; it stops, after a last write, when the store is dropped.
    _flusher: ReqidFlusher,
    /// How new transactions are numbered.
    numbers: Arc<TxnNumbers>,
}

fn connection(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).with_context(|| format!("Failed to open {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // mmap lets every connection read pages straight from the OS page cache
    // instead of copying them into its own (a status lookup touches a few
    // random pages of a large file).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 1073741824;",
    )
        .context("Failed to configure the SQLite connection")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.execute_batch(sql).with_context(|| format!("Failed to apply migration {}", index + 1))?;
        tx.execute(
            "INSERT INTO schema_migrations VALUES (?1, ?2)",
            params![index as i64 + 1, Timestamp::now().unix()],
        )?;
    }
    tx.commit().context("Failed to commit migrations")
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

const PARTNER_COLUMNS: &str = "id, name, status, require_token, allow_ips, secret, previous_secret, \
                               previous_secret_until, authorised_key_hash, created_at";

/// How many columns [`PARTNER_COLUMNS`] has: where a joined row's transaction starts.
const PARTNER_WIDTH: usize = 10;
fn partner_from_row(row: &Row<'_>) -> rusqlite::Result<Partner> {
    partner_at(row, 0)
}

fn partner_at(row: &Row<'_>, base: usize) -> rusqlite::Result<Partner> {
    let status: String = row.get(base + 2)?;
    let allow: String = row.get(base + 4)?;
    let previous: Option<Vec<u8>> = row.get(base + 6)?;
    let previous_until: Option<i64> = row.get(base + 7)?;
    Ok(Partner {
        registration_id: RegistrationId::new(row.get(base)?),
        name: row.get(base + 1)?,
        status: PartnerStatus::from_stored(&status).unwrap_or(PartnerStatus::Suspended),
        require_token: row.get(base + 3)?,
        allowlist: IpAllowlist::from_stored(&allow).map_err(|e| conversion_error(base + 4, e))?,
        secret: SealedSecret(row.get(base + 5)?),
        previous_secret: previous.zip(previous_until).map(|(s, t)| (SealedSecret(s), Timestamp::from_unix(t))),
        authorised_key_hash: row.get(base + 8)?,
        created_at: Timestamp::from_unix(row.get(base + 9)?),
    })
}

fn conversion_error(column: usize, error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(error))
}

const DMT_COLUMNS: &str = "ackno, partner_id, reference_id, amount, account, utr, status, customer_charge, \
                           provider_share, gst, discount, commission, tds, net_commission, created_at, \
                           refund_txn_id, refunded_at";

fn dmt_from_row(row: &Row<'_>) -> rusqlite::Result<DmtTransfer> {
    dmt_at(row, 0)
}

fn dmt_at(row: &Row<'_>, base: usize) -> rusqlite::Result<DmtTransfer> {
    let reference: String = row.get(base + 2)?;
    let status: i64 = row.get(base + 6)?;
    Ok(DmtTransfer {
        ackno: row.get(base)?,
        partner: RegistrationId::new(row.get(base + 1)?),
        reference: ReferenceId::parse(&reference).map_err(|e| conversion_error(base + 2, e))?,
        amount: Paise::new(row.get(base + 3)?),
        account: row.get(base + 4)?,
        utr: row.get(base + 5)?,
        status: DmtStatus::from_code(status).ok_or_else(|| conversion_error(base + 6, BadState(status.to_string())))?,
        charges: DmtCharges {
            customer_charge: Paise::new(row.get(base + 7)?),
            provider_share: Paise::new(row.get(base + 8)?),
            gst: Paise::new(row.get(base + 9)?),
            discount: Paise::new(row.get(base + 10)?),
            commission: Paise::new(row.get(base + 11)?),
            tds: Paise::new(row.get(base + 12)?),
            net_commission: Paise::new(row.get(base + 13)?),
        },
        created_at: Timestamp::from_unix(row.get(base + 14)?),
        refund_txn_id: row.get(base + 15)?,
        refunded_at: row.get::<_, Option<i64>>(base + 16)?.map(Timestamp::from_unix),
    })
}

#[derive(Debug, thiserror::Error)]
#[error("unknown stored state {0:?}")]
struct BadState(String);

const BILL_COLUMNS: &str = "txnid, partner_id, reference_id, operator_name, ca_number, amount, ad1, ad2, ad3, \
                            commission, tds, status, operator_ref, created_at, refund_txn_id, refunded_at";

fn bill_from_row(row: &Row<'_>) -> rusqlite::Result<BillPayment> {
    bill_at(row, 0)
}

fn bill_at(row: &Row<'_>, base: usize) -> rusqlite::Result<BillPayment> {
    let reference: String = row.get(base + 2)?;
    let status: String = row.get(base + 11)?;
    Ok(BillPayment {
        txnid: row.get(base)?,
        partner: RegistrationId::new(row.get(base + 1)?),
        reference: ReferenceId::parse(&reference).map_err(|e| conversion_error(base + 2, e))?,
        operator_name: row.get(base + 3)?,
        ca_number: row.get(base + 4)?,
        amount: Paise::new(row.get(base + 5)?),
        ad1: row.get(base + 6)?,
        ad2: row.get(base + 7)?,
        ad3: row.get(base + 8)?,
        commission: Paise::new(row.get(base + 9)?),
        tds: Paise::new(row.get(base + 10)?),
        status: BillStatus::parse(&status).ok_or_else(|| conversion_error(base + 11, BadState(status.clone())))?,
        operator_ref: row.get(base + 12)?,
        created_at: Timestamp::from_unix(row.get(base + 13)?),
        refund_txn_id: row.get(base + 14)?,
        refunded_at: row.get::<_, Option<i64>>(base + 15)?.map(Timestamp::from_unix),
    })
}

fn history(conn: &Connection, kind: TxnKind, id: i64) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT from_status, to_status, at, source, reason FROM status_history WHERE kind = ?1 AND txn_id = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![kind.as_str(), id], |row| {
        Ok(HistoryEntry {
            from_status: row.get(0)?,
            to_status: row.get(1)?,
            at: Timestamp::from_unix(row.get(2)?),
            source: row.get(3)?,
            reason: row.get(4)?,
        })
    })?;
    rows.collect()
}

fn insert_history(
    conn: &Connection,
    kind: TxnKind,
    id: i64,
    from: Option<&str>,
    to: &str,
    note: &ChangeNote,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO status_history (kind, txn_id, from_status, to_status, at, source, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![kind.as_str(), id, from, to, note.at.unix(), note.source, note.reason])?;
    Ok(())
}

fn allocate_refund_id(conn: &Connection, kind: TxnKind, id: i64, at: Timestamp) -> rusqlite::Result<String> {
    conn.prepare_cached("INSERT INTO refunds (kind, txn_id, created_at) VALUES (?1, ?2, ?3)")?.execute(params![
        kind.as_str(),
        id,
        at.unix()
    ])?;
    Ok(conn.last_insert_rowid().to_string())
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
        migrate(&mut writer)?;
        let reqids = Arc::new(RecentReqids::default());
        reqids.load(stored_reqids(&writer).context("Failed to read the recent token reqids")?)?;
        let numbers = Arc::new(txn_numbers(&writer)?);
        let (jobs, queue) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_thread(writer, queue))
            .context("Failed to start the SQLite writer")?;
        Ok(SqliteStore {
            readers: Mutex::new(Vec::new()),
            path: path.to_owned(),
            _flusher: ReqidFlusher::start(jobs.clone(), Arc::clone(&reqids))?,
            writer: jobs,
            reqids,
            numbers,
        })
    }

    /// Runs `f` on a pooled read connection, inline.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(|_| poisoned())?.pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connection(&self.path).map_err(StoreError::Unavailable)?,
        };
        let result = f(&conn).map_err(store_error);
        let mut readers = self.readers.lock().map_err(|_| poisoned())?;
        if readers.len() < READERS {
            readers.push(conn);
        }
        result
    }

    /// Runs `f` on the writer connection, on the writer thread, inside a
    /// savepoint of a group transaction (see [`writer_thread`]); answers
    /// once the group's commit has made `f`'s writes durable, or failed.
    async fn write<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: WriteJob = Box::new(move |conn| {
            let result = f(conn);
            Box::new(move |committed: Result<(), StoreError>| {
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
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

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
fn writer_thread(mut conn: Connection, queue: std::sync::mpsc::Receiver<WriteJob>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        run_group(&mut conn, group);
    }
}

/// Runs one group of writes in one transaction and answers each. A write
/// that is not run (the transaction could not begin, or was lost) is
/// dropped, and its caller hears that the writer failed.
fn run_group(conn: &mut Connection, group: Vec<WriteJob>) {
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
        conn.execute_batch("COMMIT").map_err(anyhow::Error::from)
    };
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
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
fn immediate(conn: &mut Connection) -> Result<rusqlite::Savepoint<'_>, StoreError> {
    conn.savepoint().map_err(store_error)
}

#[async_trait]
impl Store for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let (writer, reqids) = (self.writer.clone(), Arc::clone(&self.reqids));
        tokio::task::spawn_blocking(move || flush_reqids(&writer, &reqids, &mut Vec::new()))
            .await
            .map_err(|e| StoreError::Other(anyhow::anyhow!("reqid flush failed: {e}")))?
    }
}

/// [`Store::change_bill`] inside the caller's transaction `tx`: the change,
/// its history row, the refund journal of a wallet-paid refund, the
/// partner's event, and the end of the poll job once the payment is decided.
fn change_bill_in(
    tx: &Connection,
    txnid: i64,
    change: BillChange,
    note: &ChangeNote,
) -> Result<BillPayment, ChangeError> {
    let mut bill = tx
        .prepare_cached(&format!("SELECT {BILL_COLUMNS} FROM bill_payments WHERE txnid = ?1"))
        .and_then(|mut s| s.query_row([txnid], bill_from_row).optional())
        .map_err(store_error)?
        .ok_or(ChangeError::NotFound)?;
    let from = bill.status;
    let change = match change {
        BillChange::Refund { refund_txn_id } if refund_txn_id.is_empty() => BillChange::Refund {
            refund_txn_id: allocate_refund_id(tx, TxnKind::Bbps, txnid, note.at).map_err(store_error)?,
        },
        other => other,
    };
    bill.apply(&change, note.at)?;
    tx.prepare_cached(
                "UPDATE bill_payments SET status = ?1, operator_ref = ?2, refund_txn_id = ?3, refunded_at = ?4, updated_at = ?5 WHERE txnid = ?6",
            )
            .and_then(|mut s| {
                s.execute(params![
                    bill.status.name(),
                    bill.operator_ref,
                    bill.refund_txn_id,
                    bill.refunded_at.map(Timestamp::unix),
                    note.at.unix(),
                    txnid
                ])
            })
            .map_err(store_error)?;
    insert_history(tx, TxnKind::Bbps, txnid, Some(from.name()), bill.status.name(), note).map_err(store_error)?;
    if bill.status == BillStatus::Refunded {
        pay_refund(tx, TxnKind::Bbps, txnid, note.at)?;
    }
    write_event(tx, bill.partner, (TxnKind::Bbps, txnid), bill.status.name(), note.at, || bill_payload(&bill, note.at))
        .map_err(store_error)?;
    if !upstream::bill_needs_polling(&bill) {
        end_poll(tx, TxnKind::Bbps, txnid).map_err(store_error)?;
    }
    Ok(bill)
}

/// Removes a decided transaction's poll job (if it has one, held or not):
/// the poller works only on undecided transactions.
fn end_poll(conn: &Connection, kind: TxnKind, txn_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM upstream_polls WHERE kind = ?1 AND txn_id = ?2")?
        .execute(params![kind.as_str(), txn_id])?;
    Ok(())
}

/// Leases due, free poll jobs: `?1` owner, `?2` lease end, `?3` now, `?4` limit.
/// The inner select walks the partial index `upstream_polls_due` in its own
/// order from the oldest due job and stops after `?4` free ones: held jobs
/// are not in the index, and no sort is needed. `EXPLAIN QUERY PLAN`
/// (kept by the test `the_claim_is_an_index_range_scan`):
/// `SEARCH upstream_polls USING INDEX upstream_polls_due (next_poll_at>? AND next_poll_at<?)`.
const CLAIM_POLLS: &str = "UPDATE upstream_polls SET lease_owner = ?1, lease_until = ?2 \
     WHERE (kind, txn_id) IN (SELECT kind, txn_id FROM upstream_polls \
     WHERE next_poll_at IS NOT NULL AND next_poll_at <= ?3 AND (lease_until IS NULL OR lease_until <= ?3) \
     ORDER BY next_poll_at, txn_id, kind LIMIT ?4) \
     RETURNING kind, txn_id, attempts, next_poll_at";

/// (Re)starts polling of a transaction at `at`: no attempts. An expired
/// lease is released; a live one is kept, so that the poll in flight is
/// still recorded by the worker that holds it.
fn upsert_poll(conn: &Connection, kind: TxnKind, txn_id: i64, at: Timestamp) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO upstream_polls (kind, txn_id, attempts, next_poll_at) VALUES (?1, ?2, 0, ?3) \
         ON CONFLICT (kind, txn_id) DO UPDATE SET attempts = 0, next_poll_at = excluded.next_poll_at, \
         lease_owner = CASE WHEN lease_until > ?4 THEN lease_owner END, \
         lease_until = CASE WHEN lease_until > ?4 THEN lease_until END",
    )?
    .execute(params![kind.as_str(), txn_id, at.unix(), Timestamp::now().unix()])?;
    Ok(())
}

/// Counts a poll of the job `(kind, txn_id, owner)` holds and sets its next
/// due time (`None`: held), releasing the lease. Rows changed (0 or 1).
fn finish_poll_row(conn: &Connection, key: (&str, i64, &str), next: Option<i64>) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE upstream_polls SET attempts = attempts + 1, next_poll_at = ?4, lease_owner = NULL, lease_until = NULL \
         WHERE kind = ?1 AND txn_id = ?2 AND lease_owner = ?3",
    )?
    .execute(params![key.0, key.1, key.2, next])
}

/// A poll job from `kind, txn_id, attempts, next_poll_at`; a held job
/// (`next_poll_at` NULL) reads as due at the epoch.
fn poll_from_row(row: &Row<'_>) -> rusqlite::Result<PollJob> {
    let kind: String = row.get(0)?;
    Ok(PollJob {
        kind: txn_kind(0, &kind)?,
        txn_id: row.get(1)?,
        attempts: row.get(2)?,
        due_at: Timestamp::from_unix(row.get::<_, Option<i64>>(3)?.unwrap_or(0)),
    })
}

/// Writes the event of a change, if the partner has a callback URL;
/// `payload` is only built then. It is due at once, or, while an older event
/// of the transaction waits for a retry, when that retry is due (it cannot go
/// before it).
fn write_event(
    conn: &Connection,
    partner: RegistrationId,
    (kind, txn_id): (TxnKind, i64),
    status: &str,
    at: Timestamp,
    payload: impl FnOnce() -> String,
) -> rusqlite::Result<()> {
    let has_url =
        conn.prepare_cached("SELECT 1 FROM partner_callbacks WHERE partner_id = ?1")?.exists([partner.number()])?;
    if !has_url {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO partner_events (partner_id, kind, txn_id, status, payload, created_at, state, attempts, \
         next_attempt_at, deliver_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, \
         MAX(?6, COALESCE((SELECT MAX(next_attempt_at) FROM partner_events \
         WHERE kind = ?2 AND txn_id = ?3 AND state = 'pending'), ?6)), ?7)",
    )?
    .execute(params![
        partner.number(),
        kind.as_str(),
        txn_id,
        status,
        payload(),
        at.unix(),
        at.plus_secs(DELIVERY_WINDOW_SECS).unix()
    ])?;
    Ok(())
}

/// The event columns, as [`event_from_row`] reads them.
const EVENT_COLUMNS: &str = "id, partner_id, kind, txn_id, status, payload, created_at, state, attempts, \
                             next_attempt_at, deliver_until, delivered_at, redelivered_at";

/// Leases due, free pending events that no older pending event of their
/// transaction precedes: `?1` owner, `?2` lease end, `?3` now, `?4` limit.
static CLAIM_EVENTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE partner_events SET lease_owner = ?1, lease_until = ?2 WHERE id IN (SELECT e.id FROM partner_events e \
         WHERE e.state = 'pending' AND e.next_attempt_at <= ?3 AND (e.lease_until IS NULL OR e.lease_until <= ?3) \
         AND NOT EXISTS (SELECT 1 FROM partner_events o WHERE o.kind = e.kind AND o.txn_id = e.txn_id \
         AND o.id < e.id AND o.state = 'pending') ORDER BY e.id LIMIT ?4) RETURNING {EVENT_COLUMNS}"
    )
});

/// Makes event `?1` pending again, due at `?2` (now), delivered until `?3`,
/// marked redelivered. A live lease is kept: the attempt in flight is
/// recorded by its worker (and is the redelivery), never lost.
static REDELIVER_EVENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE partner_events SET state = 'pending', next_attempt_at = ?2, deliver_until = ?3, delivered_at = NULL, \
         redelivered_at = ?2, \
         lease_owner = CASE WHEN lease_until > ?2 THEN lease_owner END, \
         lease_until = CASE WHEN lease_until > ?2 THEN lease_until END \
         WHERE id = ?1 RETURNING {EVENT_COLUMNS}"
    )
});

/// Gives partner `?1` callback secret `?2` unless it has one.
const FIRST_CALLBACK_SECRET: &str = "INSERT INTO partner_callback_secrets (partner_id, secret, updated_at) \
     VALUES (?1, ?2, ?4) ON CONFLICT (partner_id) DO NOTHING";
/// Gives partner `?1` callback secret `?2`; the one it replaces stays valid
/// until `?3` (NULL: not at all).
const REPLACE_CALLBACK_SECRET: &str = "INSERT INTO partner_callback_secrets (partner_id, secret, previous_secret, \
     previous_secret_until, updated_at) VALUES (?1, ?2, NULL, NULL, ?4) ON CONFLICT (partner_id) DO UPDATE SET \
     previous_secret = CASE WHEN ?3 IS NULL THEN NULL ELSE secret END, previous_secret_until = ?3, \
     secret = excluded.secret, updated_at = excluded.updated_at";

/// Cancels the pending events of partner `?1` (its URL was cleared). A
/// lease is kept, so that an attempt in flight is still recorded.
const CANCEL_EVENTS: &str =
    "UPDATE partner_events SET state = 'cancelled', next_attempt_at = NULL WHERE partner_id = ?1 AND state = 'pending'";

/// Settles an attempt of event `?1` if `?2` holds its lease: attempts `?3`,
/// state `?4`, next attempt `?5`, delivered at `?6`. An event cancelled while
/// the attempt was in flight stays cancelled unless the attempt delivered it.
const SETTLE_ATTEMPT: &str = "UPDATE partner_events SET attempts = ?3, \
     state = CASE WHEN state = 'cancelled' AND ?4 <> 'delivered' THEN 'cancelled' ELSE ?4 END, \
     next_attempt_at = CASE WHEN state = 'cancelled' AND ?4 <> 'delivered' THEN NULL ELSE ?5 END, \
     delivered_at = ?6, lease_owner = NULL, lease_until = NULL \
     WHERE id = ?1 AND lease_owner = ?2 AND state IN ('pending', 'cancelled')";

/// Later pending events of event `?1`'s transaction wait for its retry at
/// `?2`: they are not claimed before it is settled, so they are not due before.
const HOLD_BACK_LATER_EVENTS: &str = "UPDATE partner_events SET next_attempt_at = MAX(next_attempt_at, ?2) \
     WHERE (kind, txn_id) = (SELECT kind, txn_id FROM partner_events WHERE id = ?1) \
     AND id > ?1 AND state = 'pending'";

/// An event from [`EVENT_COLUMNS`].
fn event_from_row(row: &Row<'_>) -> rusqlite::Result<PartnerEvent> {
    let kind: String = row.get(2)?;
    let state: String = row.get(7)?;
    Ok(PartnerEvent {
        id: row.get(0)?,
        partner: RegistrationId::new(row.get(1)?),
        kind: txn_kind(2, &kind)?,
        txn_id: row.get(3)?,
        status: row.get(4)?,
        payload: row.get(5)?,
        created_at: Timestamp::from_unix(row.get(6)?),
        state: EventState::parse(&state).ok_or_else(|| conversion_error(7, BadState(state.clone())))?,
        attempts: row.get(8)?,
        next_attempt_at: row.get::<_, Option<i64>>(9)?.map(Timestamp::from_unix),
        deliver_until: Timestamp::from_unix(row.get(10)?),
        delivered_at: row.get::<_, Option<i64>>(11)?.map(Timestamp::from_unix),
        redelivered_at: row.get::<_, Option<i64>>(12)?.map(Timestamp::from_unix),
    })
}

/// The query of [`Store::events`] and its parameters: only the filters
/// given, so that SQLite can use the matching index.
fn events_query(filter: &EventFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let mut add = |clause: &str, value: Value| {
        values.push(value);
        clauses.push(format!("{clause} ?{}", values.len()));
    };
    if let Some(partner) = filter.partner {
        add("partner_id =", Value::Integer(partner.number()));
    }
    if let Some(state) = filter.state {
        add("state =", Value::Text(state.name().to_owned()));
    }
    if let Some((kind, txn_id)) = filter.txn {
        add("kind =", Value::Text(kind.as_str().to_owned()));
        add("txn_id =", Value::Integer(txn_id));
    }
    if let Some(before) = filter.before_id {
        add("id <", Value::Integer(before));
    }
    let limit = match filter.limit {
        0 => 100,
        n => n.min(1000),
    };
    let filters = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    values.push(Value::Integer(i64::from(limit)));
    let sql = format!("SELECT {EVENT_COLUMNS} FROM partner_events{filters} ORDER BY id DESC LIMIT ?{}", values.len());
    (sql, values)
}

/// Stores a delivery attempt.
fn insert_attempt(conn: &Connection, a: &DeliveryAttempt) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO delivery_attempts (event_id, attempt, instance, url, at, duration_ms, http_status, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        a.event_id,
        a.attempt,
        a.instance,
        a.url,
        a.at.unix(),
        a.duration_ms,
        a.http_status,
        a.error
    ])?;
    Ok(())
}

/// An attempt from `event_id, attempt, instance, url, at, duration_ms, http_status, error`.
fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        event_id: row.get(0)?,
        attempt: row.get(1)?,
        instance: row.get(2)?,
        url: row.get(3)?,
        at: Timestamp::from_unix(row.get(4)?),
        duration_ms: row.get(5)?,
        http_status: row.get(6)?,
        error: row.get(7)?,
    })
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

/// Whether the partner exists.
fn partner_exists(conn: &Connection, partner: RegistrationId) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM partners WHERE id = ?1")?.exists([partner.number()])
}

/// Fails with `UnknownPartner` unless the partner exists.
fn require_partner(conn: &Connection, partner: RegistrationId) -> Result<(), DebitError> {
    partner_exists(conn, partner).map_err(store_error)?.then_some(()).ok_or(DebitError::UnknownPartner)
}

/// The partner's stored wallet balance (0 without a wallet row).
fn balance(conn: &Connection, partner: RegistrationId) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT balance FROM wallets WHERE partner_id = ?1")?
        .query_row([partner.number()], |r| r.get(0))
        .optional()
        .map(Option::unwrap_or_default)
}

/// Adds `change` to the partner's wallet (creating it at 0 first) unless the
/// balance would go below zero: the closing balance, or `None` if refused.
fn add_to_wallet(conn: &Connection, partner: RegistrationId, change: Paise) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("INSERT INTO wallets (partner_id, balance) VALUES (?1, 0) ON CONFLICT DO NOTHING")?
        .execute([partner.number()])?;
    conn.prepare_cached(
        "UPDATE wallets SET balance = balance + ?2 WHERE partner_id = ?1 AND balance + ?2 >= 0 RETURNING balance",
    )?
    .query_row(params![partner.number(), change.get()], |r| r.get(0))
    .optional()
}

/// Moves an existing partner's wallet by `change`, refusing `InsufficientFunds`.
fn debit_wallet(conn: &Connection, partner: RegistrationId, change: Paise) -> Result<WalletMove, DebitError> {
    require_partner(conn, partner)?;
    match add_to_wallet(conn, partner, change).map_err(store_error)? {
        Some(closing) => Ok(WalletMove { opening: Paise::new(closing) - change, closing: Paise::new(closing) }),
        None => {
            Err(DebitError::InsufficientFunds { balance: Paise::new(balance(conn, partner).map_err(store_error)?) })
        }
    }
}

/// Writes a journal and its postings; its id.
fn insert_journal(conn: &Connection, journal: &Journal) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO journals (partner_id, purpose, kind, txn_id, memo, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        journal.partner.number(),
        journal.purpose.as_str(),
        journal.txn.map(|(kind, _)| kind.as_str()),
        journal.txn.map(|(_, id)| id),
        journal.memo,
        journal.at.unix()
    ])?;
    let id = conn.last_insert_rowid();
    let mut stmt = conn.prepare_cached("INSERT INTO postings (journal_id, account, amount) VALUES (?1, ?2, ?3)")?;
    for posting in &journal.postings {
        stmt.execute(params![id, posting.account.name(), posting.amount.get()])?;
    }
    Ok(id)
}

/// The debit journal of a transaction, with its postings, if it was paid from the wallet.
fn debit_journal(conn: &Connection, kind: TxnKind, id: i64) -> rusqlite::Result<Option<(i64, Journal)>> {
    let head = conn
        .prepare_cached(
            "SELECT id, partner_id, memo, at FROM journals WHERE kind = ?1 AND txn_id = ?2 AND purpose = 'debit'",
        )?
        .query_row(params![kind.as_str(), id], |r| {
            let journal = Journal {
                partner: RegistrationId::new(r.get(1)?),
                purpose: Purpose::Debit,
                txn: Some((kind, id)),
                memo: r.get(2)?,
                at: Timestamp::from_unix(r.get(3)?),
                postings: Vec::new(),
            };
            Ok((r.get::<_, i64>(0)?, journal))
        })
        .optional()?;
    let Some((journal_id, mut journal)) = head else { return Ok(None) };
    let mut stmt = conn.prepare_cached("SELECT account, amount FROM postings WHERE journal_id = ?1 ORDER BY id")?;
    let postings = stmt.query_map([journal_id], |r| {
        let account: String = r.get(0)?;
        Ok(Posting {
            account: Account::parse(&account).map_err(|e| conversion_error(0, e))?,
            amount: Paise::new(r.get(1)?),
        })
    })?;
    journal.postings = postings.collect::<rusqlite::Result<_>>()?;
    Ok(Some((journal_id, journal)))
}

/// Pays back a refunded transaction that was paid from the wallet: writes
/// the refund journal of its debit and credits the wallet. Nothing for a
/// transaction without a debit journal (imported or made by an operator).
fn pay_refund(conn: &Connection, kind: TxnKind, id: i64, at: Timestamp) -> Result<(), StoreError> {
    let Some((_, debit)) = debit_journal(conn, kind, id).map_err(store_error)? else { return Ok(()) };
    let refund = Journal::refund_of(&debit, at);
    add_to_wallet(conn, refund.partner, refund.wallet_change())
        .map_err(store_error)?
        .context("A refund would take the wallet below zero")?;
    insert_journal(conn, &refund).map_err(store_error)?;
    Ok(())
}

/// Reads a stored transaction kind.
fn txn_kind(column: usize, text: &str) -> rusqlite::Result<TxnKind> {
    TxnKind::parse(text).ok_or_else(|| conversion_error(column, BadState(text.to_owned())))
}

/// A statement line from `j.id, j.at, j.purpose, j.kind, j.txn_id, j.memo, amount`.
fn statement_line(row: &Row<'_>) -> rusqlite::Result<StatementLine> {
    let purpose: String = row.get(2)?;
    let kind: Option<String> = row.get(3)?;
    let txn_id: Option<i64> = row.get(4)?;
    let txn = match (kind, txn_id) {
        (Some(kind), Some(id)) => Some((txn_kind(3, &kind)?, id)),
        _ => None,
    };
    Ok(StatementLine {
        journal_id: row.get(0)?,
        at: Timestamp::from_unix(row.get(1)?),
        purpose: Purpose::parse(&purpose).ok_or_else(|| conversion_error(2, BadState(purpose.clone())))?,
        txn,
        memo: row.get(5)?,
        amount: Paise::new(row.get(6)?),
    })
}

/// Every row of a parameterless query.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], f)?;
    rows.collect()
}

/// `(kind, txn_id)` of an audit row.
fn kind_and_id(row: &Row<'_>) -> rusqlite::Result<(String, i64)> {
    Ok((row.get(0)?, row.get(1)?))
}

/// Journals whose postings do not sum to zero.
const AUDIT_UNBALANCED: &str =
    "SELECT journal_id, SUM(amount) FROM postings GROUP BY journal_id HAVING SUM(amount) <> 0 ORDER BY journal_id";

/// Wallets whose balance is negative or differs from their postings.
const AUDIT_WALLETS: &str = "WITH sums AS (SELECT CAST(substr(account, 8) AS INTEGER) AS partner_id, \
                             SUM(amount) AS total FROM postings WHERE account LIKE 'wallet:%' GROUP BY account), \
                             ids AS (SELECT partner_id FROM wallets UNION SELECT partner_id FROM sums) \
                             SELECT ids.partner_id, COALESCE(w.balance, 0), COALESCE(s.total, 0) FROM ids \
                             LEFT JOIN wallets w ON w.partner_id = ids.partner_id \
                             LEFT JOIN sums s ON s.partner_id = ids.partner_id \
                             WHERE COALESCE(w.balance, 0) <> COALESCE(s.total, 0) OR COALESCE(w.balance, 0) < 0 \
                             ORDER BY ids.partner_id";

/// Transactions with more than one journal of a purpose.
const AUDIT_REPEATED: &str = "SELECT kind, txn_id, purpose, COUNT(*) FROM journals WHERE txn_id IS NOT NULL \
                              GROUP BY kind, txn_id, purpose HAVING COUNT(*) > 1 ORDER BY kind, txn_id, purpose";

/// Refund journals without a debit journal.
const AUDIT_REFUNDS_WITHOUT_DEBIT: &str = "SELECT DISTINCT r.kind, r.txn_id FROM journals r \
     WHERE r.purpose = 'refund' AND r.txn_id IS NOT NULL AND NOT EXISTS \
     (SELECT 1 FROM journals d WHERE d.kind = r.kind AND d.txn_id = r.txn_id AND d.purpose = 'debit') \
     ORDER BY r.kind, r.txn_id";

/// Refund journals whose record is not refunded (DMT status 0, bill status 'refunded').
const AUDIT_REFUNDS_NOT_RECORDED: &str = "SELECT DISTINCT j.kind, j.txn_id FROM journals j \
     LEFT JOIN dmt_transfers t ON j.kind = 'dmt' AND t.ackno = j.txn_id \
     LEFT JOIN bill_payments b ON j.kind = 'bbps' AND b.txnid = j.txn_id \
     WHERE j.purpose = 'refund' AND j.txn_id IS NOT NULL \
     AND NOT (COALESCE(t.status = 0, 0) OR COALESCE(b.status = 'refunded', 0)) ORDER BY j.kind, j.txn_id";

/// Debited records in the refunded state without a refund journal.
const AUDIT_REFUNDS_NOT_PAID: &str = "SELECT DISTINCT d.kind, d.txn_id FROM journals d \
     LEFT JOIN dmt_transfers t ON d.kind = 'dmt' AND t.ackno = d.txn_id \
     LEFT JOIN bill_payments b ON d.kind = 'bbps' AND b.txnid = d.txn_id \
     WHERE d.purpose = 'debit' AND d.txn_id IS NOT NULL AND (t.status = 0 OR b.status = 'refunded') AND NOT EXISTS \
     (SELECT 1 FROM journals r WHERE r.kind = d.kind AND r.txn_id = d.txn_id AND r.purpose = 'refund') \
     ORDER BY d.kind, d.txn_id";

/// Bill payments paid from the wallet, failed, and not refunded.
const AUDIT_FAILED_NOT_REFUNDED: &str = "SELECT d.kind, d.txn_id FROM journals d \
     JOIN bill_payments b ON d.kind = 'bbps' AND b.txnid = d.txn_id \
     WHERE d.purpose = 'debit' AND b.status = 'failed' AND NOT EXISTS \
     (SELECT 1 FROM journals r WHERE r.kind = d.kind AND r.txn_id = d.txn_id AND r.purpose = 'refund') \
     ORDER BY d.kind, d.txn_id";

/// What the remitter sent through `bank` in non-refunded transfers made at or after `since`.
fn routed_since(
    conn: &Connection,
    partner: RegistrationId,
    mobile: &MobileNumber,
    bank: Bank,
    since: Timestamp,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(t.amount), 0) FROM dmt_routes r JOIN dmt_transfers t ON t.ackno = r.ackno \
         WHERE r.partner_id = ?1 AND r.remitter_mobile = ?2 AND r.bank = ?3 AND t.created_at >= ?4 AND t.status <> 0",
    )?
    .query_row(params![partner.number(), mobile.as_str(), bank.number(), since.unix()], |r| r.get(0))
}

/// Records how a new transfer travels.
fn insert_route(conn: &Connection, transfer: &DmtTransfer, route: &DmtRoute) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO dmt_routes (ackno, partner_id, remitter_mobile, beneficiary_id, bank, mode, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        transfer.ackno,
        transfer.partner.number(),
        route.remitter.as_str(),
        route.beneficiary_id,
        route.bank.number(),
        route.mode.as_str(),
        transfer.created_at.unix()
    ])?;
    Ok(())
}

/// A route from `remitter_mobile, beneficiary_id, bank, mode`.
fn route_from_row(row: &Row<'_>) -> rusqlite::Result<DmtRoute> {
    let mobile: String = row.get(0)?;
    let bank: i64 = row.get(2)?;
    let mode: String = row.get(3)?;
    Ok(DmtRoute {
        remitter: MobileNumber::parse(&mobile).map_err(|e| conversion_error(0, e))?,
        beneficiary_id: row.get(1)?,
        bank: Bank::from_number(bank).ok_or_else(|| conversion_error(2, BadState(bank.to_string())))?,
        mode: TransferMode::parse(&mode).ok_or_else(|| conversion_error(3, BadState(mode.clone())))?,
    })
}

/// The beneficiary columns, as [`beneficiary_from_row`] reads them.
const BENEFICIARY_COLUMNS: &str = "id, partner_id, remitter_mobile, name, account, ifsc, bank_name, created_at";

/// A beneficiary from [`BENEFICIARY_COLUMNS`].
fn beneficiary_from_row(row: &Row<'_>) -> rusqlite::Result<Beneficiary> {
    let mobile: String = row.get(2)?;
    let account: String = row.get(4)?;
    let ifsc: String = row.get(5)?;
    Ok(Beneficiary {
        id: row.get(0)?,
        partner: RegistrationId::new(row.get(1)?),
        remitter: MobileNumber::parse(&mobile).map_err(|e| conversion_error(2, e))?,
        name: row.get(3)?,
        account: AccountNumber::parse(&account).map_err(|e| conversion_error(4, e))?,
        ifsc: Ifsc::parse(&ifsc).map_err(|e| conversion_error(5, e))?,
        bank_name: row.get(6)?,
        created_at: Timestamp::from_unix(row.get(7)?),
    })
}

/// The partner's OTP `token` for `purpose`.
fn load_otp(
    conn: &Connection,
    partner: RegistrationId,
    token: &str,
    purpose: OtpPurpose,
) -> rusqlite::Result<Option<OtpRecord>> {
    conn.prepare_cached(
        "SELECT subject, code_hash, expires_at, attempts, used FROM otps \
         WHERE token = ?1 AND partner_id = ?2 AND purpose = ?3",
    )?
    .query_row(params![token, partner.number(), purpose.as_str()], |r| {
        Ok(OtpRecord {
            token: token.to_owned(),
            partner,
            purpose,
            subject: r.get(0)?,
            code_hash: r.get(1)?,
            expires_at: Timestamp::from_unix(r.get(2)?),
            attempts: r.get(3)?,
            used: r.get(4)?,
        })
    })
    .optional()
}

/// Maps an insert failure of row `index`: a UNIQUE violation is a duplicate
/// reference, a foreign-key violation an unknown partner.
fn insert_error(error: rusqlite::Error, index: usize, partner: RegistrationId, reference: &ReferenceId) -> InsertError {
    if is_unique_violation(&error) {
        InsertError::Duplicate { index, reference: reference.as_str().to_owned() }
    } else if error.to_string().contains("FOREIGN KEY") {
        InsertError::UnknownPartner { index, partner }
    } else {
        InsertError::Store(store_error(error))
    }
}

fn insert_dmt(
    conn: &Connection,
    numbers: &TxnNumbers,
    row: &DmtTransfer,
    note: &ChangeNote,
    index: usize,
) -> Result<i64, InsertError> {
    let ackno = if row.ackno != 0 { row.ackno } else { new_number(conn, numbers, TxnKind::Dmt)? };
    let c = &row.charges;
    conn.prepare_cached(
        "INSERT INTO dmt_transfers (ackno, partner_id, reference_id, amount, account, utr, status, customer_charge, \
         provider_share, gst, discount, commission, tds, net_commission, created_at, updated_at, refund_txn_id, refunded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16, ?17)",
    )
    .and_then(|mut s| {
        s.execute(params![
            ackno,
            row.partner.number(),
            row.reference.as_str(),
            row.amount.get(),
            row.account,
            row.utr,
            row.status.code(),
            c.customer_charge.get(),
            c.provider_share.get(),
            c.gst.get(),
            c.discount.get(),
            c.commission.get(),
            c.tds.get(),
            c.net_commission.get(),
            row.created_at.unix(),
            row.refund_txn_id,
            row.refunded_at.map(Timestamp::unix),
        ])
    })
    .map_err(|e| insert_error(e, index, row.partner, &row.reference))?;
    insert_history(conn, TxnKind::Dmt, ackno, None, row.status.name(), note).map_err(store_error)?;
    Ok(ackno)
}

fn insert_bill(
    conn: &Connection,
    numbers: &TxnNumbers,
    row: &BillPayment,
    note: &ChangeNote,
    index: usize,
) -> Result<i64, InsertError> {
    let txnid = if row.txnid != 0 { row.txnid } else { new_number(conn, numbers, TxnKind::Bbps)? };
    conn.prepare_cached(
        "INSERT INTO bill_payments (txnid, partner_id, reference_id, operator_name, ca_number, amount, ad1, ad2, ad3, \
         commission, tds, status, operator_ref, created_at, updated_at, refund_txn_id, refunded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16)",
    )
    .and_then(|mut s| {
        s.execute(params![
            txnid,
            row.partner.number(),
            row.reference.as_str(),
            row.operator_name,
            row.ca_number,
            row.amount.get(),
            row.ad1,
            row.ad2,
            row.ad3,
            row.commission.get(),
            row.tds.get(),
            row.status.name(),
            row.operator_ref,
            row.created_at.unix(),
            row.refund_txn_id,
            row.refunded_at.map(Timestamp::unix),
        ])
    })
    .map_err(|e| insert_error(e, index, row.partner, &row.reference))?;
    insert_history(conn, TxnKind::Bbps, txnid, None, row.status.name(), note).map_err(store_error)?;
    Ok(txnid)
}

/// The installation's transaction numbering: its secret is made (random,
/// 32 bytes) the first time a store is opened after the migration that
/// created its table.
fn txn_numbers(conn: &Connection) -> anyhow::Result<TxnNumbers> {
    conn.execute(
        "INSERT INTO txn_number_secret (id, secret) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
        [super::new_txn_number_secret()],
    )
    .context("Failed to store the transaction-number secret")?;
    let secret: String = conn
        .query_row("SELECT secret FROM txn_number_secret WHERE id = 1", [], |r| r.get(0))
        .context("Failed to read the transaction-number secret")?;
    Ok(TxnNumbers::new(secret.as_bytes()))
}

/// The next number of `kind`: the counter's next value through the keyed
/// permutation, passing over any number a record made before already has.
fn new_number(conn: &Connection, numbers: &TxnNumbers, kind: TxnKind) -> Result<i64, InsertError> {
    let (table, column) = match kind {
        TxnKind::Dmt => ("dmt_transfers", "ackno"),
        TxnKind::Bbps => ("bill_payments", "txnid"),
    };
    let taken_sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} = ?1)");
    loop {
        let counter: i64 = conn
            .prepare_cached("UPDATE txn_number_counters SET next = next + 1 WHERE kind = ?1 RETURNING next - 1")
            .and_then(|mut s| s.query_row([kind.as_str()], |r| r.get(0)))
            .map_err(store_error)?;
        let number = numbers
            .number(kind, counter as u64)
            .map_err(|e| InsertError::Store(StoreError::Other(anyhow::Error::new(e))))?;
        let taken: bool = conn
            .prepare_cached(&taken_sql)
            .and_then(|mut s| s.query_row([number], |r| r.get(0)))
            .map_err(store_error)?;
        if !taken {
            return Ok(number);
        }
    }
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

    #[test]
    fn a_reqid_is_a_replay_within_the_window_and_fresh_after_it() {
        let reqids = RecentReqids::default();
        let check = |now: i64| reqids.remember(7, "r1", now, now - 600).unwrap_or_else(|e| panic!("{e}"));
        assert!(check(1_000));
        assert!(!check(1_300), "seen 300 s ago");
        assert!(!check(1_600), "seen exactly at the cutoff");
        assert!(check(2_000), "seen 1,000 s ago: outside the window");
        assert!(reqids.remember(8, "r1", 2_001, 1_401).unwrap_or_else(|e| panic!("{e}")), "another partner");
    }

    #[test]
    fn reqids_outlive_the_store_and_old_ones_are_pruned_when_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("payrail.db");
        let remember = |store: &SqliteStore, reqid: &str, now: i64| {
            store.reqids.remember(7, reqid, now, now - 600).unwrap_or_else(|e| panic!("{e}"))
        };
        let batches = |store: &SqliteStore| {
            store.read(|c| c.query_row("SELECT COUNT(*) FROM seen_reqid_batches", [], |r| r.get::<_, i64>(0)))
        };
        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(remember(&store, "old", 1_000));
        drop(store); // the flusher writes what is left
        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!remember(&store, "old", 1_100), "seen before the restart");
        assert!(remember(&store, "new", 1_700));
        drop(store); // writes 'new' and prunes the batch of 'old', outside the window
        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(batches(&store).unwrap_or_else(|e| panic!("{e}")), 1, "the old batch was pruned");
        assert!(!remember(&store, "new", 1_800), "seen before the restart");
        assert!(remember(&store, "old", 1_800), "outside the window");
        assert!(remember(&store, "other", 1_800), "never seen");
    }

    #[test]
    fn reqid_batches_read_back_what_they_hold() {
        let rows = vec![(reqid_fingerprint(1, "a"), 10), (reqid_fingerprint(2, "a"), 12), (u64::MAX, -1)];
        let (blob, last) = encode_reqids(&rows);
        assert_eq!((blob.len(), last), (48, 12));
        assert_eq!(decode_reqids(&blob).collect::<Vec<_>>(), rows);
        assert_ne!(reqid_fingerprint(1, "a"), reqid_fingerprint(2, "a"), "the partner is part of it");
    }

    mod lifecycle {
        use super::super::*;
        use crate::domain::otp::OtpRecord;

        /// Unwraps in a test, showing the error.
        fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
            result.unwrap_or_else(|e| panic!("{e}"))
        }

        fn at(unix: i64) -> Timestamp {
            Timestamp::from_unix(1_700_000_000 + unix)
        }

        fn note(unix: i64) -> ChangeNote {
            ChangeNote { source: "test".into(), reason: None, at: at(unix) }
        }

        fn open() -> (tempfile::TempDir, Arc<SqliteStore>) {
            let dir = ok(tempfile::tempdir());
            let store = ok(SqliteStore::open(&dir.path().join("payrail.db")));
            (dir, Arc::new(store))
        }

        async fn partner(store: &SqliteStore) -> RegistrationId {
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

        async fn top_up(store: &SqliteStore, partner: RegistrationId, rupees: i64, unix: i64) -> WalletMove {
            ok(store.post_journal(Journal::top_up(partner, Paise::rupees(rupees), "top-up".into(), at(unix))).await)
        }

        fn mobile() -> MobileNumber {
            ok(MobileNumber::parse("9876543210"))
        }

        /// A ₹`rupees` transfer with a ₹10 charge (₹3.50 to the provider).
        fn transfer(partner: RegistrationId, reference: &str, rupees: i64, status: DmtStatus) -> DmtTransfer {
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
            }
        }

        fn route(bank: Bank) -> DmtRoute {
            DmtRoute { remitter: mobile(), beneficiary_id: 1, bank, mode: TransferMode::Imps }
        }

        fn no_limit() -> MonthlyLimit {
            MonthlyLimit { since: at(0), limit: Paise::rupees(1_000_000) }
        }

        async fn send(
            store: &SqliteStore,
            partner: RegistrationId,
            reference: &str,
            rupees: i64,
        ) -> Result<Debited<DmtTransfer>, DebitError> {
            let t = transfer(partner, reference, rupees, DmtStatus::InProcess);
            store.create_dmt_debited(t, route(Bank::Bank1), no_limit(), note(10), None).await
        }

        fn bill(partner: RegistrationId, reference: &str, rupees: i64) -> BillPayment {
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

        async fn audit_is_clean(store: &SqliteStore) -> LedgerAudit {
            let audit = ok(store.audit().await);
            assert_eq!(audit, LedgerAudit { journals: audit.journals, ..LedgerAudit::default() });
            audit
        }

        fn raw(store: &SqliteStore, sql: &str) {
            let conn = ok(connection(&store.path));
            ok(conn.execute_batch(sql));
        }

        #[tokio::test]
        async fn a_withdrawal_beyond_the_balance_is_refused_and_changes_nothing() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            assert_eq!(ok(store.wallet_balance(p).await), Paise::ZERO);
            assert_eq!(
                top_up(&store, p, 100, 1).await,
                WalletMove { opening: Paise::ZERO, closing: Paise::rupees(100) }
            );
            let over = store.post_journal(Journal::withdrawal(p, Paise::rupees(150), "x".into(), at(2))).await;
            assert!(matches!(over, Err(DebitError::InsufficientFunds { balance }) if balance == Paise::rupees(100)));
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(100));
            let out = ok(store.post_journal(Journal::withdrawal(p, Paise::rupees(40), "x".into(), at(3))).await);
            assert_eq!(out, WalletMove { opening: Paise::rupees(100), closing: Paise::rupees(60) });
            let ghost = Journal::top_up(RegistrationId::new(99_999), Paise::rupees(1), "x".into(), at(4));
            assert!(matches!(store.post_journal(ghost).await, Err(DebitError::UnknownPartner)));
            assert_eq!(audit_is_clean(&store).await.journals, 2);
        }

        #[tokio::test]
        async fn a_debited_transfer_takes_amount_plus_charge_and_its_journal_balances() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 1_000, 1).await;
            let debited = ok(send(&store, p, "R1", 100).await);
            assert!(debited.record.ackno > 0);
            assert_eq!(debited.wallet, WalletMove { opening: Paise::rupees(1_000), closing: Paise::rupees(890) });
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(890));
            let (stored, history) = ok(store.dmt_with_history(debited.record.ackno).await).unwrap_or_else(|| panic!());
            assert_eq!(stored, debited.record);
            assert_eq!(history.len(), 1);
            assert_eq!(ok(store.dmt_route(debited.record.ackno).await), Some(route(Bank::Bank1)));
            assert_eq!(audit_is_clean(&store).await.journals, 2);
        }

        #[tokio::test]
        async fn a_duplicate_reference_is_refused_and_nothing_is_debited() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 1_000, 1).await;
            ok(send(&store, p, "R1", 100).await);
            assert!(matches!(send(&store, p, "R1", 100).await, Err(DebitError::Duplicate(r)) if r == "R1"));
            let imported = transfer(p, "R2", 100, DmtStatus::Success);
            ok(store.insert_dmt_batch(vec![imported], note(5), Arc::new(|_| ())).await);
            assert!(matches!(send(&store, p, "R2", 100).await, Err(DebitError::Duplicate(_))));
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(890));
            assert_eq!(ok(store.counts().await), (2, 0));
            audit_is_clean(&store).await;
        }

        #[tokio::test]
        async fn the_monthly_limit_is_per_pipe_and_ignores_refunded_transfers() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 10_000, 1).await;
            let limit = MonthlyLimit { since: at(0), limit: Paise::rupees(150) };
            let make = |reference: &str, bank: Bank| {
                let t = transfer(p, reference, 100, DmtStatus::InProcess);
                store.create_dmt_debited(t, route(bank), limit.clone(), note(10), None)
            };
            let first = ok(make("R1", Bank::Bank1).await);
            let refused = make("R2", Bank::Bank1).await;
            assert!(matches!(refused, Err(DebitError::MonthlyLimit { remaining }) if remaining == Paise::rupees(50)));
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(9_890));
            ok(make("R2", Bank::Bank2).await);
            let usage = ok(store.remitter_usage(p, &mobile(), at(0)).await);
            assert_eq!(usage, [Paise::rupees(100), Paise::rupees(100), Paise::ZERO]);
            assert_eq!(ok(store.remitter_usage(p, &mobile(), at(11)).await), [Paise::ZERO; 3]);
            ok(store.change_dmt(first.record.ackno, DmtChange::Fail, note(20)).await);
            let refund = DmtChange::Refund { refund_txn_id: String::new() };
            ok(store.change_dmt(first.record.ackno, refund, note(21)).await);
            ok(make("R3", Bank::Bank1).await);
            audit_is_clean(&store).await;
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

        #[tokio::test]
        async fn a_refund_credits_the_wallet_exactly_once() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 1_000, 1).await;
            let ackno = ok(send(&store, p, "R1", 100).await).record.ackno;
            ok(store.change_dmt(ackno, DmtChange::Fail, note(20)).await);
            let refund = DmtChange::Refund { refund_txn_id: String::new() };
            let refunded = ok(store.change_dmt(ackno, refund.clone(), note(21)).await);
            assert_eq!(refunded.status, DmtStatus::Refunded);
            assert!(refunded.refund_txn_id.is_some_and(|id| !id.is_empty()));
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000));
            assert!(matches!(store.change_dmt(ackno, refund, note(22)).await, Err(ChangeError::Forbidden(_))));
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000));

            let txnid = ok(store.create_bill_debited(bill(p, "B1", 200), note(30), None).await).record.txnid;
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(800));
            ok(store.change_bill(txnid, BillChange::Fail, note(31)).await);
            ok(store.change_bill(txnid, BillChange::Refund { refund_txn_id: "X1".into() }, note(32)).await);
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000));
            assert_eq!(audit_is_clean(&store).await.journals, 5);
        }

        #[tokio::test]
        async fn refunding_an_imported_transfer_moves_no_money() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 1_000, 1).await;
            let imported = transfer(p, "I1", 100, DmtStatus::Failed);
            let ackno = ok(store.insert_dmt_batch(vec![imported], note(5), Arc::new(|_| ())).await)[0];
            let refund = DmtChange::Refund { refund_txn_id: String::new() };
            ok(store.change_dmt(ackno, refund, note(6)).await);
            assert_eq!(ok(store.wallet_balance(p).await), Paise::rupees(1_000));
            assert_eq!(audit_is_clean(&store).await.journals, 1);
        }

        #[tokio::test]
        async fn an_otp_is_accepted_once_for_its_partner_and_purpose() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            let issued =
                OtpRecord::issue(p, OtpPurpose::Transfer, "subj".into(), "tok1".into(), "123456".into(), at(0));
            ok(store.insert_otp(issued.record).await);
            let check = |partner, purpose, code: &'static str| store.check_otp(partner, "tok1", purpose, code, at(10));
            assert_eq!(ok(check(p, OtpPurpose::Registration, "123456").await), OtpCheck::Unknown);
            assert_eq!(ok(check(RegistrationId::new(1), OtpPurpose::Transfer, "123456").await), OtpCheck::Unknown);
            assert_eq!(ok(check(p, OtpPurpose::Transfer, "000000").await), OtpCheck::Wrong(2));
            assert_eq!(ok(check(p, OtpPurpose::Transfer, "123456").await), OtpCheck::Accepted("subj".into()));
            assert_eq!(ok(check(p, OtpPurpose::Transfer, "123456").await), OtpCheck::Spent);
            let unknown = store.check_otp(p, "nope", OtpPurpose::Transfer, "123456", at(10)).await;
            assert_eq!(ok(unknown), OtpCheck::Unknown);
        }

        #[tokio::test]
        async fn a_statement_opens_with_earlier_postings_and_closes_on_the_balance() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 100, 1).await;
            top_up(&store, p, 500, 5).await;
            ok(send(&store, p, "R1", 100).await);
            top_up(&store, p, 7, 50).await;
            let statement = ok(store.wallet_statement(p, at(2), at(50)).await);
            assert_eq!(statement.opening, Paise::rupees(100));
            let amounts: Vec<_> = statement.lines.iter().map(|l| (l.purpose, l.amount)).collect();
            assert_eq!(amounts, [(Purpose::TopUp, Paise::rupees(500)), (Purpose::Debit, Paise::rupees(-110))]);
            assert!(matches!(statement.lines[1].txn, Some((TxnKind::Dmt, _))));
            assert_eq!(statement.closing(), Paise::rupees(490));
            let whole = ok(store.wallet_statement(p, at(0), at(100)).await);
            assert_eq!((whole.opening, whole.closing()), (Paise::ZERO, ok(store.wallet_balance(p).await)));
        }

        #[tokio::test]
        async fn the_audit_finds_corruption() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 1_000, 1).await;
            let ackno = ok(send(&store, p, "R1", 100).await).record.ackno;
            audit_is_clean(&store).await;
            raw(&store, "UPDATE wallets SET balance = balance + 1");
            raw(&store, &format!("UPDATE dmt_transfers SET status = 0 WHERE ackno = {ackno}"));
            // One call: `last_insert_rowid()` is per connection.
            raw(
                &store,
                &format!(
                    "INSERT INTO journals (partner_id, purpose, kind, txn_id, memo, at) \
                     VALUES ({}, 'refund', 'dmt', 999, 'x', 0); \
                     INSERT INTO postings (journal_id, account, amount) VALUES (last_insert_rowid(), 'funding', 5);",
                    p.number()
                ),
            );
            let audit = ok(store.audit().await);
            let n = p.number();
            assert_eq!(audit.total, 5);
            assert_eq!(audit.journals, 3);
            assert_eq!(audit.unbalanced_journals, [(3, 5)]);
            assert_eq!(audit.wallet_mismatches, [(n, 89_001, 89_000)]);
            assert_eq!(audit.refunds_without_debit, [("dmt".to_owned(), 999)]);
            assert_eq!(audit.refunds_not_recorded, [("dmt".to_owned(), 999)]);
            assert_eq!(audit.refunds_not_paid, [("dmt".to_owned(), ackno)]);
            assert!(audit.repeated_journals.is_empty());
        }

        #[tokio::test]
        async fn fee_plans_remitters_and_beneficiaries() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            let plan = FeePlan::default_plan();
            assert_eq!(ok(store.insert_fee_plan(p, at(0), plan.clone(), at(0)).await).version, 1);
            assert_eq!(ok(store.insert_fee_plan(p, at(9), plan.clone(), at(1)).await).version, 2);
            let versions = ok(store.fee_plans(p).await);
            assert_eq!(
                versions.iter().map(|v| (v.version, v.effective_from)).collect::<Vec<_>>(),
                [(1, at(0)), (2, at(9))]
            );
            assert_eq!(versions[1].plan, plan);
            let ghost = store.insert_fee_plan(RegistrationId::new(5), at(0), plan, at(0)).await;
            assert!(matches!(ghost, Err(DebitError::UnknownPartner)));

            let remitter = Remitter {
                partner: p,
                mobile: mobile(),
                first_name: Some("A".into()),
                last_name: None,
                kyc_id: "K1".into(),
                created_at: at(1),
            };
            assert!(ok(store.insert_remitter(remitter.clone()).await));
            assert!(!ok(store.insert_remitter(remitter.clone()).await));
            assert_eq!(ok(store.find_remitter(p, &mobile()).await), Some(remitter));
            let b = Beneficiary {
                id: 0,
                partner: p,
                remitter: mobile(),
                name: "B".into(),
                account: ok(AccountNumber::parse("123456789")),
                ifsc: ok(Ifsc::parse("SBIN0001234")),
                bank_name: None,
                created_at: at(2),
            };
            let first = ok(ok(store.insert_beneficiary(b.clone()).await));
            let same_bank = Beneficiary { ifsc: ok(Ifsc::parse("SBIN0009999")), ..b.clone() };
            assert_eq!(ok(store.insert_beneficiary(same_bank).await), Err(first.id));
            let other = Beneficiary { account: ok(AccountNumber::parse("987654321")), ..b };
            let second = ok(ok(store.insert_beneficiary(other).await));
            assert!(first.id > 0 && second.id > first.id);
            assert_eq!(ok(store.find_beneficiary(p, first.id).await), Some(first.clone()));
            assert!(ok(store.delete_beneficiary(p, &mobile(), first.id).await));
            assert!(!ok(store.delete_beneficiary(p, &mobile(), first.id).await));
            assert_eq!(ok(store.find_beneficiary(p, first.id).await), None);
            assert_eq!(ok(store.beneficiaries(p, &mobile()).await), [second]);
        }

        // --- Upstream polling and partner callbacks ---------------------

        const HOOK: &str = "https://partner.example/hook";

        /// A partner with a callback URL.
        async fn hooked_partner(store: &SqliteStore) -> RegistrationId {
            let p = partner(store).await;
            assert!(ok(store.set_callback_url(p, Some(HOOK.into()), at(0)).await));
            p
        }

        /// `n` imported in-process transfers (no money moves); their acknos.
        async fn imported(store: &SqliteStore, partner: RegistrationId, prefix: &str, n: usize) -> Vec<i64> {
            let rows = (0..n).map(|i| transfer(partner, &format!("{prefix}{i}"), 10, DmtStatus::InProcess)).collect();
            ok(store.insert_dmt_batch(rows, note(5), Arc::new(|_| ())).await)
        }

        async fn event_ids(store: &SqliteStore, filter: EventFilter) -> Vec<i64> {
            ok(store.events(&filter).await).into_iter().map(|e| e.id).collect()
        }

        async fn claim_event_ids(store: &SqliteStore, owner: &str, now: i64) -> Vec<i64> {
            ok(store.claim_events(owner, at(now), at(now + 60), 10).await).into_iter().map(|e| e.id).collect()
        }

        fn attempt(event_id: i64, attempt: u32, unix: i64) -> DeliveryAttempt {
            DeliveryAttempt {
                event_id,
                attempt,
                instance: "i1".into(),
                url: HOOK.into(),
                at: at(unix),
                duration_ms: 12,
                http_status: Some(500),
                error: Some("HTTP 500".into()),
            }
        }

        fn job(kind: TxnKind, txn_id: i64, attempts: u32, due: i64) -> PollJob {
            PollJob { kind, txn_id, attempts, due_at: at(due) }
        }

        #[tokio::test]
        async fn a_debit_with_poll_at_writes_a_due_job_and_one_without_does_not() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 1_000, 1).await;
            ok(send(&store, p, "R0", 10).await);
            let t = transfer(p, "R1", 10, DmtStatus::InProcess);
            let make = |t| store.create_dmt_debited(t, route(Bank::Bank1), no_limit(), note(10), Some(at(40)));
            let ackno = ok(make(t.clone()).await).record.ackno;
            assert!(matches!(make(t).await, Err(DebitError::Duplicate(_))), "a refused debit writes no job");
            let txnid = ok(store.create_bill_debited(bill(p, "B1", 10), note(11), Some(at(30))).await).record.txnid;
            ok(store.create_bill_debited(bill(p, "B2", 10), note(12), None).await);
            assert!(ok(store.claim_polls("a", at(29), at(90), 10).await).is_empty(), "nothing due yet");
            let jobs = ok(store.claim_polls("a", at(40), at(100), 10).await);
            assert_eq!(jobs, [job(TxnKind::Bbps, txnid, 0, 30), job(TxnKind::Dmt, ackno, 0, 40)]);
        }

        #[tokio::test]
        async fn a_poll_job_is_leased_to_one_claimer_until_the_lease_expires() {
            let (_dir, store) = open();
            ok(store.schedule_poll(TxnKind::Dmt, 7, at(10)).await);
            let first = ok(store.claim_polls("a", at(10), at(70), 5).await);
            assert_eq!(first, [job(TxnKind::Dmt, 7, 0, 10)]);
            assert!(ok(store.claim_polls("b", at(10), at(70), 5).await).is_empty());
            assert!(ok(store.claim_polls("b", at(69), at(130), 5).await).is_empty());
            let second = ok(store.claim_polls("b", at(70), at(130), 5).await);
            assert_eq!(second, first, "claimable again once the lease has expired");
            assert!(!ok(store.finish_poll(&first[0], "a", PollNext::Done).await), "a no longer holds the lease");
            assert!(ok(store.finish_poll(&second[0], "b", PollNext::Again(at(200))).await));
            assert_eq!(ok(store.claim_polls("a", at(200), at(260), 5).await), [job(TxnKind::Dmt, 7, 1, 200)]);
        }

        #[tokio::test]
        async fn finishing_a_poll_reschedules_holds_or_removes_the_job() {
            let (_dir, store) = open();
            for (kind, id) in [(TxnKind::Dmt, 1), (TxnKind::Bbps, 2), (TxnKind::Dmt, 3)] {
                ok(store.schedule_poll(kind, id, at(10)).await);
            }
            let jobs = ok(store.claim_polls("a", at(10), at(70), 10).await);
            assert_eq!(jobs.iter().map(|j| j.txn_id).collect::<Vec<_>>(), [1, 2, 3]);
            assert!(ok(store.finish_poll(&jobs[0], "a", PollNext::Again(at(50))).await));
            assert!(ok(store.finish_poll(&jobs[1], "a", PollNext::Held).await));
            assert!(ok(store.finish_poll(&jobs[2], "a", PollNext::Done).await));
            assert!(!ok(store.finish_poll(&jobs[2], "a", PollNext::Done).await), "the job is gone");
            assert!(!ok(store.finish_poll(&jobs[0], "a", PollNext::Done).await), "the lease was released");
            assert!(ok(store.claim_polls("a", at(49), at(109), 10).await).is_empty());
            assert_eq!(
                ok(store.held_polls().await),
                [PollJob { due_at: Timestamp::from_unix(0), ..job(TxnKind::Bbps, 2, 1, 0) }]
            );
            let again = ok(store.claim_polls("a", at(1_000), at(1_060), 10).await);
            assert_eq!(again, [job(TxnKind::Dmt, 1, 1, 50)], "a held job is never due");

            // An operator resumes the held job, and restarts the leased one.
            ok(store.schedule_poll(TxnKind::Bbps, 2, at(60)).await);
            ok(store.schedule_poll(TxnKind::Dmt, 1, at(60)).await);
            assert!(ok(store.held_polls().await).is_empty());
            assert!(!ok(store.finish_poll(&again[0], "a", PollNext::Done).await), "rescheduling released the lease");
            let resumed = ok(store.claim_polls("b", at(60), at(120), 10).await);
            assert_eq!(resumed, [job(TxnKind::Dmt, 1, 0, 60), job(TxnKind::Bbps, 2, 0, 60)]);
        }

        #[tokio::test]
        async fn a_change_writes_an_event_only_when_the_partner_has_a_callback_url() {
            let (_dir, store) = open();
            let p = partner(&store).await;
            top_up(&store, p, 1_000, 1).await;
            let ackno = ok(send(&store, p, "R1", 100).await).record.ackno;
            ok(store.change_dmt(ackno, DmtChange::SentToBank, note(20)).await);
            assert!(ok(store.events(&EventFilter::default()).await).is_empty());
            assert_eq!(ok(store.callback_url(p).await), None);
            assert!(!ok(store.set_callback_url(RegistrationId::new(99_999), Some(HOOK.into()), at(21)).await));
            assert!(ok(store.set_callback_url(p, Some("https://old.example/".into()), at(21)).await));
            assert!(ok(store.set_callback_url(p, Some(HOOK.into()), at(22)).await));
            assert_eq!(ok(store.callback_url(p).await).as_deref(), Some(HOOK));

            let paid = ok(store.change_dmt(ackno, DmtChange::Success { utr: None }, note(30)).await);
            let late = ok(store.change_dmt(ackno, DmtChange::Utr { utr: "U1".into() }, note(31)).await);
            let events = ok(store.events(&EventFilter::default()).await);
            assert_eq!(events.len(), 2);
            let expected = PartnerEvent {
                id: events[1].id,
                partner: p,
                kind: TxnKind::Dmt,
                txn_id: ackno,
                status: "success".into(),
                payload: dmt_payload(&paid, at(30)),
                created_at: at(30),
                state: EventState::Pending,
                attempts: 0,
                next_attempt_at: Some(at(30)),
                deliver_until: at(30).plus_secs(DELIVERY_WINDOW_SECS),
                delivered_at: None,
                redelivered_at: None,
            };
            assert_eq!(events[1], expected);
            assert_eq!(events[0].payload, dmt_payload(&late, at(31)));
            assert!(events[0].payload.contains(r#""utr":"U1""#), "{}", events[0].payload);
            let (_, history) = ok(store.dmt_with_history(ackno).await).unwrap_or_else(|| panic!("no transfer"));
            let last = history.last().unwrap_or_else(|| panic!("no history"));
            assert_eq!((last.from_status.as_deref(), last.to_status.as_str()), (Some("success"), "success"));

            let txnid = ok(store.create_bill_debited(bill(p, "B1", 10), note(40), None).await).record.txnid;
            let operator_ref = Some("OP1".to_owned());
            let paid = ok(store.change_bill(txnid, BillChange::Success { operator_ref }, note(41)).await);
            let bills =
                ok(store.events(&EventFilter { txn: Some((TxnKind::Bbps, txnid)), ..EventFilter::default() }).await);
            assert_eq!(bills.len(), 1);
            assert_eq!((bills[0].status.as_str(), bills[0].partner), ("success", p));
            assert_eq!(bills[0].payload, bill_payload(&paid, at(41)));

            assert!(ok(store.set_callback_url(p, None, at(50)).await));
            assert_eq!(ok(store.callback_url(p).await), None);
            ok(store.change_bill(txnid, BillChange::Fail, note(51)).await);
            assert_eq!(ok(store.events(&EventFilter::default()).await).len(), 3, "no URL, no event");
        }

        #[tokio::test]
        async fn claimed_events_keep_each_transactions_order() {
            let (_dir, store) = open();
            let p = hooked_partner(&store).await;
            let ids = imported(&store, p, "I", 2).await;
            let (a, b) = (ids[0], ids[1]);
            ok(store.change_dmt(a, DmtChange::SentToBank, note(10)).await);
            ok(store.change_dmt(b, DmtChange::SentToBank, note(11)).await);
            ok(store.change_dmt(a, DmtChange::Success { utr: Some("U".into()) }, note(12)).await);
            let all = event_ids(&store, EventFilter::default()).await;
            let (a1, b1, a2) = (all[2], all[1], all[0]);
            assert!(claim_event_ids(&store, "w", 9).await.is_empty(), "nothing due yet");
            assert_eq!(claim_event_ids(&store, "w", 12).await, [a1, b1], "a2 waits behind a1");
            assert!(ok(store.record_attempt(attempt(a1, 1, 12), "w", EventOutcome::RetryAt(at(20))).await));
            assert!(claim_event_ids(&store, "w", 15).await.is_empty(), "a1 is not due and a2 still waits");
            assert_eq!(claim_event_ids(&store, "w", 20).await, [a1]);
            assert!(ok(store.record_attempt(attempt(a1, 2, 20), "w", EventOutcome::Delivered).await));
            assert_eq!(claim_event_ids(&store, "w", 20).await, [a2]);
        }

        #[tokio::test]
        async fn an_attempt_is_recorded_only_by_the_lease_holder_and_decides_the_state() {
            let (_dir, store) = open();
            let p = hooked_partner(&store).await;
            let ids = imported(&store, p, "I", 3).await;
            for (i, ackno) in ids.iter().enumerate() {
                ok(store.change_dmt(*ackno, DmtChange::SentToBank, note(10 + i as i64)).await);
            }
            let events = claim_event_ids(&store, "w", 20).await;
            let (delivered, retried, failed) = (events[0], events[1], events[2]);

            assert!(!ok(store.record_attempt(attempt(delivered, 1, 21), "x", EventOutcome::Delivered).await));
            let (event, attempts) = ok(store.event_with_attempts(delivered).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!((event.state, event.attempts, attempts.len()), (EventState::Pending, 0, 0), "nothing written");

            let ok_attempt = DeliveryAttempt { http_status: Some(200), error: None, ..attempt(delivered, 1, 21) };
            assert!(ok(store.record_attempt(ok_attempt.clone(), "w", EventOutcome::Delivered).await));
            let (event, attempts) = ok(store.event_with_attempts(delivered).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!(
                (event.state, event.attempts, event.next_attempt_at, event.delivered_at),
                (EventState::Delivered, 1, None, Some(at(21)))
            );
            assert_eq!(attempts, std::slice::from_ref(&ok_attempt));
            assert!(!ok(store.record_attempt(ok_attempt, "w", EventOutcome::Delivered).await), "not pending");

            assert!(ok(store.record_attempt(attempt(retried, 1, 22), "w", EventOutcome::RetryAt(at(80))).await));
            assert!(!ok(store.record_attempt(attempt(retried, 2, 23), "w", EventOutcome::GiveUp).await), "released");
            let (event, _) = ok(store.event_with_attempts(retried).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!(
                (event.state, event.attempts, event.next_attempt_at, event.delivered_at),
                (EventState::Pending, 1, Some(at(80)), None)
            );

            assert!(ok(store.record_attempt(attempt(failed, 1, 23), "w", EventOutcome::GiveUp).await));
            let (event, attempts) = ok(store.event_with_attempts(failed).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!((event.state, event.attempts, event.next_attempt_at), (EventState::Failed, 1, None));
            assert_eq!(attempts, [attempt(failed, 1, 23)]);
            assert_eq!(claim_event_ids(&store, "w", 1_000).await, [retried], "only the retry is left");
            assert_eq!(ok(store.event_with_attempts(99_999).await), None);
        }

        #[tokio::test]
        async fn a_redelivered_event_is_pending_again_with_a_fresh_window() {
            let (_dir, store) = open();
            let p = hooked_partner(&store).await;
            let ackno = imported(&store, p, "I", 1).await[0];
            ok(store.change_dmt(ackno, DmtChange::SentToBank, note(10)).await);
            let id = claim_event_ids(&store, "w", 10).await[0];
            assert!(ok(store.record_attempt(attempt(id, 1, 11), "w", EventOutcome::Delivered).await));

            let again = ok(store.redeliver_event(id, at(500)).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!(
                (again.state, again.attempts, again.next_attempt_at, again.delivered_at),
                (EventState::Pending, 1, Some(at(500)), None)
            );
            assert_eq!((again.deliver_until, again.created_at), (at(500).plus_secs(DELIVERY_WINDOW_SECS), at(10)));
            assert_eq!(claim_event_ids(&store, "w", 500).await, [id]);
            // Redelivered while an attempt is in flight: the lease is kept,
            // nobody else claims it, and the holder's attempt is recorded.
            let in_flight = ok(store.redeliver_event(id, at(501)).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!((in_flight.next_attempt_at, in_flight.redelivered_at), (Some(at(501)), Some(at(501))));
            assert_eq!(claim_event_ids(&store, "v", 501).await, Vec::<i64>::new(), "the live lease is kept");
            assert!(ok(store.record_attempt(attempt(id, 2, 502), "w", EventOutcome::GiveUp).await));
            let (event, attempts) = ok(store.event_with_attempts(id).await).unwrap_or_else(|| panic!("gone"));
            assert_eq!(
                (event.state, attempts.iter().map(|a| a.attempt).collect::<Vec<_>>()),
                (EventState::Failed, vec![1, 2])
            );
            assert_eq!(ok(store.redeliver_event(id, at(600)).await).map(|e| e.state), Some(EventState::Pending));
            assert_eq!(ok(store.redeliver_event(99_999, at(600)).await), None);
        }

        #[tokio::test]
        async fn events_are_listed_newest_first_filtered_and_paged() {
            let (_dir, store) = open();
            let p = hooked_partner(&store).await;
            let q = hooked_partner(&store).await;
            let mine = imported(&store, p, "P", 2).await;
            let theirs = imported(&store, q, "Q", 1).await[0];
            ok(store.change_dmt(mine[0], DmtChange::SentToBank, note(10)).await);
            ok(store.change_dmt(mine[1], DmtChange::SentToBank, note(11)).await);
            ok(store.change_dmt(theirs, DmtChange::SentToBank, note(12)).await);
            ok(store.change_dmt(mine[0], DmtChange::Fail, note(13)).await);
            let all = event_ids(&store, EventFilter::default()).await;
            assert_eq!(all.len(), 4);
            assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
            let (e4, e3, e2, e1) = (all[0], all[1], all[2], all[3]);
            let claimed = claim_event_ids(&store, "w", 20).await;
            assert_eq!(claimed, [e1, e2, e3], "e4 waits behind e1");
            assert!(ok(store.record_attempt(attempt(e2, 1, 20), "w", EventOutcome::Delivered).await));

            let filter = EventFilter::default;
            assert_eq!(event_ids(&store, EventFilter { partner: Some(p), ..filter() }).await, [e4, e2, e1]);
            assert_eq!(event_ids(&store, EventFilter { state: Some(EventState::Delivered), ..filter() }).await, [e2]);
            let txn = Some((TxnKind::Dmt, mine[0]));
            assert_eq!(event_ids(&store, EventFilter { txn, ..filter() }).await, [e4, e1]);
            assert!(event_ids(&store, EventFilter { txn: Some((TxnKind::Bbps, mine[0])), ..filter() })
                .await
                .is_empty());
            assert_eq!(event_ids(&store, EventFilter { before_id: Some(e4), limit: 2, ..filter() }).await, [e3, e2]);
            assert_eq!(event_ids(&store, EventFilter { limit: 1, ..filter() }).await, [e4]);
            let pending_mine =
                EventFilter { partner: Some(p), state: Some(EventState::Pending), before_id: Some(e4), ..filter() };
            assert_eq!(event_ids(&store, pending_mine).await, [e1]);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_claimers_take_every_job_and_event_exactly_once() {
            const JOBS: usize = 60;
            let (dir, store) = open();
            // A second store on the same file stands for a second process.
            let other = Arc::new(ok(SqliteStore::open(&dir.path().join("payrail.db"))));
            let p = hooked_partner(&store).await;
            let acknos = imported(&store, p, "C", JOBS).await;
            for ackno in &acknos {
                ok(store.change_dmt(*ackno, DmtChange::SentToBank, note(10)).await);
                ok(store.schedule_poll(TxnKind::Dmt, *ackno, at(10)).await);
            }
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let store = Arc::clone(if i % 2 == 0 { &store } else { &other });
                    tokio::spawn(async move {
                        let owner = format!("w{i}");
                        let (mut polls, mut events) = (Vec::new(), Vec::new());
                        loop {
                            let jobs = ok(store.claim_polls(&owner, at(20), at(10_000), 3).await);
                            let claimed = ok(store.claim_events(&owner, at(20), at(10_000), 3).await);
                            if jobs.is_empty() && claimed.is_empty() {
                                return (polls, events);
                            }
                            polls.extend(jobs.into_iter().map(|j| j.txn_id));
                            events.extend(claimed.into_iter().map(|e| e.txn_id));
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            let (mut polls, mut events) = (Vec::new(), Vec::new());
            for task in tasks {
                let (p, e) = ok(task.await);
                polls.extend(p);
                events.extend(e);
            }
            polls.sort_unstable();
            events.sort_unstable();
            let mut acknos = acknos;
            acknos.sort_unstable();
            assert_eq!(polls, acknos, "every job claimed exactly once");
            assert_eq!(events, acknos, "every event claimed exactly once");
        }

        #[tokio::test]
        async fn the_writer_commits_durably_and_readers_need_not() {
            let (_dir, store) = open();
            let pragma = |conn: &Connection| conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0));
            let writer = ok(store.write(move |conn| pragma(conn).map_err(store_error)).await);
            assert_eq!(writer, 2, "FULL: every commit syncs the WAL");
            assert_eq!(ok(store.read(pragma)), 1, "readers stay NORMAL");
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

        #[tokio::test]
        async fn the_claim_is_an_index_range_scan() {
            let (_dir, store) = open();
            let plan: Vec<String> = ok(store.read(|conn| {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {CLAIM_POLLS}"))?;
                let rows = stmt.query_map(params!["o", 70, 10, 32], |r| r.get::<_, String>(3))?;
                rows.collect()
            }));
            let plan = plan.join("\n");
            assert!(
                plan.contains(
                    "SEARCH upstream_polls USING INDEX upstream_polls_due (next_poll_at>? AND next_poll_at<?)"
                ),
                "{plan}"
            );
            assert!(!plan.contains("SCAN upstream_polls") && !plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
