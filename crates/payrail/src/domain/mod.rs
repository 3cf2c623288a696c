//! Domain types: money, identifiers, time, transaction states and the charge
//! arithmetic. Nothing here does I/O (but for [`SystemClock`] reading the
//! time), and nothing here knows AOPay's wire spellings; the HTTP edge maps
//! these types onto the wire.

pub mod banks;
pub mod bbps;
pub mod change_source;
pub mod charges;
pub mod clock;
pub mod dmt;
pub mod ekyc;
pub mod event;
pub mod fee_plan;
pub mod ledger;
pub mod money;
pub mod operator;
pub mod otp;
pub mod partner;
pub mod penny_drop;
pub mod record;
pub mod reference;
pub mod remitter;
pub mod remitter_details;
pub mod text;
pub mod time;
pub mod token;
pub mod txn_id;
pub mod upstream;

pub use bbps::{BillMode, BillPayment, BillStatus, GeoPoint};
pub use change_source::ChangeSource;
pub use charges::{DmtCharges, TdsRate};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dmt::{DmtStatus, DmtTransfer};
pub use money::Paise;
pub use partner::{IpAllowlist, Partner, PartnerStatus};
pub use record::TxnRecord;
pub use reference::{ReferenceId, RegistrationId};
pub use time::Timestamp;

/// Which of the two transaction kinds a record, an import or a history row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnKind {
    /// A domestic money transfer (DMT V1).
    Dmt,
    /// A Bharat BillPay bill payment.
    Bbps,
}

impl TxnKind {
    /// The short name used in the store and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnKind::Dmt => "dmt",
            TxnKind::Bbps => "bbps",
        }
    }

    /// Reads a kind from its short name.
    pub fn parse(text: &str) -> Option<TxnKind> {
        [TxnKind::Dmt, TxnKind::Bbps].into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One row of a transaction's status history: what changed, when, who did it and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The state before the change; `None` for the row that created the record.
    pub from_status: Option<String>,
    /// The state after the change.
    pub to_status: String,
    /// When the change was committed.
    pub at: Timestamp,
    /// Who made it, as [`ChangeSource::as_str`] spelled it when the row was
    /// written; kept as text, since rows written by older versions (or by
    /// hand) may hold a spelling no [`ChangeSource`] has.
    pub source: String,
    /// Free text: the operator's reason, the upstream message.
    pub reason: Option<String>,
}

/// An attempted state change that the state machine forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot move a transaction from {from} to {to}")]
pub struct ForbiddenTransition {
    /// The state the record is in.
    pub from: String,
    /// The state that was asked for.
    pub to: String,
}
