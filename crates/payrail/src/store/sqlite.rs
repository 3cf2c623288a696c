//! The embedded engine: SQLite through rusqlite, WAL journal.
//!
//! Readers come from a small pool of connections and run inline on the
//! calling task: a primary-key lookup costs a few microseconds, less than a
//! hop to a blocking thread. Writers share one connection, used on a blocking
//! thread, with `BEGIN IMMEDIATE` so that a read-modify-write never races.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use super::{ChangeError, ChangeNote, InsertError, NewPartner, Store, StoreError};
use super::{DebitError, Debited, LedgerAudit};
use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::fee_plan::{FeePlan, FeePlanVersion};
use crate::domain::ledger::{Journal, Statement, WalletMove};
use crate::domain::otp::{OtpCheck, OtpPurpose, OtpRecord};
use crate::domain::partner::SealedSecret;
use crate::domain::remitter::{Beneficiary, DmtRoute, MobileNumber, MonthlyLimit, Remitter};
use crate::domain::{
    BillPayment, BillStatus, DmtCharges, DmtStatus, DmtTransfer, HistoryEntry, IpAllowlist, Paise, Partner,
    PartnerStatus, ReferenceId, RegistrationId, Timestamp, TxnKind,
};

/// Schema versions, applied in order; each runs once.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// `reqid`s seen within the replay window, in two generations per shard:
/// entries move to `previous` when a window has passed and are dropped a
/// window later, so every operation is O(1) and memory holds at most two
/// windows of traffic. Sharded so that concurrent requests rarely contend.
struct RecentReqids {
    shards: Vec<Mutex<Generations>>,
}

#[derive(Default)]
struct Generations {
    current: HashMap<(i64, String), i64>,
    previous: HashMap<(i64, String), i64>,
    rotated_at: i64,
}

impl Default for RecentReqids {
    fn default() -> Self {
        RecentReqids { shards: (0..16).map(|_| Mutex::new(Generations::default())).collect() }
    }
}

impl RecentReqids {
    /// Records `reqid`; `false` if it was seen at or after `cutoff`.
    fn remember(&self, partner: i64, reqid: &str, now: i64, cutoff: i64) -> Result<bool, StoreError> {
        // The shard must be the same for every call with this key.
        let shard =
            (reqid.bytes().fold(partner as u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 16) as usize;
        let mut generations = self.shards[shard].lock().map_err(|_| poisoned())?;
        let window = now - cutoff;
        if now - generations.rotated_at >= window {
            generations.previous = std::mem::take(&mut generations.current);
            generations.rotated_at = now;
        }
        let key = (partner, reqid.to_owned());
        let seen_at = generations.current.get(&key).or_else(|| generations.previous.get(&key)).copied();
        if seen_at.is_some_and(|at| at >= cutoff) {
            return Ok(false);
        }
        generations.current.insert(key, now);
        Ok(true)
    }
}

/// How many read connections the pool keeps.
const READERS: usize = 8;

/// The SQLite engine.
pub struct SqliteStore {
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
    writer: Arc<Mutex<Connection>>,
    /// Token `reqid`s seen recently. In memory: on SQLite one process serves
    /// (the server holds a lock on the data directory), so memory is shared
    /// by every request that can arrive.
    reqids: RecentReqids,
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
/// The partner columns qualified for a join.
const PARTNER_COLUMNS_P: &str = "p.id, p.name, p.status, p.require_token, p.allow_ips, p.secret, p.previous_secret, \
                                 p.previous_secret_until, p.authorised_key_hash, p.created_at";
/// The transfer columns qualified for a join.
const DMT_COLUMNS_T: &str = "t.ackno, t.partner_id, t.reference_id, t.amount, t.account, t.utr, t.status, \
                             t.customer_charge, t.provider_share, t.gst, t.discount, t.commission, t.tds, \
                             t.net_commission, t.created_at, t.refund_txn_id, t.refunded_at";
/// The bill payment columns qualified for a join.
const BILL_COLUMNS_T: &str = "t.txnid, t.partner_id, t.reference_id, t.operator_name, t.ca_number, t.amount, t.ad1, \
                              t.ad2, t.ad3, t.commission, t.tds, t.status, t.operator_ref, t.created_at, \
                              t.refund_txn_id, t.refunded_at";

/// The whole DMT status lookup, built once rather than on every request.
static LOOKUP_DMT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PARTNER_COLUMNS_P}, {DMT_COLUMNS_T} FROM partners p \
         LEFT JOIN dmt_transfers t ON t.partner_id = p.id AND t.reference_id = ?2 WHERE p.id = ?1"
    )
});

/// The whole BBPS status lookup, built once.
static LOOKUP_BILL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PARTNER_COLUMNS_P}, {BILL_COLUMNS_T} FROM partners p \
         LEFT JOIN bill_payments t ON t.partner_id = p.id AND t.reference_id = ?2 WHERE p.id = ?1"
    )
});

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

impl SqliteStore {
    /// Opens (creating if need be) the database file and migrates it.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
        }
        let mut writer = connection(path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            readers: Mutex::new(Vec::new()),
            path: path.to_owned(),
            writer: Arc::new(Mutex::new(writer)),
            reqids: RecentReqids::default(),
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

    /// Runs `f` on the writer connection, on a blocking thread.
    async fn write<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let joined = tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| E::from(poisoned()))?;
            f(&mut conn)
        })
        .await;
        joined.map_err(|e| E::from(StoreError::Other(anyhow::anyhow!("writer task failed: {e}"))))?
    }
}

fn poisoned() -> StoreError {
    StoreError::Other(anyhow::anyhow!("a SQLite connection lock was poisoned"))
}

fn immediate(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_error)
}

#[async_trait]
impl Store for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn find_partner(&self, id: RegistrationId) -> Result<Option<Partner>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {PARTNER_COLUMNS} FROM partners WHERE id = ?1"))?
                .query_row([id.number()], partner_from_row)
                .optional()
        })
    }

    async fn insert_partner(&self, new: NewPartner) -> Result<Partner, StoreError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let number = match new.number {
                Some(n) => n,
                None => tx
                    .query_row("SELECT MAX(COALESCE(MAX(id), 0), 1000) + 1 FROM partners", [], |r| r.get(0))
                    .map_err(store_error)?,
            };
            tx.execute(
                "INSERT INTO partners (id, name, status, require_token, allow_ips, secret, authorised_key_hash, created_at) \
                 VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?6, ?7)",
                params![
                    number,
                    new.name,
                    new.require_token,
                    new.allowlist.to_stored(),
                    new.secret.0,
                    new.authorised_key_hash,
                    new.created_at.unix()
                ],
            )
            .map_err(store_error)?;
            let partner = tx
                .query_row(&format!("SELECT {PARTNER_COLUMNS} FROM partners WHERE id = ?1"), [number], partner_from_row)
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(partner)
        })
        .await
    }

    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {PARTNER_COLUMNS} FROM partners ORDER BY id"))?;
            let rows = stmt.query_map([], partner_from_row)?;
            rows.collect()
        })
    }

    async fn set_partner_status(&self, id: RegistrationId, status: PartnerStatus) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.execute("UPDATE partners SET status = ?1 WHERE id = ?2", params![status.as_str(), id.number()])
                .map(|n| n == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn rotate_partner_secret(
        &self,
        id: RegistrationId,
        secret: SealedSecret,
        previous_until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE partners SET previous_secret = secret, previous_secret_until = ?1, secret = ?2 WHERE id = ?3",
                params![previous_until.unix(), secret.0, id.number()],
            )
            .map(|n| n == 1)
            .map_err(store_error)
        })
        .await
    }

    async fn remember_reqid(
        &self,
        partner: RegistrationId,
        reqid: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> Result<bool, StoreError> {
        self.reqids.remember(partner.number(), reqid, now.unix(), cutoff.unix())
    }

    async fn lookup_dmt(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<DmtTransfer>)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&LOOKUP_DMT)?
                .query_row(params![partner.number(), reference], |row| {
                    let transfer =
                        row.get::<_, Option<i64>>(PARTNER_WIDTH)?.map(|_| dmt_at(row, PARTNER_WIDTH)).transpose()?;
                    Ok((partner_at(row, 0)?, transfer))
                })
                .optional()
        })
    }

    async fn dmt_with_history(&self, ackno: i64) -> Result<Option<(DmtTransfer, Vec<HistoryEntry>)>, StoreError> {
        self.read(|conn| {
            let transfer = conn
                .prepare_cached(&format!("SELECT {DMT_COLUMNS} FROM dmt_transfers WHERE ackno = ?1"))?
                .query_row([ackno], dmt_from_row)
                .optional()?;
            transfer.map(|t| Ok((t, history(conn, TxnKind::Dmt, ackno)?))).transpose()
        })
    }

    async fn insert_dmt_batch(
        &self,
        rows: Vec<DmtTransfer>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut ids = Vec::with_capacity(rows.len());
            for (index, row) in rows.iter().enumerate() {
                ids.push(insert_dmt(&tx, row, &note, index)?);
                if index % 1000 == 999 {
                    progress(index as u64 + 1);
                }
            }
            tx.commit().map_err(store_error)?;
            progress(rows.len() as u64);
            Ok(ids)
        })
        .await
    }

    async fn change_dmt(&self, ackno: i64, change: DmtChange, note: ChangeNote) -> Result<DmtTransfer, ChangeError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut transfer = tx
                .prepare_cached(&format!("SELECT {DMT_COLUMNS} FROM dmt_transfers WHERE ackno = ?1"))
                .and_then(|mut s| s.query_row([ackno], dmt_from_row).optional())
                .map_err(store_error)?
                .ok_or(ChangeError::NotFound)?;
            let from = transfer.status;
            let change = match change {
                DmtChange::Refund { refund_txn_id } if refund_txn_id.is_empty() => DmtChange::Refund {
                    refund_txn_id: allocate_refund_id(&tx, TxnKind::Dmt, ackno, note.at).map_err(store_error)?,
                },
                other => other,
            };
            transfer.apply(&change, note.at)?;
            tx.prepare_cached(
                "UPDATE dmt_transfers SET status = ?1, utr = ?2, refund_txn_id = ?3, refunded_at = ?4, updated_at = ?5 WHERE ackno = ?6",
            )
            .and_then(|mut s| {
                s.execute(params![
                    transfer.status.code(),
                    transfer.utr,
                    transfer.refund_txn_id,
                    transfer.refunded_at.map(Timestamp::unix),
                    note.at.unix(),
                    ackno
                ])
            })
            .map_err(store_error)?;
            insert_history(&tx, TxnKind::Dmt, ackno, Some(from.name()), transfer.status.name(), &note)
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(transfer)
        })
        .await
    }

    async fn lookup_bill(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<BillPayment>)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&LOOKUP_BILL)?
                .query_row(params![partner.number(), reference], |row| {
                    let payment =
                        row.get::<_, Option<i64>>(PARTNER_WIDTH)?.map(|_| bill_at(row, PARTNER_WIDTH)).transpose()?;
                    Ok((partner_at(row, 0)?, payment))
                })
                .optional()
        })
    }

    async fn bill_with_history(&self, txnid: i64) -> Result<Option<(BillPayment, Vec<HistoryEntry>)>, StoreError> {
        self.read(|conn| {
            let bill = conn
                .prepare_cached(&format!("SELECT {BILL_COLUMNS} FROM bill_payments WHERE txnid = ?1"))?
                .query_row([txnid], bill_from_row)
                .optional()?;
            bill.map(|b| Ok((b, history(conn, TxnKind::Bbps, txnid)?))).transpose()
        })
    }

    async fn insert_bill_batch(
        &self,
        rows: Vec<BillPayment>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut ids = Vec::with_capacity(rows.len());
            for (index, row) in rows.iter().enumerate() {
                ids.push(insert_bill(&tx, row, &note, index)?);
                if index % 1000 == 999 {
                    progress(index as u64 + 1);
                }
            }
            tx.commit().map_err(store_error)?;
            progress(rows.len() as u64);
            Ok(ids)
        })
        .await
    }

    async fn change_bill(&self, txnid: i64, change: BillChange, note: ChangeNote) -> Result<BillPayment, ChangeError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let mut bill = tx
                .prepare_cached(&format!("SELECT {BILL_COLUMNS} FROM bill_payments WHERE txnid = ?1"))
                .and_then(|mut s| s.query_row([txnid], bill_from_row).optional())
                .map_err(store_error)?
                .ok_or(ChangeError::NotFound)?;
            let from = bill.status;
            let change = match change {
                BillChange::Refund { refund_txn_id } if refund_txn_id.is_empty() => BillChange::Refund {
                    refund_txn_id: allocate_refund_id(&tx, TxnKind::Bbps, txnid, note.at).map_err(store_error)?,
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
            insert_history(&tx, TxnKind::Bbps, txnid, Some(from.name()), bill.status.name(), &note)
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(bill)
        })
        .await
    }

    async fn counts(&self) -> Result<(i64, i64), StoreError> {
        self.read(|conn| {
            let dmt = conn.query_row("SELECT COUNT(*) FROM dmt_transfers", [], |r| r.get(0))?;
            let bills = conn.query_row("SELECT COUNT(*) FROM bill_payments", [], |r| r.get(0))?;
            Ok((dmt, bills))
        })
    }

    // Lifecycle methods: being implemented (issue 3); not reachable yet.
    async fn post_journal(&self, _journal: Journal) -> Result<WalletMove, DebitError> {
        Err(DebitError::Store(pending()))
    }
    async fn wallet_balance(&self, _partner: RegistrationId) -> Result<Paise, StoreError> {
        Err(pending())
    }
    async fn wallet_statement(
        &self,
        _p: RegistrationId,
        _f: Timestamp,
        _t: Timestamp,
    ) -> Result<Statement, StoreError> {
        Err(pending())
    }
    async fn audit(&self) -> Result<LedgerAudit, StoreError> {
        Err(pending())
    }
    async fn insert_fee_plan(
        &self,
        _p: RegistrationId,
        _f: Timestamp,
        _plan: FeePlan,
        _c: Timestamp,
    ) -> Result<FeePlanVersion, DebitError> {
        Err(DebitError::Store(pending()))
    }
    async fn fee_plans(&self, _p: RegistrationId) -> Result<Vec<FeePlanVersion>, StoreError> {
        Err(pending())
    }
    async fn find_remitter(&self, _p: RegistrationId, _m: &MobileNumber) -> Result<Option<Remitter>, StoreError> {
        Err(pending())
    }
    async fn insert_remitter(&self, _r: Remitter) -> Result<bool, StoreError> {
        Err(pending())
    }
    async fn remitter_usage(
        &self,
        _p: RegistrationId,
        _m: &MobileNumber,
        _s: Timestamp,
    ) -> Result<[Paise; 3], StoreError> {
        Err(pending())
    }
    async fn insert_beneficiary(&self, _b: Beneficiary) -> Result<Beneficiary, StoreError> {
        Err(pending())
    }
    async fn beneficiaries(&self, _p: RegistrationId, _m: &MobileNumber) -> Result<Vec<Beneficiary>, StoreError> {
        Err(pending())
    }
    async fn find_beneficiary(&self, _p: RegistrationId, _id: i64) -> Result<Option<Beneficiary>, StoreError> {
        Err(pending())
    }
    async fn delete_beneficiary(&self, _p: RegistrationId, _m: &MobileNumber, _id: i64) -> Result<bool, StoreError> {
        Err(pending())
    }
    async fn insert_otp(&self, _o: OtpRecord) -> Result<(), StoreError> {
        Err(pending())
    }
    async fn check_otp(
        &self,
        _p: RegistrationId,
        _t: &str,
        _u: OtpPurpose,
        _c: &str,
        _n: Timestamp,
    ) -> Result<OtpCheck, StoreError> {
        Err(pending())
    }
    async fn create_dmt_debited(
        &self,
        _t: DmtTransfer,
        _r: DmtRoute,
        _l: MonthlyLimit,
        _n: ChangeNote,
    ) -> Result<Debited<DmtTransfer>, DebitError> {
        Err(DebitError::Store(pending()))
    }
    async fn dmt_route(&self, _a: i64) -> Result<Option<DmtRoute>, StoreError> {
        Err(pending())
    }
    async fn create_bill_debited(&self, _p: BillPayment, _n: ChangeNote) -> Result<Debited<BillPayment>, DebitError> {
        Err(DebitError::Store(pending()))
    }
}

fn pending() -> StoreError {
    StoreError::Other(anyhow::anyhow!("not implemented yet"))
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

fn insert_dmt(conn: &Connection, row: &DmtTransfer, note: &ChangeNote, index: usize) -> Result<i64, InsertError> {
    let c = &row.charges;
    conn.prepare_cached(
        "INSERT INTO dmt_transfers (ackno, partner_id, reference_id, amount, account, utr, status, customer_charge, \
         provider_share, gst, discount, commission, tds, net_commission, created_at, updated_at, refund_txn_id, refunded_at) \
         VALUES (NULLIF(?1, 0), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16, ?17)",
    )
    .and_then(|mut s| {
        s.execute(params![
            row.ackno,
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
    let ackno = conn.last_insert_rowid();
    insert_history(conn, TxnKind::Dmt, ackno, None, row.status.name(), note).map_err(store_error)?;
    Ok(ackno)
}

fn insert_bill(conn: &Connection, row: &BillPayment, note: &ChangeNote, index: usize) -> Result<i64, InsertError> {
    conn.prepare_cached(
        "INSERT INTO bill_payments (txnid, partner_id, reference_id, operator_name, ca_number, amount, ad1, ad2, ad3, \
         commission, tds, status, operator_ref, created_at, updated_at, refund_txn_id, refunded_at) \
         VALUES (NULLIF(?1, 0), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16)",
    )
    .and_then(|mut s| {
        s.execute(params![
            row.txnid,
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
    let txnid = conn.last_insert_rowid();
    insert_history(conn, TxnKind::Bbps, txnid, None, row.status.name(), note).map_err(store_error)?;
    Ok(txnid)
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
}
