//! Fee plans: what a partner's transactions cost and earn.
//!
//! A plan has DMT slabs by amount (each giving the customer charge and the
//! provider's share of it) and BBPS commission by operator category (a
//! percentage with a cap). Plans are versioned per partner with the instant
//! from which each version applies; a transaction is priced by the version in
//! force when it is made and keeps those numbers for ever.
//!
//! Plans are written as JSON (see README, "Fee plans"):
//!
//! ```json
//! {"dmt": {"slabs": [{"up_to": "1000.00", "charge": "10.00", "provider_share": "3.50"},
//!                    {"charge_percent": "1.00", "min_charge": "10.00", "provider_share_percent": "35"}],
//!          "discount": "gst"},
//!  "bbps": {"default": {"percent": "0.21", "cap": "50.00"},
//!           "categories": {"Electricity": {"percent": "0.25", "cap": "40.00"}}},
//!  "penny_drop_fee": "3.54"}
//! ```
//!
//! Money is rupees as strings with at most two decimals; percentages are
//! strings with at most two decimals (`"0.21"` is 0.21%).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::charges::gst_inside;
use super::remitter::{MIN_TRANSFER, PER_TRANSFER_LIMIT};
use super::{DmtCharges, Paise, RegistrationId, TdsRate, Timestamp};

/// How a charge or a share is worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// A fixed amount.
    Fixed(Paise),
    /// A percentage (in basis points) of the base, kept within bounds.
    Percent {
        /// 1% = 100.
        basis_points: i64,
        /// The least it can be.
        min: Option<Paise>,
        /// The most it can be.
        max: Option<Paise>,
    },
}

impl Rate {
    /// The rate applied to `base`.
    pub fn on(self, base: Paise) -> Paise {
        match self {
            Rate::Fixed(amount) => amount,
            Rate::Percent { basis_points, min, max } => {
                let raw = base.mul_div_round(basis_points, 10_000);
                let raw = min.map_or(raw, |m| raw.max(m));
                max.map_or(raw, |m| raw.min(m))
            }
        }
    }
}

/// One DMT slab: transfers up to `up_to` (inclusive) not caught by an earlier slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmtSlab {
    /// The largest amount the slab covers; `None` for no bound.
    pub up_to: Option<Paise>,
    /// The customer charge, on the amount.
    pub charge: Rate,
    /// The provider's share, on the charge.
    pub provider_share: Rate,
}

impl DmtSlab {
    /// Refuses a slab that would pay out more than it takes on `amount`: a
    /// provider share above the charge net of GST makes the partner's
    /// commission (and so its TDS) negative.
    fn refuse_negative_commission(&self, amount: Paise) -> Result<(), String> {
        let charge = self.charge.on(amount);
        let share = self.provider_share.on(charge);
        let net_of_gst = charge - gst_inside(charge);
        if share > net_of_gst {
            return Err(format!(
                "on a transfer of {} the provider share {} exceeds the charge {} less GST ({}): \
                 the commission would be negative",
                amount.to_decimal_string(),
                share.to_decimal_string(),
                charge.to_decimal_string(),
                net_of_gst.to_decimal_string()
            ));
        }
        Ok(())
    }
}

/// What `discount` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// The GST (the seed's example).
    Gst,
    /// No discount.
    Zero,
}

/// BBPS commission: a percentage of the bill with a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commission {
    /// 1% = 100.
    pub basis_points: i64,
    /// The most it can be.
    pub cap: Option<Paise>,
}

/// A whole fee plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeePlan {
    /// DMT slabs, smallest first.
    pub dmt_slabs: Vec<DmtSlab>,
    /// What `discount` reports.
    pub discount: Discount,
    /// BBPS commission for categories not named.
    pub bbps_default: Commission,
    /// BBPS commission by operator category.
    pub bbps_categories: BTreeMap<String, Commission>,
    /// What a penny drop costs, GST inside ([`DEFAULT_PENNY_DROP_FEE`] unless the plan says).
    pub penny_drop_fee: Paise,
}

/// A penny drop's fee when the plan names none: ₹3.00 and 18% GST.
pub const DEFAULT_PENNY_DROP_FEE: Paise = Paise::new(354);

/// A version of a partner's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeePlanVersion {
    /// The partner.
    pub partner: RegistrationId,
    /// 1, 2, … per partner.
    pub version: i64,
    /// From when it applies.
    pub effective_from: Timestamp,
    /// The plan.
    pub plan: FeePlan,
    /// When it was recorded.
    pub created_at: Timestamp,
}

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Not JSON of the plan's shape.
    #[error("not a fee plan: {0}")]
    Shape(String),
    /// A value is wrong; names where.
    #[error("{0}")]
    Value(String),
}

impl FeePlan {
    /// The documented default: DMT 1% of the amount, at least ₹10, of which
    /// the provider takes 35%; `discount` reports the GST; BBPS 0.21% capped
    /// at ₹50 in every category. (₹100 → ₹10.00 charge and ₹3.50 share, and
    /// ₹0.21 commission on a ₹100 bill: the seed examples.)
    pub fn default_plan() -> FeePlan {
        FeePlan {
            dmt_slabs: vec![DmtSlab {
                up_to: None,
                charge: Rate::Percent { basis_points: 100, min: Some(Paise::rupees(10)), max: None },
                provider_share: Rate::Percent { basis_points: 3_500, min: None, max: None },
            }],
            discount: Discount::Gst,
            bbps_default: Commission { basis_points: 21, cap: Some(Paise::rupees(50)) },
            bbps_categories: BTreeMap::new(),
            penny_drop_fee: DEFAULT_PENNY_DROP_FEE,
        }
    }

    /// The slab that prices `amount`.
    fn slab_for(&self, amount: Paise) -> DmtSlab {
        let found = self.dmt_slabs.iter().find(|s| s.up_to.is_none_or(|limit| amount <= limit));
        let fallback = DmtSlab {
            up_to: None,
            charge: Rate::Percent { basis_points: 100, min: Some(Paise::rupees(10)), max: None },
            provider_share: Rate::Percent { basis_points: 3_500, min: None, max: None },
        };
        found.or(self.dmt_slabs.last()).copied().unwrap_or(fallback)
    }

    /// The customer charge on a transfer of `amount`.
    pub fn dmt_charge(&self, amount: Paise) -> Paise {
        self.slab_for(amount).charge.on(amount)
    }

    /// The provider's share of `charge` on a transfer of `amount` (never more than the charge).
    pub fn provider_share(&self, amount: Paise, charge: Paise) -> Paise {
        self.slab_for(amount).provider_share.on(charge).min(charge)
    }

    /// The charges of a transfer of `amount` made at `at`.
    pub fn dmt_charges(&self, amount: Paise, at: Timestamp) -> DmtCharges {
        self.dmt_charges_with(amount, None, None, at)
    }

    /// As [`FeePlan::dmt_charges`], with the customer charge or the
    /// provider share fixed from outside (an import, an operator) where given.
    pub fn dmt_charges_with(
        &self,
        amount: Paise,
        charge: Option<Paise>,
        share: Option<Paise>,
        at: Timestamp,
    ) -> DmtCharges {
        let charge = charge.unwrap_or_else(|| self.dmt_charge(amount));
        let share = share.unwrap_or_else(|| self.provider_share(amount, charge));
        let mut charges = DmtCharges::compute(charge, share, at);
        if self.discount == Discount::Zero {
            charges.discount = Paise::ZERO;
        }
        charges
    }

    /// Commission and TDS on a bill of `amount` in `category` paid at `at`.
    pub fn bill_commission(&self, category: &str, amount: Paise, at: Timestamp) -> (Paise, Paise) {
        let rule = self.bbps_categories.get(category).copied().unwrap_or(self.bbps_default);
        let commission = amount.mul_div_round(rule.basis_points, 10_000);
        let commission = rule.cap.map_or(commission, |cap| commission.min(cap));
        (commission, TdsRate::on(at).apply(commission))
    }

    /// Reads a plan from its JSON form.
    pub fn from_json(text: &str) -> Result<FeePlan, PlanError> {
        let raw: RawPlan = serde_json::from_str(text).map_err(|e| PlanError::Shape(e.to_string()))?;
        raw.parse()
    }

    /// The plan's JSON form, as [`FeePlan::from_json`] reads it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&RawPlan::from(self)).unwrap_or_default()
    }
}

/// The version of `versions` in force at `at`, if any.
pub fn plan_in_force(versions: &[FeePlanVersion], at: Timestamp) -> Option<&FeePlanVersion> {
    versions.iter().filter(|v| v.effective_from <= at).max_by_key(|v| (v.effective_from, v.version))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    dmt: RawDmt,
    bbps: RawBbps,
    /// Rupees, GST inside; absent for [`DEFAULT_PENNY_DROP_FEE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    penny_drop_fee: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDmt {
    slabs: Vec<RawSlab>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    discount: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSlab {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    up_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    charge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    charge_percent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_charge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_charge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_share: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_share_percent: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBbps {
    default: RawCommission,
    #[serde(default)]
    categories: BTreeMap<String, RawCommission>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommission {
    percent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cap: Option<String>,
}

fn money(field: &str, text: &Option<String>) -> Result<Option<Paise>, PlanError> {
    text.as_deref().map(|t| Paise::parse(t).map_err(|e| PlanError::Value(format!("{field}: {e}")))).transpose()
}

/// A percentage with at most two decimals, as basis points, at most 100%.
fn percent(field: &str, text: &str) -> Result<i64, PlanError> {
    Paise::parse(text).ok().map(Paise::get).filter(|bp| *bp <= 10_000).ok_or_else(|| {
        PlanError::Value(format!("{field}: must be a percentage from 0 to 100 with at most two decimals"))
    })
}

fn rate(
    field: &str,
    fixed: &Option<String>,
    pct: &Option<String>,
    min: &Option<String>,
    max: &Option<String>,
) -> Result<Rate, PlanError> {
    match (fixed, pct) {
        (Some(_), None) if min.is_none() && max.is_none() => {
            Ok(Rate::Fixed(money(field, fixed)?.unwrap_or(Paise::ZERO)))
        }
        (None, Some(p)) => Ok(Rate::Percent {
            basis_points: percent(&format!("{field}_percent"), p)?,
            min: money(&format!("min_{field}"), min)?,
            max: money(&format!("max_{field}"), max)?,
        }),
        _ => Err(PlanError::Value(format!(
            "{field}: give either {field} or {field}_percent (bounds only with a percentage)"
        ))),
    }
}

impl RawPlan {
    fn parse(self) -> Result<FeePlan, PlanError> {
        let mut slabs = Vec::with_capacity(self.dmt.slabs.len());
        for (i, s) in self.dmt.slabs.iter().enumerate() {
            let at = |f: &str| format!("dmt.slabs[{i}].{f}");
            let slab = DmtSlab {
                up_to: money(&at("up_to"), &s.up_to)?,
                charge: rate(&at("charge"), &s.charge, &s.charge_percent, &s.min_charge, &s.max_charge)?,
                provider_share: rate(
                    &at("provider_share"),
                    &s.provider_share,
                    &s.provider_share_percent,
                    &None,
                    &None,
                )?,
            };
            if let (Some(previous), Some(limit)) = (slabs.last().and_then(|p: &DmtSlab| p.up_to), slab.up_to) {
                if limit <= previous {
                    return Err(PlanError::Value(at("up_to") + ": slabs must rise"));
                }
            }
            if slabs.last().is_some_and(|p: &DmtSlab| p.up_to.is_none()) {
                return Err(PlanError::Value(at("up_to") + ": only the last slab may be unbounded"));
            }
            let lowest = slabs
                .last()
                .and_then(|p: &DmtSlab| p.up_to)
                .map_or(MIN_TRANSFER, |p| (p + Paise::new(1)).max(MIN_TRANSFER));
            let highest = slab.up_to.unwrap_or(PER_TRANSFER_LIMIT).max(lowest);
            for amount in [lowest, highest] {
                slab.refuse_negative_commission(amount)
                    .map_err(|e| PlanError::Value(format!("dmt.slabs[{i}]: {e}")))?;
            }
            slabs.push(slab);
        }
        if slabs.last().is_none_or(|s| s.up_to.is_some()) {
            return Err(PlanError::Value("dmt.slabs: the last slab must have no up_to (cover every amount)".into()));
        }
        let discount = match self.dmt.discount.as_deref() {
            None | Some("gst") => Discount::Gst,
            Some("zero") => Discount::Zero,
            Some(other) => return Err(PlanError::Value(format!("dmt.discount: {other:?} is not \"gst\" or \"zero\""))),
        };
        let commission = |field: String, raw: &RawCommission| -> Result<Commission, PlanError> {
            Ok(Commission {
                basis_points: percent(&format!("{field}.percent"), &raw.percent)?,
                cap: money(&format!("{field}.cap"), &raw.cap)?,
            })
        };
        let bbps_default = commission("bbps.default".into(), &self.bbps.default)?;
        let mut bbps_categories = BTreeMap::new();
        for (name, raw) in &self.bbps.categories {
            bbps_categories.insert(name.clone(), commission(format!("bbps.categories.{name}"), raw)?);
        }
        let penny_drop_fee = money("penny_drop_fee", &self.penny_drop_fee)?.unwrap_or(DEFAULT_PENNY_DROP_FEE);
        if penny_drop_fee <= Paise::ZERO {
            return Err(PlanError::Value("penny_drop_fee: must be more than 0".into()));
        }
        Ok(FeePlan { dmt_slabs: slabs, discount, bbps_default, bbps_categories, penny_drop_fee })
    }
}

fn percent_text(bp: i64) -> String {
    Paise::new(bp).to_decimal_string()
}

impl From<&FeePlan> for RawPlan {
    fn from(plan: &FeePlan) -> Self {
        let money = |p: Option<Paise>| p.map(Paise::to_decimal_string);
        let slab = |s: &DmtSlab| {
            let mut raw = RawSlab { up_to: money(s.up_to), ..RawSlab::default() };
            match s.charge {
                Rate::Fixed(p) => raw.charge = Some(p.to_decimal_string()),
                Rate::Percent { basis_points, min, max } => {
                    raw.charge_percent = Some(percent_text(basis_points));
                    raw.min_charge = money(min);
                    raw.max_charge = money(max);
                }
            }
            match s.provider_share {
                Rate::Fixed(p) => raw.provider_share = Some(p.to_decimal_string()),
                Rate::Percent { basis_points, .. } => raw.provider_share_percent = Some(percent_text(basis_points)),
            }
            raw
        };
        let commission = |c: &Commission| RawCommission { percent: percent_text(c.basis_points), cap: money(c.cap) };
        RawPlan {
            dmt: RawDmt {
                slabs: plan.dmt_slabs.iter().map(slab).collect(),
                discount: Some(match plan.discount {
                    Discount::Gst => "gst".into(),
                    Discount::Zero => "zero".into(),
                }),
            },
            bbps: RawBbps {
                default: commission(&plan.bbps_default),
                categories: plan.bbps_categories.iter().map(|(k, v)| (k.clone(), commission(v))).collect(),
            },
            penny_drop_fee: (plan.penny_drop_fee != DEFAULT_PENNY_DROP_FEE)
                .then(|| plan.penny_drop_fee.to_decimal_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_ist(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_default_plan_reproduces_the_seed_charges() {
        let plan = FeePlan::default_plan();
        let charges = plan.dmt_charges(Paise::rupees(100), at("2021-01-15 18:30:00"));
        assert_eq!(charges.customer_charge, Paise::new(1000));
        assert_eq!(charges.provider_share, Paise::new(350));
        assert_eq!(charges.net_commission, Paise::new(478));
        assert_eq!(charges.discount, charges.gst);
        let bill = plan.bill_commission("Electricity", Paise::rupees(100), at("2021-01-11 15:43:20"));
        assert_eq!(bill, (Paise::new(21), Paise::new(1)));
        assert_eq!(
            plan.bill_commission("Gas", Paise::rupees(1_000_000), at("2021-01-11 15:43:20")).0,
            Paise::rupees(50)
        );
    }

    #[test]
    fn slabs_pick_the_first_that_covers_the_amount() {
        let plan = FeePlan::from_json(
            r#"{"dmt":{"slabs":[{"up_to":"1000","charge":"10","provider_share":"2.50"},
                                 {"up_to":"2000","charge":"15","provider_share_percent":"20"},
                                 {"charge_percent":"1","max_charge":"40","provider_share_percent":"35"}],"discount":"zero"},
                "bbps":{"default":{"percent":"0.1"},"categories":{"Electricity":{"percent":"0.5","cap":"5"}}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let now = at("2026-11-22 10:00:00");
        assert_eq!(plan.dmt_charges(Paise::rupees(1000), now).customer_charge, Paise::rupees(10));
        assert_eq!(plan.dmt_charges(Paise::rupees(1000), now).provider_share, Paise::new(250));
        assert_eq!(plan.dmt_charges(Paise::new(100_001), now).customer_charge, Paise::rupees(15));
        assert_eq!(plan.dmt_charges(Paise::new(100_001), now).provider_share, Paise::rupees(3));
        assert_eq!(plan.dmt_charges(Paise::rupees(3000), now).customer_charge, Paise::rupees(30));
        assert_eq!(plan.dmt_charges(Paise::rupees(5000), now).customer_charge, Paise::rupees(40));
        assert_eq!(plan.dmt_charges(Paise::rupees(5000), now).discount, Paise::ZERO);
        assert_eq!(plan.bill_commission("Electricity", Paise::rupees(2000), now).0, Paise::rupees(5));
        assert_eq!(plan.bill_commission("Water", Paise::rupees(2000), now).0, Paise::rupees(2));
        assert_eq!(FeePlan::from_json(&plan.to_json()), Ok(plan));
    }

    #[test]
    fn bad_plans_are_refused_naming_the_place() {
        let cases = [
            (r#"{"dmt":{"slabs":[]},"bbps":{"default":{"percent":"1"}}}"#, "dmt.slabs"),
            (
                r#"{"dmt":{"slabs":[{"up_to":"10","charge":"1","provider_share":"0"}]},"bbps":{"default":{"percent":"1"}}}"#,
                "last slab",
            ),
            (
                r#"{"dmt":{"slabs":[{"charge":"1","charge_percent":"1","provider_share":"0"}]},"bbps":{"default":{"percent":"1"}}}"#,
                "dmt.slabs[0].charge",
            ),
            (
                r#"{"dmt":{"slabs":[{"charge":"1.001","provider_share":"0"}]},"bbps":{"default":{"percent":"1"}}}"#,
                "dmt.slabs[0].charge",
            ),
            (
                r#"{"dmt":{"slabs":[{"charge":"1","provider_share":"0"}]},"bbps":{"default":{"percent":"101"}}}"#,
                "bbps.default.percent",
            ),
            (
                r#"{"dmt":{"slabs":[{"charge":"1","provider_share":"0"}]},"bbps":{"default":{"percent":"1"}},"x":1}"#,
                "unknown field",
            ),
            (
                r#"{"dmt":{"slabs":[{"up_to":"20","charge":"1","provider_share":"0"},{"up_to":"10","charge":"1","provider_share":"0"},{"charge":"1","provider_share":"0"}]},"bbps":{"default":{"percent":"1"}}}"#,
                "rise",
            ),
            (
                r#"{"dmt":{"slabs":[{"charge":"10.00","provider_share":"10.00"}]},"bbps":{"default":{"percent":"1"}}}"#,
                "dmt.slabs[0]: on a transfer of",
            ),
            (
                r#"{"dmt":{"slabs":[{"up_to":"1000","charge":"10","provider_share":"3.50"},{"charge_percent":"1","provider_share_percent":"90"}]},"bbps":{"default":{"percent":"1"}}}"#,
                "dmt.slabs[1]: on a transfer of",
            ),
        ];
        for (json, needle) in cases {
            let error = match FeePlan::from_json(json) {
                Ok(plan) => panic!("{json} was accepted as {plan:?}"),
                Err(e) => e.to_string(),
            };
            assert!(error.contains(needle), "{json}: {error}");
        }
    }

    #[test]
    fn the_version_in_force_is_the_latest_that_has_started() {
        let plan = FeePlan::default_plan();
        let version = |v, from| FeePlanVersion {
            partner: RegistrationId::new(1),
            version: v,
            effective_from: Timestamp::from_unix(from),
            plan: plan.clone(),
            created_at: Timestamp::from_unix(0),
        };
        let versions = [version(1, 100), version(2, 300), version(3, 200)];
        assert_eq!(plan_in_force(&versions, Timestamp::from_unix(99)), None);
        assert_eq!(plan_in_force(&versions, Timestamp::from_unix(250)).map(|v| v.version), Some(3));
        assert_eq!(plan_in_force(&versions, Timestamp::from_unix(300)).map(|v| v.version), Some(2));
    }
}
