//! Penny drop: a bank account verified at the bank before the first
//! transfer (Paysprint's `benenameverify`). The bank answers the name it
//! holds for the account; a verified beneficiary shows `verified: "1"`.
//!
//! It costs the partner a fee from its plan ([`super::fee_plan::FeePlan::penny_drop_fee`],
//! GST inside), debited from the wallet in the same store transaction that
//! records the penny drop, before the upstream is asked. The outcome is
//! recorded once, atomically with what it moves:
//!
//! | outcome | status | money |
//! |---|---|---|
//! | the bank holds the account | `verified` | the fee is kept |
//! | the bank knows no such account | `not_found` | the fee is kept: the check was made |
//! | the upstream failed or did not answer | `failed` | the fee is refunded (the debit's mirror) |

use super::ledger::Journal;
use super::remitter::MobileNumber;
use super::{Paise, ReferenceId, RegistrationId, Timestamp};

/// Where a penny drop stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PennyDropStatus {
    /// Debited; the upstream's answer is not recorded yet.
    Pending,
    /// The bank holds the account under this name.
    Verified {
        /// The account holder's name as the bank holds it.
        name_at_bank: String,
    },
    /// The bank knows no such account.
    NotFound,
    /// The upstream failed; the fee was refunded.
    Failed,
}

impl PennyDropStatus {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            PennyDropStatus::Pending => "pending",
            PennyDropStatus::Verified { .. } => "verified",
            PennyDropStatus::NotFound => "not_found",
            PennyDropStatus::Failed => "failed",
        }
    }

    /// Reads a stored status with the stored name at the bank.
    pub fn from_stored(status: &str, name_at_bank: Option<String>) -> Option<PennyDropStatus> {
        Some(match (status, name_at_bank) {
            ("pending", _) => PennyDropStatus::Pending,
            ("verified", Some(name_at_bank)) => PennyDropStatus::Verified { name_at_bank },
            ("not_found", _) => PennyDropStatus::NotFound,
            ("failed", _) => PennyDropStatus::Failed,
            _ => return None,
        })
    }

    /// The name at the bank, once verified.
    pub fn name_at_bank(&self) -> Option<&str> {
        match self {
            PennyDropStatus::Verified { name_at_bank } => Some(name_at_bank),
            _ => None,
        }
    }
}

/// One penny drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PennyDrop {
    /// payrail's id; 0 before the store assigns one.
    pub id: i64,
    /// The partner who asked (and pays).
    pub partner: RegistrationId,
    /// The partner's `referenceid`, unique per partner.
    pub reference: ReferenceId,
    /// The remitter it is for.
    pub remitter: MobileNumber,
    /// The registered beneficiary it verifies, if any.
    pub beneficiary_id: Option<i64>,
    /// The account.
    pub account: String,
    /// The branch, if the partner named one.
    pub ifsc: Option<String>,
    /// The bank, from the bank list.
    pub bank_id: i64,
    /// The name the partner gave.
    pub name: String,
    /// What it cost (GST inside).
    pub fee: Paise,
    /// Where it stands.
    pub status: PennyDropStatus,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// When the outcome was recorded.
    pub decided_at: Option<Timestamp>,
}

impl PennyDrop {
    /// The journal that pays its fee.
    pub fn fee_journal(&self) -> Journal {
        Journal::penny_drop_fee(
            self.partner,
            self.fee,
            format!("penny drop ref {}", self.reference.as_str()),
            self.created_at,
        )
    }

    /// The journal that refunds its fee at `at`: the fee journal's mirror.
    pub fn refund_journal(&self, at: Timestamp) -> Journal {
        Journal::refund_of(&self.fee_journal(), at)
    }
}
