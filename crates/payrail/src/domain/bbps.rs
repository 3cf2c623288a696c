//! BBPS bill payments and their state machine (SPEC §5).

use super::{ForbiddenTransition, Paise, ReferenceId, RegistrationId, Timestamp};

/// The state of a bill payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillStatus {
    /// Submitted, result awaited.
    Pending,
    /// Paid to the biller.
    Success,
    /// Failed; the amount is not yet back in the wallet.
    Failed,
    /// Failed and refunded. Final.
    Refunded,
}

impl BillStatus {
    /// Every state.
    pub const ALL: [BillStatus; 4] =
        [BillStatus::Pending, BillStatus::Success, BillStatus::Failed, BillStatus::Refunded];

    /// The wire `data.status`: "1" success, "2" pending, "0" failed (refunded or not).
    pub fn wire_code(self) -> &'static str {
        match self {
            BillStatus::Success => "1",
            BillStatus::Pending => "2",
            BillStatus::Failed | BillStatus::Refunded => "0",
        }
    }

    /// The wire `message`.
    pub fn message(self) -> &'static str {
        match self {
            BillStatus::Success => "Transaction Successful",
            BillStatus::Pending => "Transaction Pending",
            BillStatus::Failed => "Transaction Failed",
            BillStatus::Refunded => "Transaction Refunded",
        }
    }

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            BillStatus::Pending => "pending",
            BillStatus::Success => "success",
            BillStatus::Failed => "failed",
            BillStatus::Refunded => "refunded",
        }
    }

    /// Reads a state from its stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(text))
    }

    /// Whether the state machine lets a payment move from `self` to `next`.
    pub fn can_move_to(self, next: BillStatus) -> bool {
        use BillStatus::*;
        matches!((self, next), (Pending, Success | Failed) | (Success, Failed) | (Failed, Refunded))
    }
}

/// A state change asked of a bill payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillChange {
    /// Paid; the biller's or BBPS reference when known.
    Success {
        /// Reported as `operatorid`.
        operator_ref: Option<String>,
    },
    /// Failed, or reversed after success.
    Fail,
    /// The amount was credited back under refund id `refund_txn_id`.
    Refund {
        /// payrail's id for the refund; `None` asks the store for a new one,
        /// which it puts here before applying the change.
        refund_txn_id: Option<String>,
    },
}

impl BillChange {
    /// The state this change leads to.
    pub fn target(&self) -> BillStatus {
        match self {
            BillChange::Success { .. } => BillStatus::Success,
            BillChange::Fail => BillStatus::Failed,
            BillChange::Refund { .. } => BillStatus::Refunded,
        }
    }
}

/// A bill payment as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillPayment {
    /// payrail's id, reported as `txnid`.
    pub txnid: i64,
    /// The partner that owns it.
    pub partner: RegistrationId,
    /// The partner's reference, reported as `refid`.
    pub reference: ReferenceId,
    /// The biller's name.
    pub operator_name: String,
    /// The customer's account number with the biller.
    pub ca_number: String,
    /// The amount paid.
    pub amount: Paise,
    /// Extra biller fields.
    pub ad1: Option<String>,
    /// Extra biller fields.
    pub ad2: Option<String>,
    /// Extra biller fields.
    pub ad3: Option<String>,
    /// The partner's commission.
    pub commission: Paise,
    /// TDS on the commission.
    pub tds: Paise,
    /// Where it stands.
    pub status: BillStatus,
    /// The biller's or BBPS reference, once known.
    pub operator_ref: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// The refund's id, once refunded.
    pub refund_txn_id: Option<String>,
    /// When it was refunded.
    pub refunded_at: Option<Timestamp>,
}

impl BillPayment {
    /// Applies `change` at `now`, or says why the state machine forbids it.
    pub fn apply(&mut self, change: &BillChange, now: Timestamp) -> Result<(), ForbiddenTransition> {
        let target = change.target();
        if !self.status.can_move_to(target) {
            return Err(ForbiddenTransition { from: self.status.name().into(), to: target.name().into() });
        }
        match change {
            BillChange::Success { operator_ref } => self.operator_ref = operator_ref.clone(),
            BillChange::Refund { refund_txn_id } => {
                self.refund_txn_id = refund_txn_id.clone();
                self.refunded_at = Some(now);
            }
            BillChange::Fail => {}
        }
        self.status = target;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunded_reads_as_failed_on_the_wire() {
        assert_eq!(BillStatus::Refunded.wire_code(), "0");
        assert_eq!(BillStatus::Refunded.message(), "Transaction Refunded");
    }

    #[test]
    fn only_a_failed_payment_can_be_refunded_and_refunded_is_final() {
        for from in BillStatus::ALL {
            assert_eq!(from.can_move_to(BillStatus::Refunded), from == BillStatus::Failed);
            assert!(!BillStatus::Refunded.can_move_to(from));
        }
    }
}
