//! The transaction store: partners, DMT transfers, bill payments and their
//! status history, behind one trait with two engines.
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

pub mod files;
pub mod postgres;
pub mod postgres_tls;
pub mod sqlite;

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
use crate::domain::remitter::{Beneficiary, DmtRoute, MobileNumber, MonthlyLimit, Remitter};
use crate::domain::{
    BillPayment, ChangeSource, DmtTransfer, ForbiddenTransition, HistoryEntry, IpAllowlist, Paise, Partner,
    PartnerStatus, RegistrationId, Timestamp, TxnKind,
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
    /// The store failed.
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
}

/// Facts about the ledger and the transactions it pays for, gathered by
/// [`Store::audit`] for `payrail verify`. Every list is empty on a sound store.
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

/// Who made a change and why, for the history.
#[derive(Debug, Clone)]
pub struct ChangeNote {
    /// Who made it; stored as [`ChangeSource::as_str`].
    pub source: ChangeSource,
    /// Why, in words: the operator's reason, the upstream's answer.
    pub reason: Option<String>,
    /// When it was made.
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

    /// The master key's check value, if the store has one yet.
    async fn key_check(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `mac` as the master key's check value if the store has none,
    /// atomically, and returns the value stored (`mac`, or the one another
    /// process stored first).
    async fn claim_key_check(&self, mac: &[u8], at: Timestamp) -> Result<Vec<u8>, StoreError>;

    /// Records a token `reqid`; `false` if the partner used it since `cutoff` (a replay).
    async fn remember_reqid(
        &self,
        partner: RegistrationId,
        reqid: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Records the `reqid` of an upstream callback's token, durably, and
    /// forgets those seen before `cutoff`; `false` (nothing written) if it
    /// was seen since `cutoff` (a replay).
    async fn remember_upstream_reqid(&self, reqid: &str, now: Timestamp, cutoff: Timestamp)
        -> Result<bool, StoreError>;
    /// Writes out anything the engine keeps in memory for a while (SQLite's
    /// recent token `reqid`s); the server calls it when it shuts down.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

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
    /// A `Refund` of a transfer that was paid from the wallet (it has a
    /// debit journal) also writes [`Journal::refund_of`] that debit and
    /// credits the wallet, in the same transaction: at most once, since a
    /// refunded record cannot be refunded again and a transaction has at
    /// most one journal per purpose. A change that decides the transfer
    /// (`domain::upstream::dmt_needs_polling` turns false) also removes its
    /// poll job, held or not, in the same transaction.
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
    /// As [`Store::change_dmt`], for bill payments (decided:
    /// `domain::upstream::bill_needs_polling` turns false).
    async fn change_bill(&self, txnid: i64, change: BillChange, note: ChangeNote) -> Result<BillPayment, ChangeError>;
    /// Fails a pending or paid bill payment (history row `note`) and refunds
    /// it (history row `refund`, a new refund id, and the refund journal if
    /// it was paid from the wallet) in ONE database transaction, so that no
    /// crash can leave a wallet-paid payment failed and not refunded. A
    /// payment already failed (by an operator, or by an older payrail) is
    /// only refunded. `Forbidden` (nothing written) for a refunded one.
    async fn fail_bill(&self, txnid: i64, note: ChangeNote, refund: ChangeNote) -> Result<BillPayment, ChangeError>;

    /// How many transfers and bill payments the store holds.
    async fn counts(&self) -> Result<(i64, i64), StoreError>;

    // --- The wallet ledger (see `domain::ledger`) ---------------------------

    /// Writes a journal (a top-up or a withdrawal) and moves the partner's
    /// wallet balance by [`Journal::wallet_change`], atomically. Refuses with
    /// `InsufficientFunds` if the wallet would go below zero, `UnknownPartner`
    /// if there is no such partner. Wallet rows are created on first use.
    async fn post_journal(&self, journal: Journal) -> Result<WalletMove, DebitError>;
    /// The partner's wallet balance (0 if it never moved).
    async fn wallet_balance(&self, partner: RegistrationId) -> Result<Paise, StoreError>;
    /// The wallet's movements with `from <= at < to`, oldest first (by
    /// journal id), and the balance at `from` (the sum of earlier postings).
    async fn wallet_statement(
        &self,
        partner: RegistrationId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Statement, StoreError>;
    /// Checks the ledger's invariants in one consistent read.
    async fn audit(&self) -> Result<LedgerAudit, StoreError>;

    // --- Fee plans ----------------------------------------------------------

    /// Records a new version of the partner's plan (the next version number)
    /// and returns it. `UnknownPartner` if there is no such partner.
    async fn insert_fee_plan(
        &self,
        partner: RegistrationId,
        effective_from: Timestamp,
        plan: FeePlan,
        created_at: Timestamp,
    ) -> Result<FeePlanVersion, DebitError>;
    /// Every version of the partner's plan, by version.
    async fn fee_plans(&self, partner: RegistrationId) -> Result<Vec<FeePlanVersion>, StoreError>;

    // --- Remitters, beneficiaries, OTPs -------------------------------------

    /// The partner's remitter with this mobile.
    async fn find_remitter(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Option<Remitter>, StoreError>;
    /// Registers a remitter; `false` (and nothing written) if the partner has one with this mobile.
    async fn insert_remitter(&self, remitter: Remitter) -> Result<bool, StoreError>;
    /// What the remitter sent through each pipe (index 0 = bank 1) in
    /// transfers made at or after `since` that are not refunded.
    async fn remitter_usage(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        since: Timestamp,
    ) -> Result<[Paise; 3], StoreError>;
    /// Adds a beneficiary (its `id` is ignored) and returns it with its new
    /// id; `Err(id)` of the remitter's beneficiary (not deleted) with the
    /// same account number at the same bank (the IFSC's first four letters),
    /// and nothing written. Concurrent calls for one remitter are serialised.
    async fn insert_beneficiary(&self, beneficiary: Beneficiary) -> Result<Result<Beneficiary, i64>, StoreError>;
    /// The remitter's beneficiaries that are not deleted, by id.
    async fn beneficiaries(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
    ) -> Result<Vec<Beneficiary>, StoreError>;
    /// The partner's beneficiary with this id, if not deleted.
    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> Result<Option<Beneficiary>, StoreError>;
    /// Deletes (marks deleted) the remitter's beneficiary; `false` if there was none.
    async fn delete_beneficiary(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        id: i64,
    ) -> Result<bool, StoreError>;
    /// Stores a new OTP.
    async fn insert_otp(&self, otp: OtpRecord) -> Result<(), StoreError>;
    /// Counts an OTP text to `mobile` at `now` if `limits` allow it, given
    /// the texts counted for it in the last day by any partner; otherwise
    /// `Err` of when one may go, and nothing written. Check and count are one
    /// step per mobile, across connections and instances, so concurrent
    /// requests cannot all pass the check.
    async fn count_text(
        &self,
        mobile: &MobileNumber,
        now: Timestamp,
        limits: TextLimits,
    ) -> Result<Result<(), Timestamp>, StoreError>;
    /// Presents `code` for the partner's OTP `token` of this purpose, with
    /// [`OtpRecord::check`], and saves what it changed (attempts, used) in
    /// the same transaction, so that a code can be accepted only once.
    async fn check_otp(
        &self,
        partner: RegistrationId,
        token: &str,
        purpose: OtpPurpose,
        code: &str,
        now: Timestamp,
    ) -> Result<OtpCheck, StoreError>;

    // --- Transactions paid from the wallet ----------------------------------
    //
    // `poll_at`: when the upstream is first to be asked about the new
    // transaction; `Some` writes its poll job (see `claim_polls`) in the same
    // database transaction, so that a crash after the debit can never leave a
    // paid transaction that nobody follows up.

    /// In one database transaction: takes [`Journal::dmt_debit`] of the
    /// transfer from the wallet (refusing `InsufficientFunds`), checks that
    /// the remitter's non-refunded transfers on the route's pipe since
    /// `limit.since` plus this one stay within `limit.limit` (else
    /// `MonthlyLimit`), inserts the transfer (new ackno; `Duplicate` if the
    /// reference exists), its route, its first history row and the journal.
    /// Concurrent calls for one partner are serialised on its wallet.
    async fn create_dmt_debited(
        &self,
        transfer: DmtTransfer,
        route: DmtRoute,
        limit: MonthlyLimit,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, DebitError>;
    /// The route of a transfer made through the DMT V1 API.
    async fn dmt_route(&self, ackno: i64) -> Result<Option<DmtRoute>, StoreError>;
    /// As [`Store::create_dmt_debited`] for a bill payment
    /// ([`Journal::bill_debit`]; no limit).
    async fn create_bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError>;

    // --- Upstream polling (see `services::upstream::sync`) ----------------------------
    //
    // A poll job is one row per (kind, txn id). Workers of several payrail
    // processes share the table: a claim leases due jobs to one owner until
    // `lease_until` (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so two claims
    // never return the same job), and only the lease holder can finish one.

    /// Up to `limit` jobs due at `now` (`next_poll_at <= now`, not held) whose
    /// lease is free or expired, oldest due first, leased to `owner` until
    /// `lease_until`.
    async fn claim_polls(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PollJob>, StoreError>;
    /// Ends a poll of a leased job: [`PollNext::Again`] counts the attempt and
    /// sets the next due time, [`PollNext::Done`] removes the job,
    /// [`PollNext::Held`] counts the attempt and keeps the job, never due
    /// again. The lease is released. `false` (nothing written) if `owner`
    /// no longer holds the lease or the job is gone.
    async fn finish_poll(&self, job: &PollJob, owner: &str, next: PollNext) -> Result<bool, StoreError>;
    /// (Re)starts polling of a transaction at `at`, with no attempts counted
    /// (an operator resuming a held transfer). Replaces any existing job.
    async fn schedule_poll(&self, kind: TxnKind, txn_id: i64, at: Timestamp) -> Result<(), StoreError>;
    /// The held jobs, oldest transaction first.
    async fn held_polls(&self) -> Result<Vec<PollJob>, StoreError>;
    /// The transaction's poll job, due or held (`due_at` 0 when held). A
    /// transaction without one was never handed to the upstream (imported,
    /// made by an operator) or is no longer followed up.
    async fn poll_job(&self, kind: TxnKind, txn_id: i64) -> Result<Option<PollJob>, StoreError>;

    // --- Partner callbacks (see `domain::event`) ----------------------------
    //
    // `change_dmt` and `change_bill` write a [`PartnerEvent`] (payload
    // `event::dmt_payload`/`bill_payload` of the changed record, due at once,
    // `deliver_until` = change time + `event::DELIVERY_WINDOW_SECS`) in the
    // same transaction as the change, when the partner has a callback URL.

    /// Sets or clears the partner's callback URL; `false` if there is no such partner.
    async fn set_callback_url(
        &self,
        partner: RegistrationId,
        url: Option<String>,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// The partner's callback URL.
    async fn callback_url(&self, partner: RegistrationId) -> Result<Option<String>, StoreError>;
    /// The partner's callback signing secrets (kept when its URL is cleared).
    async fn callback_secrets(&self, partner: RegistrationId) -> Result<Option<CallbackSecrets>, StoreError>;
    /// Installs a callback secret for the partner. With `replace` false it
    /// is installed only if the partner has none; with `replace` true it
    /// replaces the current one, which stays valid until `previous_until`
    /// (`None`: not at all). `None` if there is no such partner, else
    /// whether it was installed.
    async fn install_callback_secret(
        &self,
        partner: RegistrationId,
        secret: SealedSecret,
        replace: bool,
        previous_until: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<Option<bool>, StoreError>;
    /// Up to `limit` pending events due at `now` whose lease is free or
    /// expired, leased to `owner` until `lease_until`, by id. An event is not
    /// claimed while an older event of the same transaction is pending, so a
    /// partner receives one transaction's events in order.
    async fn claim_events(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PartnerEvent>, StoreError>;
    /// Records an attempt (its `attempt` is the event's attempts + 1) and
    /// what it leads to, and releases the lease, atomically; `false`
    /// (nothing written) if `owner` no longer holds the lease.
    async fn record_attempt(
        &self,
        attempt: DeliveryAttempt,
        owner: &str,
        outcome: EventOutcome,
    ) -> Result<bool, StoreError>;
    /// Events matching `filter`, newest first.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<PartnerEvent>, StoreError>;
    /// One event and its attempts, oldest first.
    async fn event_with_attempts(&self, id: i64) -> Result<Option<(PartnerEvent, Vec<DeliveryAttempt>)>, StoreError>;
    /// Makes an event (in any state) pending again, due at `now`, with a
    /// fresh window (`now` + `event::DELIVERY_WINDOW_SECS`), lease released;
    /// its attempts are kept. `None` if there is no such event.
    async fn redeliver_event(&self, id: i64, now: Timestamp) -> Result<Option<PartnerEvent>, StoreError>;
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

/// A fresh secret for an installation's transaction numbering
/// (`domain::txn_id`): 32 random bytes from the OS, in hex. Each engine
/// stores one the first time it opens a store that has none.
pub(crate) fn new_txn_number_secret() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
