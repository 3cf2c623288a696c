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

/// How the upstream is to handle a bill fetch or payment (AOPay's and
/// Paysprint's `mode`): `online` asks the biller now, `offline` lets the
/// BBPS network settle it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BillMode {
    /// The biller is asked now (the default).
    #[default]
    Online,
    /// Settled later by the network.
    Offline,
}

impl BillMode {
    /// Reads `online` or `offline`, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        [BillMode::Online, BillMode::Offline].into_iter().find(|m| m.as_str().eq_ignore_ascii_case(text))
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BillMode::Online => "online",
            BillMode::Offline => "offline",
        }
    }
}

/// Where the payment was made, as the partner's app reports it: decimal
/// degrees, `latitude` within ±90 and `longitude` within ±180.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoPoint {
    /// Decimal degrees, as sent.
    pub latitude: String,
    /// Decimal degrees, as sent.
    pub longitude: String,
}

/// Whether `text` is decimal degrees within ±`limit`: an optional `-`,
/// digits, and at most one `.` followed by digits (`"27.2232"`).
pub fn is_degrees(text: &str, limit: u32) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return false;
    }
    match whole.parse::<u32>() {
        Ok(w) if w < limit => true,
        Ok(w) if w == limit => fraction.bytes().all(|b| b == b'0'),
        _ => false,
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
    fn modes_read_in_any_case_and_nothing_else() {
        assert_eq!(BillMode::parse("ONLINE"), Some(BillMode::Online));
        assert_eq!(BillMode::parse("offline"), Some(BillMode::Offline));
        assert_eq!(BillMode::parse("online /offline"), None);
    }

    #[test]
    fn degrees_are_decimal_and_within_their_limit() {
        for good in ["27.2232", "-78.26535", "90", "-180.000", "0"] {
            assert!(is_degrees(good, 180), "{good}");
        }
        assert!(is_degrees("89.9", 90) && !is_degrees("90.01", 90) && !is_degrees("91", 90));
        for bad in ["", "-", "1.", ".5", "1e2", "+1", "12.3.4", "१२"] {
            assert!(!is_degrees(bad, 180), "{bad}");
        }
    }

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
