//! Fees: which plan prices a transaction, and setting a partner's plan.
//!
//! A partner without a plan of its own, or a transaction made before its
//! first version takes effect, is priced by [`FeePlan::default_plan`]
//! (documented there and in the README). Charges are worked out once, when
//! the transaction is made, and stored with it.

use crate::domain::fee_plan::{plan_in_force, FeePlan, FeePlanVersion};
use crate::domain::{Clock, DmtCharges, Paise, RegistrationId, TdsRate, Timestamp};
use crate::store::{DebitError, LedgerStore, NewFeePlan, StoreError};

/// The plan that prices the partner's transactions made at `at`.
pub async fn plan_for(store: &dyn LedgerStore, partner: RegistrationId, at: Timestamp) -> Result<FeePlan, StoreError> {
    Ok(plans_of(store, partner).await?.in_force(at))
}

/// Every version of the partner's plan, read before the time that picks one
/// is known (a money call reads them beside its duplicate check).
pub async fn plans_of(store: &dyn LedgerStore, partner: RegistrationId) -> Result<PlanVersions, StoreError> {
    Ok(PlanVersions(store.fee_plans(partner).await?))
}

/// A partner's plan versions, oldest first.
pub struct PlanVersions(Vec<FeePlanVersion>);

impl PlanVersions {
    /// The plan that prices a transaction made at `at`.
    pub fn in_force(&self, at: Timestamp) -> FeePlan {
        plan_in_force(&self.0, at).map_or_else(FeePlan::default_plan, |v| v.plan.clone())
    }
}

/// Records a new version of the partner's plan, in force from `effective_from`.
pub async fn set_plan(
    store: &dyn LedgerStore,
    clock: &dyn Clock,
    partner: RegistrationId,
    plan: FeePlan,
    effective_from: Timestamp,
) -> Result<FeePlanVersion, DebitError> {
    store.insert_fee_plan(NewFeePlan { partner, effective_from, plan, created_at: clock.now() }).await
}

/// The charges of a DMT transfer of `amount` made at `at`: priced by the
/// partner's plan in force at `at` (one of `versions`, else the default
/// plan), except for a charge or share given (by an import or an operator),
/// which wins.
pub fn dmt_charges(
    versions: &[FeePlanVersion],
    amount: Paise,
    charge: Option<Paise>,
    share: Option<Paise>,
    at: Timestamp,
) -> DmtCharges {
    let default_plan;
    let plan = match plan_in_force(versions, at) {
        Some(version) => &version.plan,
        None => {
            default_plan = FeePlan::default_plan();
            &default_plan
        }
    };
    plan.dmt_charges_with(amount, charge, share, at)
}

/// Commission and TDS of a bill payment made at `at`, given or from the default plan.
pub fn bill_commission(amount: Paise, commission: Option<Paise>, at: Timestamp) -> (Paise, Paise) {
    match commission {
        Some(commission) => (commission, TdsRate::on(at).apply(commission)),
        None => FeePlan::default_plan().bill_commission("", amount, at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_reproduces_the_seed_charges() {
        let at = Timestamp::parse_ist("2021-01-15 18:30:00").unwrap_or_else(|e| panic!("{e}"));
        let charges = dmt_charges(&[], Paise::rupees(100), None, None, at);
        assert_eq!(charges.customer_charge, Paise::new(1000));
        assert_eq!(charges.provider_share, Paise::new(350));
        assert_eq!(charges.net_commission, Paise::new(478));
        let bill = Timestamp::parse_ist("2021-01-11 15:43:20").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bill_commission(Paise::rupees(100), None, bill), (Paise::new(21), Paise::new(1)));
    }

    #[test]
    fn the_dmt_charge_is_one_percent_above_the_minimum() {
        let at = Timestamp::from_unix(1_790_000_000);
        assert_eq!(dmt_charges(&[], Paise::rupees(999), None, None, at).customer_charge, Paise::rupees(10));
        assert_eq!(dmt_charges(&[], Paise::rupees(5000), None, None, at).customer_charge, Paise::rupees(50));
    }

    #[test]
    fn the_bill_commission_is_capped() {
        let at = Timestamp::from_unix(1_790_000_000);
        assert_eq!(bill_commission(Paise::rupees(1_000_000), None, at).0, Paise::rupees(50));
    }
}
