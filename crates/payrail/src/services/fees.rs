//! Fees. Until per-partner fee plans exist, every transaction is priced by
//! the documented default plan:
//!
//! - DMT: customer charge 1% of the amount, at least ₹10; the provider's
//!   share is 35% of the charge. (₹100 → ₹10.00 charge, ₹3.50 share: the
//!   seed example.)
//! - BBPS: commission 0.21% of the amount, capped at ₹50. (₹100 → ₹0.21: the
//!   seed example.)

use crate::domain::{DmtCharges, Paise, TdsRate, Timestamp};

/// The smallest DMT customer charge.
const DMT_MIN_CHARGE: Paise = Paise::rupees(10);

/// The default DMT customer charge for `amount`.
pub fn default_dmt_charge(amount: Paise) -> Paise {
    amount.mul_div_round(1, 100).max(DMT_MIN_CHARGE)
}

/// The default provider share of a DMT customer charge.
pub fn default_provider_share(charge: Paise) -> Paise {
    charge.mul_div_round(35, 100)
}

/// The charges of a DMT transfer of `amount` made at `at`, with the charge
/// and share given (by an import) or else from the default plan.
pub fn dmt_charges(amount: Paise, charge: Option<Paise>, share: Option<Paise>, at: Timestamp) -> DmtCharges {
    let charge = charge.unwrap_or_else(|| default_dmt_charge(amount));
    let share = share.unwrap_or_else(|| default_provider_share(charge));
    DmtCharges::compute(charge, share, at)
}

/// The default BBPS commission on `amount`.
pub fn default_bill_commission(amount: Paise) -> Paise {
    amount.mul_div_round(21, 10_000).min(Paise::rupees(50))
}

/// Commission and TDS of a bill payment made at `at`.
pub fn bill_commission(amount: Paise, commission: Option<Paise>, at: Timestamp) -> (Paise, Paise) {
    let commission = commission.unwrap_or_else(|| default_bill_commission(amount));
    (commission, TdsRate::on(at).apply(commission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_reproduces_the_seed_charges() {
        let at = Timestamp::parse_ist("2021-01-15 18:30:00").unwrap_or_else(|e| panic!("{e}"));
        let charges = dmt_charges(Paise::rupees(100), None, None, at);
        assert_eq!(charges.customer_charge, Paise::new(1000));
        assert_eq!(charges.provider_share, Paise::new(350));
        assert_eq!(charges.net_commission, Paise::new(478));
        let bill = Timestamp::parse_ist("2021-01-11 15:43:20").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bill_commission(Paise::rupees(100), None, bill), (Paise::new(21), Paise::new(1)));
    }

    #[test]
    fn the_dmt_charge_is_one_percent_above_the_minimum() {
        assert_eq!(default_dmt_charge(Paise::rupees(999)), Paise::rupees(10));
        assert_eq!(default_dmt_charge(Paise::rupees(5000)), Paise::rupees(50));
    }

    #[test]
    fn the_bill_commission_is_capped() {
        assert_eq!(default_bill_commission(Paise::rupees(1_000_000)), Paise::rupees(50));
    }
}
