//! The charge arithmetic of SPEC §4–5: GST inside the customer charge,
//! commission, and TDS under Section 194H at the rate of the transaction date.
//! Every step rounds half-up to the paisa.

use super::{Paise, Timestamp};

/// A Section 194H TDS rate in basis points (1% = 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdsRate(i64);

impl TdsRate {
    /// The rate in force on the given instant, in India time:
    /// 5%; 3.75% from 2020-05-14 to 2021-03-31; 2% from 2024-10-01.
    pub fn on(at: Timestamp) -> TdsRate {
        let date = at.ist_date();
        if date >= (2024, 10, 1) {
            TdsRate(200)
        } else if ((2020, 5, 14)..=(2021, 3, 31)).contains(&date) {
            TdsRate(375)
        } else {
            TdsRate(500)
        }
    }

    /// The rate in basis points.
    pub fn basis_points(self) -> i64 {
        self.0
    }

    /// TDS withheld on a commission.
    pub fn apply(self, commission: Paise) -> Paise {
        commission.mul_div_round(self.0, 10_000)
    }
}

/// The breakdown of a DMT customer charge, as the status API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmtCharges {
    /// What the customer paid on top of the amount.
    pub customer_charge: Paise,
    /// The part of the charge that goes to the provider.
    pub provider_share: Paise,
    /// GST contained in the charge: charge × 18/118.
    pub gst: Paise,
    /// Reported as `discount`; defaults to the GST (see SPEC §4).
    pub discount: Paise,
    /// The partner's commission: charge − GST − provider share.
    pub commission: Paise,
    /// TDS on the commission.
    pub tds: Paise,
    /// Commission after TDS.
    pub net_commission: Paise,
}

/// The GST contained in a charge that includes it: charge × 18/118, rounded
/// half-up to the paisa.
pub fn gst_inside(charge: Paise) -> Paise {
    charge.mul_div_round(18, 118)
}

impl DmtCharges {
    /// Works out the breakdown of `customer_charge`, of which `provider_share`
    /// goes to the provider, for a transfer made at `at`.
    pub fn compute(customer_charge: Paise, provider_share: Paise, at: Timestamp) -> DmtCharges {
        let gst = gst_inside(customer_charge);
        let commission = customer_charge - gst - provider_share;
        let tds = TdsRate::on(at).apply(commission);
        DmtCharges {
            customer_charge,
            provider_share,
            gst,
            discount: gst,
            commission,
            tds,
            net_commission: commission - tds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ist(date: &str) -> Timestamp {
        Timestamp::parse_ist(&format!("{date} 12:00:00")).unwrap_or_else(|e| panic!("{date}: {e}"))
    }

    #[test]
    fn the_seed_example_checks_out() {
        let charges = DmtCharges::compute(Paise::new(1000), Paise::new(350), ist("2021-01-15"));
        assert_eq!(charges.gst, Paise::new(153));
        assert_eq!(charges.discount, Paise::new(153));
        assert_eq!(charges.commission, Paise::new(497));
        assert_eq!(charges.tds, Paise::new(19));
        assert_eq!(charges.net_commission, Paise::new(478));
    }

    #[test]
    fn the_bbps_seed_tds_checks_out() {
        assert_eq!(TdsRate::on(ist("2021-01-11")).apply(Paise::new(21)), Paise::new(1));
    }

    #[test]
    fn tds_rate_boundaries_follow_section_194h() {
        let cases = [
            ("2019-01-01", 500),
            ("2020-05-13", 500),
            ("2020-05-14", 375),
            ("2021-03-31", 375),
            ("2021-04-01", 500),
            ("2024-09-30", 500),
            ("2024-10-01", 200),
            ("2026-11-22", 200),
        ];
        for (date, bp) in cases {
            assert_eq!(TdsRate::on(ist(date)).basis_points(), bp, "{date}");
        }
    }

    #[test]
    fn boundaries_are_taken_in_india_time_not_utc() {
        // 2024-09-30 20:00 UTC is already 2024-10-01 01:30 in India.
        let at = Timestamp::parse_ist("2024-10-01 01:30:00").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(TdsRate::on(at).basis_points(), 200);
        let before = Timestamp::parse_ist("2024-09-30 23:59:59").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(TdsRate::on(before).basis_points(), 500);
    }

    #[test]
    fn commission_can_be_negative_when_the_share_exceeds_the_charge_net_of_gst() {
        let charges = DmtCharges::compute(Paise::new(500), Paise::new(450), ist("2025-01-01"));
        assert_eq!(charges.gst, Paise::new(76));
        assert_eq!(charges.commission, Paise::new(-26));
        assert_eq!(charges.tds, Paise::new(-1));
    }
}
