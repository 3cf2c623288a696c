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

mod columns;
mod ledger;
mod migrations;
mod partners;
mod remittance;
#[cfg(test)]
mod test_db;
mod transactions;
mod upstream_work;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::types::{FromSqlOwned, ToSql};
use tokio_postgres::{IsolationLevel, Row};

use super::columns::BadState;
use super::transactions::{bill_columns, dmt_columns};
use ledger::{charge_wallet, insert_journal, pay_back};
use partners::{partner_at, PARTNER_WIDTH};
// The status lookups select the partner columns beside a transaction's.
use super::partners::partner_list as partner_columns;
use super::{ChangeError, ChangeNote, InsertError, NewPartner, Store, StoreError};
use super::{DebitError, Debited, LedgerAudit};
use super::{LedgerStore, PartnerStore, RemittanceStore, TransactionStore, UpstreamWorkStore};
use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::event::{
    self, CallbackSecrets, DeliveryAttempt, EventFilter, EventOutcome, EventState, PartnerEvent, PollJob, PollNext,
};
use crate::domain::fee_plan::{FeePlan, FeePlanVersion};
use crate::domain::ledger::{Account, Journal, Posting, Purpose, Statement, StatementLine, WalletMove};
use crate::domain::otp::{OtpCheck, OtpPurpose, OtpRecord, TextLimits, TEXT_DAY_SECS};
use crate::domain::partner::SealedSecret;
use crate::domain::remitter::{AccountNumber, Bank, Beneficiary, DmtRoute, Ifsc, MobileNumber, MonthlyLimit, Remitter};
use crate::domain::txn_id::TxnNumbers;
use crate::domain::{
    BillPayment, DmtTransfer, HistoryEntry, IpAllowlist, Paise, Partner, PartnerStatus, RegistrationId, Timestamp,
    TxnKind,
};

/// The first key of the two-key advisory locks that serialise OTP texts per
/// mobile (the second is a hash of the mobile). Two-key locks live apart
/// from the one-key locks above, so they can never collide with them.
const TEXT_LOCK_CLASS: i32 = 0x7072_0009;

/// How many connections the pool holds.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection before the store reports
/// itself unavailable, rather than hanging while the database is down.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole status lookup in one round trip (see `Store::lookup_dmt`).
const LOOKUP_DMT: &str = concat!(
    "SELECT p.*, t.* FROM (SELECT ",
    partner_columns!(),
    " FROM partners WHERE id = $1) p LEFT JOIN (SELECT ",
    dmt_columns!(),
    " FROM dmt_transfers WHERE partner_id = $1 AND reference_id = $2) t ON true"
);

/// As [`LOOKUP_DMT`], for bill payments.
const LOOKUP_BILL: &str = concat!(
    "SELECT p.*, t.* FROM (SELECT ",
    partner_columns!(),
    " FROM partners WHERE id = $1) p LEFT JOIN (SELECT ",
    bill_columns!(),
    " FROM bill_payments WHERE partner_id = $1 AND reference_id = $2) t ON true"
);

/// What a remitter sent through one pipe since a time, not counting refunded transfers (status 0).
const ROUTE_USAGE: &str = "SELECT COALESCE(SUM(t.amount), 0)::bigint FROM dmt_routes r \
                           JOIN dmt_transfers t ON t.ackno = r.ackno \
                           WHERE r.partner_id = $1 AND r.remitter_mobile = $2 AND r.bank = $3 \
                           AND t.created_at >= $4 AND t.status <> 0";
/// As [`ROUTE_USAGE`], for every pipe.
const REMITTER_USAGE: &str = "SELECT r.bank, SUM(t.amount)::bigint FROM dmt_routes r \
                              JOIN dmt_transfers t ON t.ackno = r.ackno \
                              WHERE r.partner_id = $1 AND r.remitter_mobile = $2 \
                              AND t.created_at >= $3 AND t.status <> 0 GROUP BY r.bank";

const FIND_REMITTER: &str = "SELECT mobile, first_name, last_name, kyc_id, created_at FROM remitters \
                             WHERE partner_id = $1 AND mobile = $2";
const INSERT_REMITTER: &str = "INSERT INTO remitters (partner_id, mobile, first_name, last_name, kyc_id, created_at) \
                               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";

/// The columns [`beneficiary_from_row`] reads, in order.
macro_rules! beneficiary_columns {
    () => {
        "id, partner_id, remitter_mobile, name, account, ifsc, bank_name, created_at"
    };
}

const INSERT_BENEFICIARY: &str = "INSERT INTO beneficiaries (partner_id, remitter_mobile, name, account, ifsc, \
                                  bank_name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
const LOCK_REMITTER: &str = "SELECT 1 FROM remitters WHERE partner_id = $1 AND mobile = $2 FOR UPDATE";
/// The remitter's live beneficiary with this account number at this bank (IFSC prefix).
const SAME_ACCOUNT: &str = "SELECT id FROM beneficiaries WHERE partner_id = $1 AND remitter_mobile = $2 \
                            AND account = $3 AND substr(ifsc, 1, 4) = $4 AND deleted_at IS NULL";
const BENEFICIARIES: &str = concat!(
    "SELECT ",
    beneficiary_columns!(),
    " FROM beneficiaries WHERE partner_id = $1 AND remitter_mobile = $2 AND deleted_at IS NULL ORDER BY id"
);
const FIND_BENEFICIARY: &str = concat!(
    "SELECT ",
    beneficiary_columns!(),
    " FROM beneficiaries WHERE partner_id = $1 AND id = $2 AND deleted_at IS NULL"
);
const DELETE_BENEFICIARY: &str = "UPDATE beneficiaries SET deleted_at = $4 \
                                  WHERE partner_id = $1 AND remitter_mobile = $2 AND id = $3 AND deleted_at IS NULL";

/// How long an expired OTP is kept before [`Store::insert_otp`] deletes it.
const OTP_KEEP_SECS: i64 = 24 * 60 * 60;
const INSERT_OTP: &str = "INSERT INTO otps (token, partner_id, purpose, subject, code_hash, expires_at, attempts, \
                          used) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const FORGET_OTPS: &str = "DELETE FROM otps WHERE expires_at < $1";
const LOCK_TEXTS: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";
const RECENT_TEXTS: &str = "SELECT sent_at FROM otp_texts WHERE mobile = $1 AND sent_at > $2";
const COUNT_TEXT: &str = "INSERT INTO otp_texts (mobile, sent_at) VALUES ($1, $2)";
/// A bounded sweep of texts older than a day; rows another sweep holds are
/// skipped rather than waited for.
const FORGET_TEXTS: &str = "DELETE FROM otp_texts WHERE ctid IN \
                            (SELECT ctid FROM otp_texts WHERE sent_at <= $1 LIMIT 100 FOR UPDATE SKIP LOCKED)";
const LOCK_OTP: &str = "SELECT subject, code_hash, expires_at, attempts, used FROM otps \
                        WHERE token = $1 AND partner_id = $2 AND purpose = $3 FOR UPDATE";
const SAVE_OTP: &str = "UPDATE otps SET attempts = $2, used = $3 WHERE token = $1";

/// (Re)starts a poll job: due at `$3`, no attempts, no lease.
/// (Re)starts polling at `$3`. An expired lease is released; a live one
/// (`lease_until` after `$4`, now) is kept, so that the poll in flight is
/// still recorded by the worker that holds it.
const SCHEDULE_POLL: &str = "INSERT INTO upstream_polls (kind, txn_id, attempts, next_poll_at) VALUES ($1, $2, 0, $3) \
                             ON CONFLICT (kind, txn_id) DO UPDATE SET attempts = 0, \
                             next_poll_at = EXCLUDED.next_poll_at, \
                             lease_owner = CASE WHEN upstream_polls.lease_until > $4 THEN upstream_polls.lease_owner END, \
                             lease_until = CASE WHEN upstream_polls.lease_until > $4 THEN upstream_polls.lease_until END";
/// Leases up to `$4` due jobs to `$1` until `$3`. `SKIP LOCKED` passes over
/// jobs another claim is leasing right now, and a job that claim committed
/// is re-checked (its lease is then live) before it is locked here, so two
/// claims never return the same job.
const CLAIM_POLLS: &str = "WITH due AS (SELECT kind, txn_id FROM upstream_polls \
                           WHERE next_poll_at IS NOT NULL AND next_poll_at <= $2 \
                           AND (lease_until IS NULL OR lease_until <= $2) \
                           ORDER BY next_poll_at, txn_id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                           UPDATE upstream_polls p SET lease_owner = $1, lease_until = $3 FROM due \
                           WHERE p.kind = due.kind AND p.txn_id = due.txn_id \
                           RETURNING p.kind, p.txn_id, p.attempts, p.next_poll_at";
/// Counts an attempt and sets the next due time (NULL holds the job), if `$3` holds the lease.
const RESCHEDULE_POLL: &str = "UPDATE upstream_polls SET attempts = attempts + 1, next_poll_at = $4, \
                               lease_owner = NULL, lease_until = NULL \
                               WHERE kind = $1 AND txn_id = $2 AND lease_owner = $3";
const DELETE_POLL: &str = "DELETE FROM upstream_polls WHERE kind = $1 AND txn_id = $2 AND lease_owner = $3";
const HELD_POLLS: &str =
    "SELECT kind, txn_id, attempts, 0::bigint FROM upstream_polls WHERE next_poll_at IS NULL ORDER BY kind, txn_id";

const POLL_JOB: &str = "SELECT kind, txn_id, attempts, COALESCE(next_poll_at, 0) FROM upstream_polls \
     WHERE kind = $1 AND txn_id = $2";

/// The columns [`event_from_row`] reads, in order.
macro_rules! event_columns {
    () => {
        "id, partner_id, kind, txn_id, status, payload, created_at, state, attempts, next_attempt_at, \
         deliver_until, delivered_at, redelivered_at"
    };
}

/// Writes an event for a partner that has a callback URL (none otherwise):
/// pending, deliverable until `$7`, due at its creation or, while an older
/// event of the transaction waits for a retry, when that retry is due (it
/// cannot go before it).
const INSERT_EVENT: &str = "INSERT INTO partner_events (partner_id, kind, txn_id, status, payload, created_at, state, \
                            attempts, next_attempt_at, deliver_until) \
                            SELECT partner_id, $2, $3, $4, $5, $6, 'pending', 0, \
                            GREATEST($6, (SELECT MAX(next_attempt_at) FROM partner_events \
                            WHERE kind = $2 AND txn_id = $3 AND state = 'pending')), $7 FROM partner_callbacks \
                            WHERE partner_id = $1";
/// Leases up to `$4` due events to `$1` until `$3`, by id. An event waits
/// while an older event of its transaction is pending, leased or not: the
/// check reads the state, never the locks, so an older event that another
/// claim holds still blocks it.
const CLAIM_EVENTS: &str = concat!(
    "WITH due AS (SELECT e.id AS due_id FROM partner_events e \
     WHERE e.state = 'pending' AND e.next_attempt_at <= $2 AND (e.lease_until IS NULL OR e.lease_until <= $2) \
     AND NOT EXISTS (SELECT 1 FROM partner_events o WHERE o.kind = e.kind AND o.txn_id = e.txn_id \
     AND o.id < e.id AND o.state = 'pending') \
     ORDER BY e.id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     UPDATE partner_events e SET lease_owner = $1, lease_until = $3 FROM due WHERE e.id = due.due_id RETURNING ",
    event_columns!()
);
/// Settles an attempt of event `$1` if `$2` holds its lease, and records
/// the attempt; the rows inserted say whether it did. An event cancelled
/// while the attempt was in flight stays cancelled unless the attempt
/// delivered it. On a retry (`$5`), later pending events of the transaction
/// are not due before it: they cannot be claimed before it is settled.
const RECORD_ATTEMPT: &str = "WITH settled AS (UPDATE partner_events SET attempts = $3, \
                              state = CASE WHEN state = 'cancelled' AND $4::text <> 'delivered' THEN 'cancelled' \
                              ELSE $4::text END, \
                              next_attempt_at = CASE WHEN state = 'cancelled' AND $4::text <> 'delivered' THEN NULL \
                              ELSE $5::bigint END, \
                              delivered_at = $6, lease_owner = NULL, lease_until = NULL \
                              WHERE id = $1 AND state IN ('pending', 'cancelled') AND lease_owner = $2 \
                              RETURNING id, kind, txn_id), \
                              held_back AS (UPDATE partner_events l SET next_attempt_at = GREATEST(l.next_attempt_at, $5::bigint) \
                              FROM settled s WHERE $5::bigint IS NOT NULL AND l.kind = s.kind AND l.txn_id = s.txn_id \
                              AND l.id > s.id AND l.state = 'pending') \
                              INSERT INTO delivery_attempts (event_id, attempt, instance, url, at, duration_ms, \
                              http_status, error) SELECT id, $3, $7, $8, $9, $10, $11, $12 FROM settled";
const EVENT_BY_ID: &str = concat!("SELECT ", event_columns!(), " FROM partner_events WHERE id = $1");
const ATTEMPTS_OF: &str = "SELECT event_id, attempt, instance, url, at, duration_ms, http_status, error \
                           FROM delivery_attempts WHERE event_id = $1 ORDER BY attempt";
/// Makes event `$1` pending again, due at `$2` (now), delivered until `$3`,
/// marked redelivered. A live lease is kept: the attempt in flight is
/// recorded by its worker (and is the redelivery), never lost.
const REDELIVER_EVENT: &str = concat!(
    "UPDATE partner_events SET state = 'pending', next_attempt_at = $2, deliver_until = $3, delivered_at = NULL, \
     redelivered_at = $2, lease_owner = CASE WHEN lease_until > $2 THEN lease_owner END, \
     lease_until = CASE WHEN lease_until > $2 THEN lease_until END WHERE id = $1 RETURNING ",
    event_columns!()
);
/// What [`Store::events`] returns when the filter asks for no limit, and at most.
const EVENTS_DEFAULT_LIMIT: u32 = 100;
const EVENTS_MAX_LIMIT: u32 = 1_000;

/// The PostgreSQL engine.
pub struct PostgresStore {
    pool: Pool,
    /// How new transactions are numbered.
    numbers: TxnNumbers,
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
        let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
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
        drop(client);
        Ok(PostgresStore { pool, numbers })
    }

    /// A pooled connection, or "unavailable" if none comes in time.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// `.context(…)` for database results that keeps "unavailable" (a lost or
/// refused connection, worth a retry) apart from every other failure.
trait StoreContext<T> {
    /// Wraps the error with `what` ("Failed to …") as a [`StoreError`].
    fn store_context(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> StoreContext<T> for Result<T, tokio_postgres::Error> {
    fn store_context(self, what: &'static str) -> Result<T, StoreError> {
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

/// Prepares (once per connection) and runs a statement that returns at most one row.
async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &'static str,
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.store_context(what)?;
    client.query_opt(&statement, params).await.store_context(what)
}

/// Prepares (once per connection) and runs a statement that returns exactly one row.
async fn query_one(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &'static str,
) -> Result<Row, StoreError> {
    let statement = client.prepare_cached(sql).await.store_context(what)?;
    client.query_one(&statement, params).await.store_context(what)
}

/// Prepares (once per connection) and runs a statement that returns rows.
async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &'static str,
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.store_context(what)?;
    client.query(&statement, params).await.store_context(what)
}

/// Prepares (once per connection) and runs a statement; returns the rows affected.
async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: &'static str,
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.store_context(what)?;
    client.execute(&statement, params).await.store_context(what)
}

/// A partner and, when the joined side is present, its transaction.
fn joined<T>(row: &Row, at: fn(&Row, usize) -> anyhow::Result<T>) -> anyhow::Result<(Partner, Option<T>)> {
    let present = row.try_get::<_, Option<i64>>(PARTNER_WIDTH)?.is_some();
    Ok((partner_at(row, 0)?, if present { Some(at(row, PARTNER_WIDTH)?) } else { None }))
}

/// Decodes the row, if any; a row that does not decode is a fault.
fn decode<T>(row: Option<Row>, from_row: fn(&Row) -> anyhow::Result<T>) -> Result<Option<T>, StoreError> {
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

/// Reads a row of [`FIND_REMITTER`].
fn remitter_from_row(partner: RegistrationId, row: &Row) -> anyhow::Result<Remitter> {
    Ok(Remitter {
        partner,
        mobile: MobileNumber::parse(row.try_get(0)?)?,
        first_name: row.try_get(1)?,
        last_name: row.try_get(2)?,
        kyc_id: row.try_get(3)?,
        created_at: Timestamp::from_unix(row.try_get(4)?),
    })
}

/// Reads a row of [`beneficiary_columns!`].
fn beneficiary_from_row(row: &Row) -> anyhow::Result<Beneficiary> {
    Ok(Beneficiary {
        id: row.try_get(0)?,
        partner: RegistrationId::new(row.try_get(1)?),
        remitter: MobileNumber::parse(row.try_get(2)?)?,
        name: row.try_get(3)?,
        account: AccountNumber::parse(row.try_get(4)?)?,
        ifsc: Ifsc::parse(row.try_get(5)?)?,
        bank_name: row.try_get(6)?,
        created_at: Timestamp::from_unix(row.try_get(7)?),
    })
}

/// Reads a row of [`LOCK_OTP`] for the OTP it was looked up by.
fn otp_from_row(row: &Row, partner: RegistrationId, token: &str, purpose: OtpPurpose) -> anyhow::Result<OtpRecord> {
    Ok(OtpRecord {
        token: token.to_owned(),
        partner,
        purpose,
        subject: row.try_get(0)?,
        code_hash: row.try_get(1)?,
        expires_at: Timestamp::from_unix(row.try_get(2)?),
        attempts: row.try_get(3)?,
        used: row.try_get(4)?,
    })
}

/// (Re)starts polling of a transaction at `at`, with no attempts counted.
async fn schedule_poll(client: &impl GenericClient, kind: TxnKind, id: i64, at: Timestamp) -> Result<(), StoreError> {
    let params: [&(dyn ToSql + Sync); 4] = [&kind.as_str(), &id, &at.unix(), &Timestamp::now().unix()];
    execute(client, SCHEDULE_POLL, &params, "Failed to schedule the poll job").await?;
    Ok(())
}

/// Reads a row of [`CLAIM_POLLS`] or [`HELD_POLLS`].
fn poll_from_row(row: &Row) -> anyhow::Result<PollJob> {
    let kind: &str = row.try_get(0)?;
    Ok(PollJob {
        kind: TxnKind::parse(kind).ok_or_else(|| BadState(kind.to_owned()))?,
        txn_id: row.try_get(1)?,
        attempts: u32::try_from(row.try_get::<_, i64>(2)?)?,
        due_at: Timestamp::from_unix(row.try_get(3)?),
    })
}

/// Writes the event reporting a change of `txn` to `status`, made at `at`,
/// if the partner has a callback URL.
async fn insert_event(
    tx: &Transaction<'_>,
    partner: RegistrationId,
    (kind, id): (TxnKind, i64),
    status: &str,
    payload: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    let until = at.plus_secs(event::DELIVERY_WINDOW_SECS);
    let params: [&(dyn ToSql + Sync); 7] =
        [&partner.number(), &kind.as_str(), &id, &status, &payload, &at.unix(), &until.unix()];
    execute(tx, INSERT_EVENT, &params, "Failed to write the partner event").await?;
    Ok(())
}

/// Reads a row of [`event_columns!`].
fn event_from_row(row: &Row) -> anyhow::Result<PartnerEvent> {
    let kind: &str = row.try_get(2)?;
    let state: &str = row.try_get(7)?;
    Ok(PartnerEvent {
        id: row.try_get(0)?,
        partner: RegistrationId::new(row.try_get(1)?),
        kind: TxnKind::parse(kind).ok_or_else(|| BadState(kind.to_owned()))?,
        txn_id: row.try_get(3)?,
        status: row.try_get(4)?,
        payload: row.try_get(5)?,
        created_at: Timestamp::from_unix(row.try_get(6)?),
        state: EventState::parse(state).ok_or_else(|| BadState(state.to_owned()))?,
        attempts: u32::try_from(row.try_get::<_, i64>(8)?)?,
        next_attempt_at: row.try_get::<_, Option<i64>>(9)?.map(Timestamp::from_unix),
        deliver_until: Timestamp::from_unix(row.try_get(10)?),
        delivered_at: row.try_get::<_, Option<i64>>(11)?.map(Timestamp::from_unix),
        redelivered_at: row.try_get::<_, Option<i64>>(12)?.map(Timestamp::from_unix),
    })
}

/// Reads a row of [`ATTEMPTS_OF`].
fn attempt_from_row(row: &Row) -> anyhow::Result<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        event_id: row.try_get(0)?,
        attempt: u32::try_from(row.try_get::<_, i64>(1)?)?,
        instance: row.try_get(2)?,
        url: row.try_get(3)?,
        at: Timestamp::from_unix(row.try_get(4)?),
        duration_ms: row.try_get(5)?,
        http_status: row.try_get::<_, Option<i64>>(6)?.map(u16::try_from).transpose()?,
        error: row.try_get(7)?,
    })
}

/// One parameter of a statement built at run time.
type Param = Box<dyn ToSql + Sync + Send>;

/// The statement listing the events `filter` asks for, newest first, and its
/// parameters. Only the conditions in use are written, so that each
/// combination gets a plan that uses its index.
fn events_query(filter: &EventFilter) -> (String, Vec<Param>) {
    let mut sql = String::from(concat!("SELECT ", event_columns!(), " FROM partner_events WHERE true"));
    let mut params: Vec<Param> = Vec::new();
    let mut bind = |sql: &mut String, column: &str, operator: &str, value: Param| {
        params.push(value);
        sql.push_str(&format!(" AND {column} {operator} ${}", params.len()));
    };
    if let Some(partner) = filter.partner {
        bind(&mut sql, "partner_id", "=", Box::new(partner.number()));
    }
    if let Some(state) = filter.state {
        bind(&mut sql, "state", "=", Box::new(state.name()));
    }
    if let Some((kind, id)) = filter.txn {
        bind(&mut sql, "kind", "=", Box::new(kind.as_str()));
        bind(&mut sql, "txn_id", "=", Box::new(id));
    }
    if let Some(before) = filter.before_id {
        bind(&mut sql, "id", "<", Box::new(before));
    }
    let limit = match filter.limit {
        0 => EVENTS_DEFAULT_LIMIT,
        limit => limit.min(EVENTS_MAX_LIMIT),
    };
    params.push(Box::new(i64::from(limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
    (sql, params)
}

/// Begins a `REPEATABLE READ READ ONLY` transaction: several reads that see one snapshot.
async fn snapshot(client: &mut deadpool_postgres::Client) -> Result<Transaction<'_>, StoreError> {
    let builder = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true);
    builder.start().await.store_context("Failed to begin a consistent read")
}

/// Reads the first two columns of an audit row.
fn pair<A: FromSqlOwned, B: FromSqlOwned>(row: &Row) -> Result<(A, B), tokio_postgres::Error> {
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Removes a decided transaction's poll job (if it has one, held or not):
/// the poller works only on undecided transactions.
async fn end_poll(tx: &Transaction<'_>, kind: TxnKind, txn_id: i64) -> Result<(), StoreError> {
    let params: [&(dyn ToSql + Sync); 2] = [&kind.as_str(), &txn_id];
    execute(tx, "DELETE FROM upstream_polls WHERE kind = $1 AND txn_id = $2", &params, "Failed to end a poll job")
        .await?;
    Ok(())
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

    /// [`Store::create_dmt_debited`], before the outcome is reported.
    async fn debit_dmt(
        &self,
        mut transfer: DmtTransfer,
        route: &DmtRoute,
        limit: &MonthlyLimit,
        note: &ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, Stop> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the transfer")?;
        transfer.ackno = 0;
        let journal = Journal::dmt_debit(&transfer, note.at);
        let wallet = charge_wallet(&tx, transfer.partner, journal.wallet_change()).await?;
        check_limit(&tx, &transfer, route, limit).await?;
        transfer.ackno = transactions::insert_new(&tx, &self.numbers, &transfer, note).await?;
        transactions::insert_route(&tx, &transfer, route).await?;
        insert_journal(&tx, &journal.with_txn_id(transfer.ackno)).await?;
        if let Some(at) = poll_at {
            schedule_poll(&tx, TxnKind::Dmt, transfer.ackno, at).await?;
        }
        tx.commit().await.store_context("Failed to commit the transfer")?;
        Ok(Debited { record: transfer, wallet })
    }

    /// [`Store::create_bill_debited`], before the outcome is reported.
    async fn debit_bill(
        &self,
        mut payment: BillPayment,
        note: &ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, Stop> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the bill payment")?;
        payment.txnid = 0;
        let journal = Journal::bill_debit(&payment, note.at);
        let wallet = charge_wallet(&tx, payment.partner, journal.wallet_change()).await?;
        payment.txnid = transactions::insert_new(&tx, &self.numbers, &payment, note).await?;
        insert_journal(&tx, &journal.with_txn_id(payment.txnid)).await?;
        if let Some(at) = poll_at {
            schedule_poll(&tx, TxnKind::Bbps, payment.txnid, at).await?;
        }
        tx.commit().await.store_context("Failed to commit the bill payment")?;
        Ok(Debited { record: payment, wallet })
    }
}

#[cfg(test)]
mod tests {
    //! These run against a real server: set `PAYRAIL_TEST_DATABASE_URL` to a
    //! role that may create databases. Each test gets a database of its own.

    use std::collections::HashSet;

    use super::ledger::debit_journal;
    pub(in crate::store::postgres) use super::test_db::*;
    use super::*;
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

    fn route(bank: Bank) -> anyhow::Result<DmtRoute> {
        Ok(DmtRoute { remitter: MobileNumber::parse("9876543210")?, beneficiary_id: 1, bank, mode: TransferMode::Imps })
    }

    fn no_limit() -> MonthlyLimit {
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
        store.create_dmt_debited(transfer, route, no_limit(), note("api"), None).await
    }

    pub(in crate::store::postgres) async fn balance(store: &PostgresStore) -> anyhow::Result<i64> {
        Ok(store.wallet_balance(partner()).await?.get())
    }

    pub(in crate::store::postgres) async fn raw_sql(store: &PostgresStore, sql: &str) -> anyhow::Result<()> {
        store.pool.get().await?.batch_execute(sql).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_debited_transfer_takes_amount_and_charge_once_per_reference() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        store.insert_partner(new_partner(Some(P))).await?;
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
        db.finish().await
    }

    #[tokio::test]
    async fn the_monthly_limit_counts_the_pipe_since_the_month_began() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        store.insert_partner(new_partner(Some(P))).await?;
        top_up(store, 10 * TRANSFER_COST, 100).await?;
        let limit = MonthlyLimit { since: at(1_600_000_000), limit: Paise::rupees(1_500) };
        let send = |reference: &str, bank: Bank| {
            let transfer = transfer(P, 0, reference);
            let route = route(bank);
            let limit = limit.clone();
            async move { anyhow::Ok(store.create_dmt_debited(transfer?, route?, limit, note("api"), None).await) }
        };
        send("L1", Bank::Bank1).await??;
        let refused = send("L2", Bank::Bank1).await?;
        assert!(matches!(refused, Err(DebitError::MonthlyLimit { remaining }) if remaining == Paise::rupees(500)));
        assert_eq!(balance(store).await?, 9 * TRANSFER_COST);
        send("L3", Bank::Bank2).await??;
        let mobile = MobileNumber::parse("9876543210")?;
        let usage = store.remitter_usage(partner(), &mobile, at(1_600_000_000)).await?;
        assert_eq!(usage, [Paise::rupees(1_000), Paise::rupees(1_000), Paise::ZERO]);
        // Transfers before `since` do not count; refunded ones neither.
        assert_eq!(store.remitter_usage(partner(), &mobile, at(1_700_000_000)).await?, [Paise::ZERO; 3]);
        raw_sql(store, "UPDATE dmt_transfers SET status = 0 WHERE reference_id = 'L1'").await?;
        send("L4", Bank::Bank1).await??;
        db.finish().await
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
            tasks.spawn(async move { store.create_dmt_debited(transfer, route, limit, note("api"), None).await });
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

    #[tokio::test]
    async fn a_refund_credits_the_wallet_exactly_once() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        store.insert_partner(new_partner(Some(P))).await?;
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
        let imported = store.insert_dmt_batch(vec![transfer(P, 0, "IMP")?], note("import"), no_progress()).await?[0];
        store.change_dmt(imported, DmtChange::Fail, note("admin")).await?;
        store.change_dmt(imported, refund, note("admin")).await?;
        assert_eq!(balance(store).await?, TRANSFER_COST + 100_000);

        let txnid = store.create_bill_debited(bill(P, 0, "B1")?, note("api"), None).await?.record.txnid;
        store.change_bill(txnid, BillChange::Fail, note("admin")).await?;
        store.change_bill(txnid, BillChange::Refund { refund_txn_id: Some("R-1".into()) }, note("admin")).await?;
        assert_eq!(balance(store).await?, TRANSFER_COST + 100_000);

        let statement = store.wallet_statement(partner(), at(0), at(i64::MAX)).await?;
        let purposes: Vec<Purpose> = statement.lines.iter().map(|l| l.purpose).collect();
        let expected = [Purpose::TopUp, Purpose::Debit, Purpose::Refund, Purpose::Debit, Purpose::Refund];
        assert_eq!(purposes, expected);
        assert_eq!(statement.lines[2].txn, Some((TxnKind::Dmt, ackno)));
        assert_eq!(statement.closing().get(), TRANSFER_COST + 100_000);
        assert_eq!(store.audit().await?, LedgerAudit { journals: 5, ..LedgerAudit::default() });
        db.finish().await
    }

    #[tokio::test]
    async fn an_otp_is_accepted_once() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let now = at(1_000);
        let issued = OtpRecord::issue(partner(), OtpPurpose::Transfer, "s1".into(), "tok".into(), "123456".into(), now);
        store.insert_otp(issued.record).await?;
        let check = |token: &'static str, purpose: OtpPurpose, code: &'static str| {
            store.check_otp(partner(), token, purpose, code, now)
        };
        assert_eq!(check("tok", OtpPurpose::Transfer, "000000").await?, OtpCheck::Wrong(2));
        assert_eq!(check("tok", OtpPurpose::Refund, "123456").await?, OtpCheck::Unknown);
        assert_eq!(check("nope", OtpPurpose::Transfer, "123456").await?, OtpCheck::Unknown);
        assert_eq!(
            store.check_otp(RegistrationId::new(9), "tok", OtpPurpose::Transfer, "123456", now).await?,
            OtpCheck::Unknown
        );
        assert_eq!(check("tok", OtpPurpose::Transfer, "123456").await?, OtpCheck::Accepted("s1".into()));
        assert_eq!(check("tok", OtpPurpose::Transfer, "123456").await?, OtpCheck::Spent);
        db.finish().await
    }

    #[tokio::test]
    async fn fee_plans_remitters_and_beneficiaries_round_trip() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        store.insert_partner(new_partner(Some(P))).await?;
        let plan = FeePlan::default_plan();
        assert_eq!(store.insert_fee_plan(partner(), at(10), plan.clone(), at(5)).await?.version, 1);
        assert_eq!(store.insert_fee_plan(partner(), at(20), plan.clone(), at(6)).await?.version, 2);
        let unknown = store.insert_fee_plan(RegistrationId::new(9), at(10), plan.clone(), at(5)).await;
        assert!(matches!(unknown, Err(DebitError::UnknownPartner)));
        let plans = store.fee_plans(partner()).await?;
        assert_eq!(plans.iter().map(|p| (p.version, p.effective_from.unix())).collect::<Vec<_>>(), [(1, 10), (2, 20)]);
        assert_eq!(plans[1].plan, plan);

        let mobile = MobileNumber::parse("9876543210")?;
        let remitter = Remitter {
            partner: partner(),
            mobile: mobile.clone(),
            first_name: Some("Asha".into()),
            last_name: None,
            kyc_id: "K1".into(),
            created_at: at(7),
        };
        assert!(store.insert_remitter(remitter.clone()).await?);
        assert!(!store.insert_remitter(remitter.clone()).await?);
        assert_eq!(store.find_remitter(partner(), &mobile).await?, Some(remitter));
        let new = |name: &str| -> anyhow::Result<Beneficiary> {
            Ok(Beneficiary {
                id: 0,
                partner: partner(),
                remitter: mobile.clone(),
                name: name.into(),
                account: AccountNumber::parse("123456789")?,
                ifsc: Ifsc::parse("SBIN0001234")?,
                bank_name: None,
                created_at: at(8),
            })
        };
        let first = store.insert_beneficiary(new("One")?).await?.map_err(|id| anyhow::anyhow!("refused: {id}"))?;
        assert_eq!(store.insert_beneficiary(new("Again")?).await?, Err(first.id));
        let other = Beneficiary { account: AccountNumber::parse("987654321")?, ..new("Two")? };
        let second = store.insert_beneficiary(other).await?.map_err(|id| anyhow::anyhow!("refused: {id}"))?;
        assert_eq!(store.find_beneficiary(partner(), first.id).await?, Some(first.clone()));
        assert!(store.delete_beneficiary(partner(), &mobile, first.id).await?);
        assert!(!store.delete_beneficiary(partner(), &mobile, first.id).await?);
        assert_eq!(store.find_beneficiary(partner(), first.id).await?, None);
        assert_eq!(store.beneficiaries(partner(), &mobile).await?, vec![second]);
        db.finish().await
    }

    // --- Upstream polling and partner callbacks (issue 4) -------------------

    /// No event ids.
    const NONE: Vec<i64> = Vec::new();

    /// When the changes of these tests are made (see [`note`]).
    const CHANGED: i64 = 1_700_000_000;

    fn poll(kind: TxnKind, txn_id: i64, attempts: u32, due: i64) -> PollJob {
        PollJob { kind, txn_id, attempts, due_at: at(due) }
    }

    async fn claim(store: &PostgresStore, owner: &str, now: i64) -> anyhow::Result<Vec<(TxnKind, i64)>> {
        let jobs = store.claim_polls(owner, at(now), at(now + 60), 10).await?;
        Ok(jobs.iter().map(|job| (job.kind, job.txn_id)).collect())
    }

    async fn claim_event_ids(store: &PostgresStore, owner: &str, now: i64) -> anyhow::Result<Vec<i64>> {
        let events = store.claim_events(owner, at(now), at(now + 60), 10).await?;
        Ok(events.iter().map(|event| event.id).collect())
    }

    fn attempt(event_id: i64, attempt: u32, when: i64, http_status: Option<u16>) -> DeliveryAttempt {
        DeliveryAttempt {
            event_id,
            attempt,
            instance: "test-1".into(),
            url: "https://partner.example/hook".into(),
            at: at(when),
            duration_ms: 12,
            http_status,
            error: http_status.filter(|s| *s >= 300).map(|s| format!("HTTP {s}")),
        }
    }

    /// A partner with a callback URL and `count` imported transfers; their acknos.
    async fn transfers_with_callback(store: &PostgresStore, count: usize) -> anyhow::Result<Vec<i64>> {
        store.insert_partner(new_partner(Some(P))).await?;
        assert!(store.set_callback_url(partner(), Some("https://partner.example/hook".into()), at(1)).await?);
        Ok(store.insert_dmt_batch(transfers(P, "E", count)?, note("import"), no_progress()).await?)
    }

    #[tokio::test]
    async fn a_debit_with_a_poll_time_writes_its_job_in_the_same_transaction() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        store.insert_partner(new_partner(Some(P))).await?;
        top_up(store, 4 * TRANSFER_COST, 100).await?;
        let polled = store
            .create_dmt_debited(transfer(P, 0, "P1")?, route(Bank::Bank1)?, no_limit(), note("api"), Some(at(500)))
            .await?
            .record
            .ackno;
        let unpolled = debit(store, "P2").await?.record.ackno;
        let bill = store.create_bill_debited(bill(P, 0, "B1")?, note("api"), Some(at(400))).await?.record.txnid;
        // A refused debit leaves no job behind.
        let dup = store
            .create_dmt_debited(transfer(P, 0, "P1")?, route(Bank::Bank1)?, no_limit(), note("api"), Some(at(1)))
            .await;
        assert!(matches!(dup, Err(DebitError::Duplicate(_))));

        assert_eq!(claim(store, "w1", 399).await?, vec![]);
        let jobs = store.claim_polls("w1", at(600), at(700), 10).await?;
        assert_eq!(jobs, vec![poll(TxnKind::Bbps, bill, 0, 400), poll(TxnKind::Dmt, polled, 0, 500)]);
        assert!(!jobs.iter().any(|job| job.txn_id == unpolled && job.kind == TxnKind::Dmt));
        db.finish().await
    }

    #[tokio::test]
    async fn a_poll_job_is_leased_to_one_claimer_until_the_lease_expires() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        for id in 1..=3 {
            store.schedule_poll(TxnKind::Dmt, id, at(100 + id)).await?;
        }
        store.schedule_poll(TxnKind::Bbps, 9, at(5_000)).await?;
        let first = store.claim_polls("a", at(1_000), at(1_060), 2).await?;
        assert_eq!(first, vec![poll(TxnKind::Dmt, 1, 0, 101), poll(TxnKind::Dmt, 2, 0, 102)]);
        assert_eq!(claim(store, "b", 1_001).await?, vec![(TxnKind::Dmt, 3)]);
        assert_eq!(claim(store, "c", 1_059).await?, vec![]);
        // The lease of "a" has run out: its jobs go to whoever claims next,
        // and "a" can no longer finish them.
        assert_eq!(claim(store, "c", 1_060).await?, vec![(TxnKind::Dmt, 1), (TxnKind::Dmt, 2)]);
        assert!(!store.finish_poll(&first[0], "a", PollNext::Done).await?);
        assert!(!store.finish_poll(&first[1], "a", PollNext::Again(at(2_000))).await?);
        assert!(!store.finish_poll(&poll(TxnKind::Dmt, 42, 0, 0), "c", PollNext::Held).await?);
        assert!(store.finish_poll(&first[0], "c", PollNext::Done).await?);
        assert!(!store.finish_poll(&first[0], "c", PollNext::Done).await?);
        db.finish().await
    }

    #[tokio::test]
    async fn finishing_a_poll_reschedules_removes_or_holds_the_job() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        for id in 1..=3 {
            store.schedule_poll(TxnKind::Dmt, id, at(100)).await?;
        }
        store.schedule_poll(TxnKind::Bbps, 3, at(100)).await?;
        let jobs = store.claim_polls("w", at(100), at(160), 10).await?;
        assert_eq!(jobs.len(), 4);
        let job = |kind: TxnKind, id: i64| jobs.iter().find(|j| j.kind == kind && j.txn_id == id).cloned();
        let job = |kind, id| job(kind, id).ok_or_else(|| anyhow::anyhow!("job {id} not claimed"));
        assert!(store.finish_poll(&job(TxnKind::Dmt, 1)?, "w", PollNext::Again(at(300))).await?);
        assert!(store.finish_poll(&job(TxnKind::Dmt, 2)?, "w", PollNext::Done).await?);
        assert!(store.finish_poll(&job(TxnKind::Dmt, 3)?, "w", PollNext::Held).await?);
        assert!(store.finish_poll(&job(TxnKind::Bbps, 3)?, "w", PollNext::Held).await?);

        // Again: due at its new time (not before), with the attempt counted, lease released.
        assert_eq!(claim(store, "x", 299).await?, vec![]);
        let again = store.claim_polls("x", at(300), at(360), 10).await?;
        assert_eq!(again, vec![poll(TxnKind::Dmt, 1, 1, 300)]);
        assert!(store.finish_poll(&again[0], "x", PollNext::Done).await?);
        // Held: never due again, listed by kind then transaction.
        assert_eq!(claim(store, "x", i64::MAX / 2).await?, vec![]);
        let held = store.held_polls().await?;
        assert_eq!(held, vec![poll(TxnKind::Bbps, 3, 1, 0), poll(TxnKind::Dmt, 3, 1, 0)]);
        // An operator resumes a held job: due again, attempts reset.
        store.schedule_poll(TxnKind::Dmt, 3, at(400)).await?;
        assert_eq!(store.held_polls().await?, vec![poll(TxnKind::Bbps, 3, 1, 0)]);
        assert_eq!(store.claim_polls("y", at(400), at(460), 10).await?, vec![poll(TxnKind::Dmt, 3, 0, 400)]);
        // Rescheduling a leased job releases its lease: the old holder is refused.
        store.schedule_poll(TxnKind::Dmt, 3, at(500)).await?;
        assert!(!store.finish_poll(&poll(TxnKind::Dmt, 3, 0, 400), "y", PollNext::Done).await?);
        db.finish().await
    }

    #[tokio::test]
    async fn a_change_writes_an_event_only_for_a_partner_with_a_callback_url() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        store.insert_partner(new_partner(Some(P))).await?;
        let stranger = RegistrationId::new(999);
        assert!(!store.set_callback_url(stranger, Some("https://x.example".into()), at(1)).await?);
        assert!(!store.set_callback_url(stranger, None, at(1)).await?);
        assert_eq!(store.callback_url(partner()).await?, None);
        let ackno = store.insert_dmt_batch(transfers(P, "T", 1)?, note("import"), no_progress()).await?[0];
        store.change_dmt(ackno, DmtChange::SentToBank, note("admin")).await?;
        assert_eq!(store.events(&EventFilter::default()).await?, vec![]);

        assert!(store.set_callback_url(partner(), Some("https://old.example".into()), at(1)).await?);
        assert!(store.set_callback_url(partner(), Some("https://partner.example/hook".into()), at(2)).await?);
        assert_eq!(store.callback_url(partner()).await?.as_deref(), Some("https://partner.example/hook"));
        let paid = store.change_dmt(ackno, DmtChange::Success { utr: None }, note("admin")).await?;
        let late = ChangeNote { at: at(CHANGED + 30), ..note("upstream-callback") };
        let with_utr = store.change_dmt(ackno, DmtChange::Utr { utr: "UTR1".into() }, late).await?;
        let events = store.events(&EventFilter::default()).await?;
        assert_eq!(events.len(), 2);
        let (utr_event, success_event) = (&events[0], &events[1]);
        assert!(utr_event.id > success_event.id);
        assert_eq!(success_event.payload, event::dmt_payload(&paid, at(CHANGED)));
        assert_eq!(utr_event.payload, event::dmt_payload(&with_utr, at(CHANGED + 30)));
        assert!(utr_event.payload.contains("\"utr\":\"UTR1\""));
        let expected = PartnerEvent {
            id: success_event.id,
            partner: partner(),
            kind: TxnKind::Dmt,
            txn_id: ackno,
            status: "success".into(),
            payload: success_event.payload.clone(),
            created_at: at(CHANGED),
            state: EventState::Pending,
            attempts: 0,
            next_attempt_at: Some(at(CHANGED)),
            deliver_until: at(CHANGED + event::DELIVERY_WINDOW_SECS),
            delivered_at: None,
            redelivered_at: None,
        };
        assert_eq!(success_event, &expected);
        assert_eq!(utr_event.status, "success");
        let history = store.dmt_with_history(ackno).await?.map(|(_, h)| h).unwrap_or_default();
        let last = history.last().map(|h| (h.from_status.as_deref(), h.to_status.as_str()));
        assert_eq!(last, Some((Some("success"), "success")));

        // A refused change writes no event; bill payments write theirs.
        let refused = store.change_dmt(ackno, DmtChange::Utr { utr: "UTR2".into() }, note("admin")).await;
        assert!(matches!(refused, Err(ChangeError::Forbidden(_))));
        let txnid = store.insert_bill_batch(vec![bill(P, 0, "B1")?], note("import"), no_progress()).await?[0];
        let success = BillChange::Success { operator_ref: Some("OP1".into()) };
        let paid_bill = store.change_bill(txnid, success, note("admin")).await?;
        let of_bill = EventFilter { txn: Some((TxnKind::Bbps, txnid)), ..EventFilter::default() };
        let bill_events = store.events(&of_bill).await?;
        assert_eq!(bill_events.len(), 1);
        assert_eq!(bill_events[0].payload, event::bill_payload(&paid_bill, at(CHANGED)));
        assert_eq!(bill_events[0].status, "success");

        // Without a callback URL again, changes write nothing.
        assert!(store.set_callback_url(partner(), None, at(3)).await?);
        assert_eq!(store.callback_url(partner()).await?, None);
        store.change_bill(txnid, BillChange::Fail, note("admin")).await?;
        assert_eq!(store.events(&EventFilter::default()).await?.len(), 3);
        db.finish().await
    }

    #[tokio::test]
    async fn a_transactions_events_are_claimed_in_order() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let acknos = transfers_with_callback(store, 2).await?;
        let (first, second) = (acknos[0], acknos[1]);
        store.change_dmt(first, DmtChange::SentToBank, note("api")).await?;
        store.change_dmt(second, DmtChange::SentToBank, note("api")).await?;
        store.change_dmt(first, DmtChange::Success { utr: Some("U1".into()) }, note("api")).await?;
        let ids: Vec<i64> = store.events(&EventFilter::default()).await?.iter().rev().map(|e| e.id).collect();
        let (a1, b1, a2) = (ids[0], ids[1], ids[2]);

        assert_eq!(claim_event_ids(store, "w", CHANGED - 1).await?, NONE);
        assert_eq!(claim_event_ids(store, "w", CHANGED).await?, vec![a1, b1]);
        // a1 is leased (still pending): a2 waits for it, whoever claims.
        assert_eq!(claim_event_ids(store, "v", CHANGED + 1).await?, NONE);
        // a1 retried: still pending, so a2 still waits, also once a1's lease is gone.
        assert!(
            store
                .record_attempt(attempt(a1, 1, CHANGED, Some(500)), "w", EventOutcome::RetryAt(at(CHANGED + 10)))
                .await?
        );
        assert_eq!(claim_event_ids(store, "v", CHANGED + 5).await?, NONE);
        assert_eq!(claim_event_ids(store, "v", CHANGED + 10).await?, vec![a1]);
        assert!(store.record_attempt(attempt(a1, 2, CHANGED + 10, Some(200)), "v", EventOutcome::Delivered).await?);
        assert_eq!(claim_event_ids(store, "v", CHANGED + 11).await?, vec![a2]);
        db.finish().await
    }

    #[tokio::test]
    async fn only_the_lease_holder_records_an_attempt() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let acknos = transfers_with_callback(store, 3).await?;
        for ackno in &acknos {
            store.change_dmt(*ackno, DmtChange::Fail, note("api")).await?;
        }
        let ids = claim_event_ids(store, "w", CHANGED).await?;
        let (delivered, retried, failed) = (ids[0], ids[1], ids[2]);

        let refused = store.record_attempt(attempt(delivered, 1, CHANGED, Some(200)), "x", EventOutcome::Delivered);
        assert!(!refused.await?);
        assert!(
            store.record_attempt(attempt(delivered, 1, CHANGED + 1, Some(204)), "w", EventOutcome::Delivered).await?
        );
        // Settled: the lease is gone, so a second recording is refused too.
        let again = store.record_attempt(attempt(delivered, 2, CHANGED + 2, Some(200)), "w", EventOutcome::Delivered);
        assert!(!again.await?);
        let (event, attempts) =
            store.event_with_attempts(delivered).await?.ok_or_else(|| anyhow::anyhow!("missing event"))?;
        assert_eq!(event.state, EventState::Delivered);
        assert_eq!((event.attempts, event.next_attempt_at, event.delivered_at), (1, None, Some(at(CHANGED + 1))));
        assert_eq!(attempts, vec![attempt(delivered, 1, CHANGED + 1, Some(204))]);

        let retry = EventOutcome::RetryAt(at(CHANGED + 30));
        assert!(store.record_attempt(attempt(retried, 1, CHANGED, None), "w", retry).await?);
        let (event, _) = store.event_with_attempts(retried).await?.ok_or_else(|| anyhow::anyhow!("missing event"))?;
        assert_eq!((event.state, event.attempts), (EventState::Pending, 1));
        assert_eq!((event.next_attempt_at, event.delivered_at), (Some(at(CHANGED + 30)), None));
        assert_eq!(claim_event_ids(store, "w", CHANGED + 29).await?, NONE);
        assert_eq!(claim_event_ids(store, "w", CHANGED + 30).await?, vec![retried]);
        assert!(store.record_attempt(attempt(retried, 2, CHANGED + 30, Some(503)), "w", EventOutcome::GiveUp).await?);
        assert!(store.record_attempt(attempt(failed, 1, CHANGED, Some(404)), "w", EventOutcome::GiveUp).await?);
        let (event, attempts) =
            store.event_with_attempts(retried).await?.ok_or_else(|| anyhow::anyhow!("missing event"))?;
        assert_eq!((event.state, event.attempts, event.next_attempt_at), (EventState::Failed, 2, None));
        assert_eq!(
            attempts.iter().map(|a| (a.attempt, a.http_status)).collect::<Vec<_>>(),
            [(1, None), (2, Some(503))]
        );
        assert_eq!(attempts[1].error.as_deref(), Some("HTTP 503"));
        assert_eq!(claim_event_ids(store, "w", CHANGED + 100_000).await?, NONE);
        assert_eq!(store.event_with_attempts(999_999).await?, None);
        db.finish().await
    }

    #[tokio::test]
    async fn events_are_listed_newest_first_filtered_and_paged() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let acknos = transfers_with_callback(store, 3).await?;
        store.insert_partner(new_partner(Some(777))).await?;
        store.set_callback_url(RegistrationId::new(777), Some("https://other.example".into()), at(1)).await?;
        let theirs = store.insert_dmt_batch(vec![transfer(777, 0, "O1")?], note("import"), no_progress()).await?[0];
        for ackno in acknos.iter().chain([&theirs]) {
            store.change_dmt(*ackno, DmtChange::SentToBank, note("api")).await?;
            store.change_dmt(*ackno, DmtChange::Fail, note("api")).await?;
        }
        let all = store.events(&EventFilter::default()).await?;
        assert_eq!(all.len(), 8);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id));
        let ids = |events: Vec<PartnerEvent>| events.iter().map(|e| e.id).collect::<Vec<_>>();

        let mine = EventFilter { partner: Some(partner()), ..EventFilter::default() };
        assert_eq!(ids(store.events(&mine).await?), ids(all[2..].to_vec()));
        let of_txn = EventFilter { txn: Some((TxnKind::Dmt, acknos[1])), ..EventFilter::default() };
        let listed = store.events(&of_txn).await?;
        assert_eq!(listed.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), ["failed", "sent_to_bank"]);
        assert_eq!(store.events(&EventFilter { txn: Some((TxnKind::Bbps, acknos[1])), ..of_txn }).await?, vec![]);

        let claimed = claim_event_ids(store, "w", CHANGED).await?;
        assert_eq!(claimed.len(), 4);
        assert!(store.record_attempt(attempt(claimed[0], 1, CHANGED, Some(200)), "w", EventOutcome::Delivered).await?);
        let delivered = EventFilter { state: Some(EventState::Delivered), ..EventFilter::default() };
        assert_eq!(ids(store.events(&delivered).await?), vec![claimed[0]]);
        let pending =
            EventFilter { state: Some(EventState::Pending), partner: Some(partner()), ..EventFilter::default() };
        assert_eq!(store.events(&pending).await?.len(), 5);

        // Paging: pages of 3 below the last id seen cover everything once.
        let mut seen = Vec::new();
        let mut page = EventFilter { limit: 3, ..EventFilter::default() };
        loop {
            let events = store.events(&page).await?;
            assert!(events.len() <= 3);
            let Some(last) = events.last() else { break };
            page.before_id = Some(last.id);
            seen.extend(ids(events));
        }
        assert_eq!(seen, ids(all));
        db.finish().await
    }

    #[tokio::test]
    async fn a_redelivered_event_is_pending_again_with_a_fresh_window() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let acknos = transfers_with_callback(store, 2).await?;
        store.change_dmt(acknos[0], DmtChange::Fail, note("api")).await?;
        store.change_dmt(acknos[1], DmtChange::Fail, note("api")).await?;
        let ids = claim_event_ids(store, "w", CHANGED).await?;
        assert!(store.record_attempt(attempt(ids[0], 1, CHANGED, Some(200)), "w", EventOutcome::Delivered).await?);
        assert!(store.record_attempt(attempt(ids[1], 1, CHANGED, Some(500)), "w", EventOutcome::GiveUp).await?);

        let now = CHANGED + 90_000;
        for id in &ids {
            let event = store.redeliver_event(*id, at(now)).await?.ok_or_else(|| anyhow::anyhow!("missing event"))?;
            assert_eq!((event.state, event.attempts), (EventState::Pending, 1));
            assert_eq!((event.next_attempt_at, event.delivered_at), (Some(at(now)), None));
            assert_eq!(event.deliver_until, at(now + event::DELIVERY_WINDOW_SECS));
            assert_eq!(event.created_at, at(CHANGED));
        }
        assert_eq!(store.redeliver_event(999_999, at(now)).await?, None);
        // A redelivery keeps a live lease: nobody else claims the event, and
        // the holder's attempt in flight is recorded.
        assert_eq!(claim_event_ids(store, "v", now).await?, ids);
        store.redeliver_event(ids[0], at(now + 1)).await?;
        assert_eq!(claim_event_ids(store, "x", now + 1).await?, Vec::<i64>::new());
        assert!(store.record_attempt(attempt(ids[0], 2, now, Some(200)), "v", EventOutcome::Delivered).await?);
        let attempts = store.event_with_attempts(ids[0]).await?.map(|(_, a)| a.len());
        assert_eq!(attempts, Some(2));
        db.finish().await
    }

    /// How many workers the concurrency tests run, each on a connection of its own.
    const WORKERS: usize = 8;

    /// A second store on the test database with a connection open for every
    /// worker, so that their first claims start together.
    async fn shared_store(db: &TestDb) -> anyhow::Result<Arc<PostgresStore>> {
        let shared = PostgresStore::connect_with(db.config.clone()).await?;
        let mut clients = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            clients.push(shared.pool.get().await?);
        }
        drop(clients);
        Ok(Arc::new(shared))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claimers_take_every_poll_job_exactly_once() -> anyhow::Result<()> {
        const JOBS: i64 = 300;
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        for id in 1..=JOBS {
            let kind = if id % 2 == 0 { TxnKind::Dmt } else { TxnKind::Bbps };
            db.store.schedule_poll(kind, id, at(id % 7)).await?;
        }
        let shared = shared_store(&db).await?;
        let start = Arc::new(tokio::sync::Barrier::new(WORKERS));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..WORKERS {
            let (store, start) = (Arc::clone(&shared), Arc::clone(&start));
            tasks.spawn(async move {
                let owner = format!("w{worker}");
                let mut mine = Vec::new();
                start.wait().await;
                loop {
                    let jobs = store.claim_polls(&owner, at(100), at(1_000), 7).await?;
                    if jobs.is_empty() {
                        return anyhow::Ok(mine);
                    }
                    mine.extend(jobs.into_iter().map(|job| (job.kind, job.txn_id)));
                }
            });
        }
        let mut claimed = Vec::new();
        let mut claimers = 0;
        while let Some(result) = tasks.join_next().await {
            let mine = result??;
            claimers += usize::from(!mine.is_empty());
            claimed.extend(mine);
        }
        shared.pool.close();
        assert_eq!(claimed.len(), JOBS as usize);
        assert_eq!(claimed.iter().collect::<HashSet<_>>().len(), JOBS as usize);
        assert!(claimers > 1, "only {claimers} claimer got work");
        assert_eq!(claim(&db.store, "late", 999).await?, vec![]);
        db.finish().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claimers_deliver_every_event_once_and_in_order() -> anyhow::Result<()> {
        const TRANSFERS: usize = 40;
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let acknos = transfers_with_callback(&db.store, TRANSFERS).await?;
        for ackno in &acknos {
            db.store.change_dmt(*ackno, DmtChange::SentToBank, note("api")).await?;
            db.store.change_dmt(*ackno, DmtChange::Success { utr: None }, note("api")).await?;
        }
        let shared = shared_store(&db).await?;
        // A clock of happenings across workers: when each event was claimed
        // (after its claim returned) and settled (before the recording began).
        let clock = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..WORKERS {
            let (store, clock) = (Arc::clone(&shared), Arc::clone(&clock));
            tasks.spawn(async move {
                let owner = format!("w{worker}");
                let tick = || clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut mine = Vec::new();
                loop {
                    let events = store.claim_events(&owner, at(CHANGED), at(CHANGED + 600), 5).await?;
                    let claimed_at = tick();
                    if events.is_empty() {
                        let pending = EventFilter { state: Some(EventState::Pending), ..EventFilter::default() };
                        if store.events(&pending).await?.is_empty() {
                            return anyhow::Ok(mine);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    for event in events {
                        let settled_at = tick();
                        let recorded = attempt(event.id, 1, CHANGED, Some(200));
                        anyhow::ensure!(store.record_attempt(recorded, &owner, EventOutcome::Delivered).await?);
                        mine.push((event.txn_id, event.id, claimed_at, settled_at));
                    }
                }
            });
        }
        let mut claimed = Vec::new();
        while let Some(result) = tasks.join_next().await {
            claimed.extend(result??);
        }
        shared.pool.close();
        assert_eq!(claimed.len(), 2 * TRANSFERS);
        assert_eq!(claimed.iter().map(|c| c.1).collect::<HashSet<_>>().len(), 2 * TRANSFERS);
        claimed.sort_by_key(|c| (c.0, c.1));
        for pair in claimed.chunks(2) {
            let [(_, _, _, older_settled), (_, _, newer_claimed, _)] = pair else { anyhow::bail!("odd events") };
            assert!(older_settled < newer_claimed, "an event was claimed before its predecessor was settled");
        }
        let delivered = EventFilter { state: Some(EventState::Delivered), limit: 1_000, ..EventFilter::default() };
        assert_eq!(db.store.events(&delivered).await?.len(), 2 * TRANSFERS);
        db.finish().await
    }

    /// The claim walks the partial index `upstream_polls_due` (due jobs only,
    /// in due order) and stops at the limit; held jobs are not in it. Plan
    /// with 20,000 due and 5,000 held jobs, analysed:
    /// `Limit -> LockRows -> Index Scan using upstream_polls_due on upstream_polls,
    /// Index Cond: ((next_poll_at IS NOT NULL) AND (next_poll_at <= ...))`, then
    /// the update by primary key.
    #[tokio::test]
    async fn the_claim_is_an_index_range_scan() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let client = db.store.client().await?;
        client
            .batch_execute(
                "INSERT INTO upstream_polls (kind, txn_id, attempts, next_poll_at) \
                 SELECT 'dmt', n, 0, CASE WHEN n % 5 = 0 THEN NULL ELSE n END FROM generate_series(1, 25000) n; \
                 ANALYZE upstream_polls;",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 4] = [&"o", &30_000_i64, &30_060_i64, &32_i64];
        let rows = client.query(&format!("EXPLAIN {CLAIM_POLLS}"), &params).await?;
        let plan: Vec<String> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        let plan = plan.join("\n");
        assert!(plan.contains("Index Scan using upstream_polls_due on upstream_polls"), "{plan}");
        assert!(plan.contains("Index Cond: ((next_poll_at IS NOT NULL) AND (next_poll_at <= "), "{plan}");
        assert!(!plan.contains("Seq Scan") && !plan.contains("Sort"), "{plan}");
        drop(client);
        db.finish().await
    }
}
