//! DMT transfers and their state machine (SPEC §4).

use super::{DmtCharges, ForbiddenTransition, Paise, ReferenceId, RegistrationId, Timestamp};

/// The state of a transfer; the discriminant is the wire `txn_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DmtStatus {
    /// Failed, and the amount is back in the partner wallet. Final.
    Refunded = 0,
    /// Paid out. A bank return can still fail it.
    Success = 1,
    /// Accepted, not yet with the bank.
    InProcess = 2,
    /// Handed to the bank, result awaited.
    SentToBank = 3,
    /// Stuck; needs an operator to look at it.
    OnHold = 4,
    /// Failed; the refund is still to be made.
    Failed = 5,
}

impl DmtStatus {
    /// Every state, in wire-code order.
    pub const ALL: [DmtStatus; 6] = [
        DmtStatus::Refunded,
        DmtStatus::Success,
        DmtStatus::InProcess,
        DmtStatus::SentToBank,
        DmtStatus::OnHold,
        DmtStatus::Failed,
    ];

    /// The wire and store code, `0`..=`5`.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The state with the given code.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The message the status API pairs with the state.
    pub fn message(self) -> &'static str {
        match self {
            DmtStatus::Refunded => "Transaction Refunded",
            DmtStatus::Success => "Transaction Successful",
            DmtStatus::InProcess => "Transaction In Process",
            DmtStatus::SentToBank => "Transaction Sent To Bank",
            DmtStatus::OnHold => "Transaction On Hold",
            DmtStatus::Failed => "Transaction Failed",
        }
    }

    /// A short name for history rows, the CLI and imports.
    pub fn name(self) -> &'static str {
        match self {
            DmtStatus::Refunded => "refunded",
            DmtStatus::Success => "success",
            DmtStatus::InProcess => "in_process",
            DmtStatus::SentToBank => "sent_to_bank",
            DmtStatus::OnHold => "on_hold",
            DmtStatus::Failed => "failed",
        }
    }

    /// Reads a state from its name or its code.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(text) || s.code().to_string() == text)
    }

    /// Whether the state machine lets a transfer move from `self` to `next`.
    ///
    /// Nothing moves back to "in process": a held transfer was already
    /// handed to the upstream, so an operator releases it as what the
    /// upstream says (at the bank, paid or failed), or has payrail ask
    /// again (`payrail upstream resume`), which leaves it on hold until an
    /// answer moves it.
    pub fn can_move_to(self, next: DmtStatus) -> bool {
        use DmtStatus::*;
        matches!(
            (self, next),
            (InProcess, SentToBank | Success | OnHold | Failed)
                | (SentToBank, Success | OnHold | Failed)
                | (OnHold, SentToBank | Success | Failed)
                | (Success, Failed)
                | (Failed, Refunded)
        )
    }
}

/// A state change asked of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmtChange {
    /// Handed to the bank.
    SentToBank,
    /// Paid out, with the bank's UTR when it is known.
    Success {
        /// The bank's reference.
        utr: Option<String>,
    },
    /// The UTR of a transfer that was reported paid without one.
    Utr {
        /// The bank's reference.
        utr: String,
    },
    /// Put on hold for review.
    Hold,
    /// Failed (or returned by the bank after success).
    Fail,
    /// The amount was credited back, under refund id `refund_txn_id`.
    Refund {
        /// payrail's id for the refund; `None` asks the store for a new one,
        /// which it puts here before applying the change.
        refund_txn_id: Option<String>,
    },
}

impl DmtChange {
    /// The state this change leads to.
    pub fn target(&self) -> DmtStatus {
        match self {
            DmtChange::SentToBank => DmtStatus::SentToBank,
            DmtChange::Success { .. } | DmtChange::Utr { .. } => DmtStatus::Success,
            DmtChange::Hold => DmtStatus::OnHold,
            DmtChange::Fail => DmtStatus::Failed,
            DmtChange::Refund { .. } => DmtStatus::Refunded,
        }
    }
}

/// A transfer as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmtTransfer {
    /// payrail's id, reported as `ackno`.
    pub ackno: i64,
    /// The partner that owns it.
    pub partner: RegistrationId,
    /// The partner's reference.
    pub reference: ReferenceId,
    /// The amount sent to the beneficiary.
    pub amount: Paise,
    /// The beneficiary account number.
    pub account: String,
    /// The bank's reference, once known.
    pub utr: Option<String>,
    /// Where it stands.
    pub status: DmtStatus,
    /// The charge breakdown fixed when the transfer was made.
    pub charges: DmtCharges,
    /// When it was made.
    pub created_at: Timestamp,
    /// The refund's id, once refunded.
    pub refund_txn_id: Option<String>,
    /// When it was refunded.
    pub refunded_at: Option<Timestamp>,
    /// The upstream's own acknowledgement number for it (Paysprint's
    /// `ackno`), once an answer carried it: a refund is claimed with it.
    pub upstream_ackno: Option<String>,
}

impl DmtTransfer {
    /// Applies `change` at `now`, or says why the state machine forbids it.
    pub fn apply(&mut self, change: &DmtChange, now: Timestamp) -> Result<(), ForbiddenTransition> {
        let target = change.target();
        // A late UTR is the one change that keeps the state: it only fills
        // the UTR of a transfer reported paid without one.
        let allowed = match change {
            DmtChange::Utr { .. } => self.status == DmtStatus::Success && self.utr.is_none(),
            _ => self.status.can_move_to(target),
        };
        if !allowed {
            return Err(ForbiddenTransition { from: self.status.name().into(), to: target.name().into() });
        }
        match change {
            DmtChange::Success { utr } => self.utr = utr.clone(),
            DmtChange::Utr { utr } => self.utr = Some(utr.clone()),
            DmtChange::Refund { refund_txn_id } => {
                self.refund_txn_id = refund_txn_id.clone();
                self.refunded_at = Some(now);
            }
            DmtChange::SentToBank | DmtChange::Hold | DmtChange::Fail => {}
        }
        self.status = target;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for status in DmtStatus::ALL {
            assert_eq!(DmtStatus::from_code(status.code()), Some(status));
            assert_eq!(DmtStatus::parse(status.name()), Some(status));
        }
        assert_eq!(DmtStatus::from_code(6), None);
    }

    #[test]
    fn refunded_is_final_and_refund_needs_a_failure_first() {
        for next in DmtStatus::ALL {
            assert!(!DmtStatus::Refunded.can_move_to(next));
        }
        for from in DmtStatus::ALL {
            assert_eq!(from.can_move_to(DmtStatus::Refunded), from == DmtStatus::Failed, "{from:?}");
        }
    }

    #[test]
    fn a_late_utr_fills_an_empty_utr_once() {
        let mut transfer = DmtTransfer {
            ackno: 1,
            partner: crate::domain::RegistrationId::new(1),
            reference: ReferenceId::parse("R").unwrap_or_else(|e| panic!("{e}")),
            amount: Paise::rupees(100),
            account: "123456789".into(),
            utr: None,
            status: DmtStatus::SentToBank,
            charges: DmtCharges::compute(Paise::rupees(10), Paise::rupees(3), Timestamp::from_unix(1_700_000_000)),
            created_at: Timestamp::from_unix(1_700_000_000),
            refund_txn_id: None,
            refunded_at: None,
            upstream_ackno: None,
        };
        let at = Timestamp::from_unix(1_700_000_100);
        assert!(transfer.apply(&DmtChange::Utr { utr: "U".into() }, at).is_err(), "not yet paid");
        assert!(transfer.apply(&DmtChange::Success { utr: None }, at).is_ok());
        assert!(transfer.apply(&DmtChange::Utr { utr: "U1".into() }, at).is_ok());
        assert_eq!(transfer.utr.as_deref(), Some("U1"));
        assert!(transfer.apply(&DmtChange::Utr { utr: "U2".into() }, at).is_err(), "a UTR is never replaced");
    }

    #[test]
    fn nothing_moves_back_to_in_process() {
        for from in DmtStatus::ALL {
            assert!(!from.can_move_to(DmtStatus::InProcess), "{from:?}");
        }
        let released: Vec<_> = DmtStatus::ALL.into_iter().filter(|s| DmtStatus::OnHold.can_move_to(*s)).collect();
        assert_eq!(released, vec![DmtStatus::Success, DmtStatus::SentToBank, DmtStatus::Failed]);
    }

    #[test]
    fn a_success_can_only_be_returned() {
        let allowed: Vec<_> = DmtStatus::ALL.into_iter().filter(|s| DmtStatus::Success.can_move_to(*s)).collect();
        assert_eq!(allowed, vec![DmtStatus::Failed]);
    }
}
