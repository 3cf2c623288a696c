//! The transaction store: partners, DMT transfers, bill payments and their
//! status history, the wallet ledger, remitters and the upstream work
//! queues, behind one trait per aggregate with two engines.
//!
//! # Layout
//!
//! - One trait per aggregate, each in its own file next to the SQL both
//!   engines share for it (a `sql` module): [`partners`], [`transactions`],
//!   [`ledger`], [`remittance`], [`kyc`], [`upstream_work`], [`penny_drops`],
//!   [`search`], [`operators`], [`reconcile`], [`feed`], [`health`],
//!   [`chain`] (the tamper-evident history).
//!   [`Store`] is all of them.
//! - One folder per engine, [`sqlite`] and [`postgres`]: a `mod.rs` with the
//!   connection, pool or writer and the error mapping, one file per
//!   aggregate with that trait's implementation and the SQL only that
//!   engine runs, and `migrations/`, one `.sql` file per schema version.
//! - `columns`: the macro that writes a table's column list once, for the
//!   queries and the row decoders of both engines.
//!
//! - [`sqlite`] is the embedded default: one file in the data directory, WAL
//!   journal, driven by `rusqlite`. Point lookups run inline on the calling
//!   task (a few microseconds, cheaper than a hop to a blocking thread);
//!   writes go to one writer connection on its own thread, which commits
//!   the writes waiting together in one durable (`synchronous = FULL`)
//!   commit (group commit).
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
//! A new transfer or bill payment gets its number (`ackno`, `txnid`) inside
//! the inserting transaction: the next value of a per-kind counter through
//! the installation's keyed permutation (`domain::txn_id`), whose secret the
//! store keeps; numbers given out before keep answering.

pub mod chain;
pub(crate) mod columns;
pub mod feed;
pub mod files;
pub mod health;
pub mod kyc;
pub mod ledger;
pub mod lookup;
pub mod operators;
pub mod partners;
pub mod penny_drops;
pub mod postgres;
pub mod postgres_tls;
pub mod reconcile;
pub mod remittance;
pub mod search;
pub mod sqlite;
pub mod transactions;
pub mod upstream_work;

pub use chain::ChainStore;
pub use feed::FeedStore;
pub use health::HealthStore;
pub use kyc::KycStore;
pub use ledger::{LedgerStore, NewFeePlan};
pub use operators::{ConsoleLogin, OperatorEdit, OperatorStore};
pub use partners::{CallbackSecretInstall, PartnerAccess, PartnerStore, SecretRotation, SeenReqid};
pub use penny_drops::{PennyDropOutcome, PennyDropStore};
pub use reconcile::ReconcileStore;
pub use remittance::{BeneficiaryDeletion, OtpAttempt, RemittanceStore};
pub use search::SearchStore;
pub use transactions::{DmtDebit, HistoryNote, RecordStore, TransactionStore};
pub use upstream_work::{Claims, Lease, UpstreamWorkStore};

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::event::{
    CallbackSecrets, DeliveryAttempt, EventFilter, EventOutcome, PartnerEvent, PollJob, PollNext,
};
use crate::domain::fee_plan::{FeePlan, FeePlanVersion};
use crate::domain::ledger::{Journal, Statement, WalletMove};
use crate::domain::otp::{OtpCheck, OtpPurpose, OtpRecord, TextLimits};
use crate::domain::partner::SealedSecret;
use crate::domain::remitter::{Beneficiary, DmtRoute, MobileNumber, MonthlyLimit, PerBank, Remitter};
use crate::domain::{
    BillPayment, ChangeSource, DmtTransfer, ForbiddenTransition, HistoryEntry, IpAllowlist, Paise, Partner,
    PartnerStatus, RegistrationId, Timestamp, TxnKind,
};

/// What a store call answers: its value, or a failure of the store itself.
pub type StoreResult<T> = Result<T, StoreError>;

/// A failure of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is busy; worth retrying later (503).
    #[error("the store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Any other failure: a query the database refused, a stored row that
    /// does not decode, a lost invariant. Not worth a retry (500).
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
    /// The store could not insert the batch (unavailable or failed); see [`StoreError`].
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
    /// The store could not read or write the transaction (unavailable or failed); see [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why money was not taken from (or moved in) a wallet. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum DebitError {
    /// The partner already has a transaction with this reference.
    #[error("reference {0:?} already exists for this partner")]
    Duplicate(String),
    /// The wallet holds less than the debit.
    #[error("insufficient wallet balance")]
    InsufficientFunds {
        /// What the wallet holds.
        balance: Paise,
    },
    /// The transfer would take the remitter past its monthly limit on the pipe.
    #[error("monthly limit exceeded")]
    MonthlyLimit {
        /// What is left of the limit this month.
        remaining: Paise,
    },
    /// The partner does not exist.
    #[error("no such partner")]
    UnknownPartner,
    /// The store could not move the money (unavailable or failed); see [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A record created together with the wallet debit that pays for it.
#[derive(Debug, Clone)]
pub struct Debited<T> {
    /// The record as stored, with its id.
    pub record: T,
    /// The wallet before and after.
    pub wallet: WalletMove,
    /// The record's upstream reference (as stored, without the prefix),
    /// where the engine stored it in the same database transaction;
    /// `None`: not assigned yet ([`UpstreamWorkStore::assign_upstream_ref`]).
    pub upstream_ref: Option<String>,
}

/// Facts about the ledger and the transactions it pays for, gathered by
/// [`LedgerStore::audit`] for `payrail verify`. Every list is empty on a sound store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerAudit {
    /// The sum of every posting in the ledger (must be 0).
    pub total: i64,
    /// How many journals and postings were looked at.
    pub journals: i64,
    /// Journals whose postings do not sum to zero: (journal id, sum).
    pub unbalanced_journals: Vec<(i64, i64)>,
    /// Wallets whose stored balance differs from the sum of their postings,
    /// or is negative: (partner number, stored balance, sum of postings).
    /// A wallet account with postings but no balance row counts with balance 0.
    pub wallet_mismatches: Vec<(i64, i64, i64)>,
    /// (kind, txn id, purpose, count) where a transaction has more than one
    /// journal of the same purpose (debited twice, refunded twice).
    pub repeated_journals: Vec<(String, i64, String, i64)>,
    /// (kind, txn id) refunded in the ledger without a debit.
    pub refunds_without_debit: Vec<(String, i64)>,
    /// (kind, txn id) with a ledger refund whose record is not in the refunded state.
    pub refunds_not_recorded: Vec<(String, i64)>,
    /// (kind, txn id) debited and in the refunded state, without a ledger refund.
    pub refunds_not_paid: Vec<(String, i64)>,
    /// (kind, txn id) paid from the wallet (it has a debit journal), in the
    /// failed state and without a ledger refund: a bill payment the
    /// upstream failed is refunded in the transaction that fails it, so
    /// only an operator's unfinished step (or a crash in an older payrail)
    /// leaves one.
    pub failed_not_refunded: Vec<(String, i64)>,
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

/// Who made a state change, why and when: what the change's row in
/// `status_history` records beside the two states, and the time the change
/// itself is stamped with (`updated_at`, a refund's `refunded_at`, the
/// partner's event).
#[derive(Debug, Clone)]
pub struct ChangeNote {
    /// What made the change (`import`, `admin`, `poller`, `status-sync`,
    /// `demo`, …), stored in the history's `source` column as
    /// [`ChangeSource::as_str`].
    pub source: ChangeSource,
    /// Why, in an operator's or the upstream's words (an admin's reason, an
    /// upstream message), if there is one; stored as the history's `reason`.
    pub reason: Option<String>,
    /// When the change happens: the history row's time and the record's
    /// `updated_at`.
    pub at: Timestamp,
}

/// The store behind payrail: every aggregate's trait, one implementation
/// per engine (as lldap's `BackendHandler` is all of its handlers). Services
/// ask for the narrowest trait they use.
#[async_trait]
pub trait Store:
    PartnerStore
    + TransactionStore
    + LedgerStore
    + RemittanceStore
    + UpstreamWorkStore
    + KycStore
    + PennyDropStore
    + SearchStore
    + OperatorStore
    + FeedStore
    + HealthStore
    + ReconcileStore
    + ChainStore
{
    /// Which engine this is, for logs and the bench.
    fn engine(&self) -> &'static str;
    /// Writes out anything the engine keeps in memory for a while (SQLite's
    /// recent token `reqid`s); the server calls it when it shuts down.
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Where the store lives, as configured.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// `payrail.db` in this directory.
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

/// The SQLite store's database file, in the data directory.
pub const SQLITE_FILE: &str = "payrail.db";

/// Opens the configured store and runs its migrations.
pub async fn open(location: &StoreLocation) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match location {
        StoreLocation::Sqlite(dir) => Arc::new(sqlite::SqliteStore::open(&dir.join(SQLITE_FILE))?),
        StoreLocation::Postgres(url) => Arc::new(postgres::PostgresStore::connect(url).await?),
    })
}

/// A fresh secret for an installation's transaction numbering
/// (`domain::txn_id`): 32 random bytes from the OS, in hex. Each engine
/// stores one the first time it opens a store that has none.
pub(crate) fn new_txn_number_secret() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
