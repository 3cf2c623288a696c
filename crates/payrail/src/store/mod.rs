//! The transaction store: partners, DMT transfers, bill payments and their
//! status history, behind one trait with two engines.
//!
//! - [`sqlite`] is the embedded default: one file in the data directory, WAL
//!   journal, driven by `rusqlite`. Point lookups run inline on the calling
//!   task (a few microseconds, cheaper than a hop to a blocking thread);
//!   writes go to one writer connection on a blocking thread.
//! - [`postgres`] is the production engine, driven by `tokio-postgres` through
//!   a `deadpool` pool, and the one several payrail instances can share.
//!
//! Why these drivers: on a primary-key lookup rusqlite is several times faster
//! than sqlx's SQLite driver (sqlx runs SQLite on a worker thread and pays a
//! channel round trip per query), and tokio-postgres is the leanest native
//! async PostgreSQL driver, with prepared-statement caching through deadpool.
//! The bench (`payrail-bench`) measures the result end to end.
//!
//! Every state change commits together with its history row, or not at all.

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::partner::SealedSecret;
use crate::domain::{
    BillPayment, DmtTransfer, ForbiddenTransition, HistoryEntry, IpAllowlist, Partner, PartnerStatus, RegistrationId,
    Timestamp,
};

/// A failure of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is busy; worth retrying later (503).
    #[error("the store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else (500).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Why a batch of new transactions was not inserted. Nothing was inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// Row `index` (0-based) uses a reference its partner already has.
    #[error("reference {reference:?} already exists for this partner")]
    Duplicate {
        /// Position of the offending row in the batch.
        index: usize,
        /// The reference.
        reference: String,
    },
    /// Row `index` names a partner the store does not have.
    #[error("partner {partner} does not exist")]
    UnknownPartner {
        /// Position of the offending row in the batch.
        index: usize,
        /// The partner named.
        partner: RegistrationId,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a state change was not made. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No transaction with that id.
    #[error("no such transaction")]
    NotFound,
    /// The state machine forbids it.
    #[error(transparent)]
    Forbidden(#[from] ForbiddenTransition),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A partner to be added.
#[derive(Debug, Clone)]
pub struct NewPartner {
    /// A fixed number (the demo's `AOP-554`), or `None` for the next free one.
    pub number: Option<i64>,
    /// A name for operators.
    pub name: String,
    /// Whether requests must carry a token.
    pub require_token: bool,
    /// Where requests may come from.
    pub allowlist: IpAllowlist,
    /// The sealed token secret.
    pub secret: SealedSecret,
    /// SHA-256 of an `Authorisedkey`, if the partner uses one.
    pub authorised_key_hash: Option<Vec<u8>>,
    /// When it is added.
    pub created_at: Timestamp,
}

/// Who made a change and why, for the history.
#[derive(Debug, Clone)]
pub struct ChangeNote {
    /// `import`, `admin`, `demo`, …
    pub source: String,
    /// Free text.
    pub reason: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// The store behind payrail. One implementation per engine.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which engine this is, for logs and the bench.
    fn engine(&self) -> &'static str;

    /// The partner with this registration id.
    async fn find_partner(&self, id: RegistrationId) -> Result<Option<Partner>, StoreError>;
    /// Adds a partner and returns it with its registration id.
    async fn insert_partner(&self, new: NewPartner) -> Result<Partner, StoreError>;
    /// Every partner, by registration id.
    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError>;
    /// Suspends or reactivates; `false` if there is no such partner.
    async fn set_partner_status(&self, id: RegistrationId, status: PartnerStatus) -> Result<bool, StoreError>;
    /// Installs a new secret, keeping the current one valid until `previous_until`.
    async fn rotate_partner_secret(
        &self,
        id: RegistrationId,
        secret: SealedSecret,
        previous_until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records a token `reqid`; `false` if the partner used it since `cutoff` (a replay).
    async fn remember_reqid(
        &self,
        partner: RegistrationId,
        reqid: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The whole DMT status lookup in one round trip: the partner and, if it
    /// has one, its transfer with this reference. `None`: no such partner.
    async fn lookup_dmt(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<DmtTransfer>)>, StoreError>;
    /// The transfer with this ackno and its history, oldest first.
    async fn dmt_with_history(&self, ackno: i64) -> Result<Option<(DmtTransfer, Vec<HistoryEntry>)>, StoreError>;
    /// Inserts transfers all together or not at all. `ackno` 0 asks for a new
    /// one. `progress` is called with the number of rows written so far.
    async fn insert_dmt_batch(
        &self,
        rows: Vec<DmtTransfer>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError>;
    /// Applies a state change with its history row, atomically. A `Refund`
    /// with an empty `refund_txn_id` gets a new refund id from the store.
    async fn change_dmt(&self, ackno: i64, change: DmtChange, note: ChangeNote) -> Result<DmtTransfer, ChangeError>;

    /// As [`Store::lookup_dmt`], for bill payments.
    async fn lookup_bill(
        &self,
        partner: RegistrationId,
        reference: &str,
    ) -> Result<Option<(Partner, Option<BillPayment>)>, StoreError>;
    /// The bill payment with this txnid and its history, oldest first.
    async fn bill_with_history(&self, txnid: i64) -> Result<Option<(BillPayment, Vec<HistoryEntry>)>, StoreError>;
    /// As [`Store::insert_dmt_batch`], for bill payments (`txnid` 0 asks for a new one).
    async fn insert_bill_batch(
        &self,
        rows: Vec<BillPayment>,
        note: ChangeNote,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<Vec<i64>, InsertError>;
    /// As [`Store::change_dmt`], for bill payments.
    async fn change_bill(&self, txnid: i64, change: BillChange, note: ChangeNote) -> Result<BillPayment, ChangeError>;

    /// How many transfers and bill payments the store holds.
    async fn counts(&self) -> Result<(i64, i64), StoreError>;
}

/// Where the store lives, as configured.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// `payrail.db` in this directory.
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

/// Opens the configured store and runs its migrations.
pub async fn open(location: &StoreLocation) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match location {
        StoreLocation::Sqlite(dir) => Arc::new(sqlite::SqliteStore::open(&dir.join("payrail.db"))?),
        StoreLocation::Postgres(url) => Arc::new(postgres::PostgresStore::connect(url).await?),
    })
}
