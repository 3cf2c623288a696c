//! Commission settlement and the TDS report (issue 15, item 7).
//!
//! Every debit journal puts the partner's commission, net of TDS, into
//! `commission_payable` and the TDS withheld (Section 194H) into
//! `tds_payable`; a refund journal takes them back. A settlement run for a
//! month that is over pays each partner what its journals of that month
//! (India time) left there, as one `settlement` journal per partner:
//! `commission_payable` −net, the partner's wallet +net. A store index
//! allows one settlement journal per partner and month, so a second run, or
//! two at once, pay nothing more; a partner whose month nets to zero or
//! less (more taken back than earned) is paid nothing.
//!
//! The TDS report lists, per partner and financial-year quarter, the gross
//! commission (net + TDS), the TDS deducted and the rate that gives; its
//! totals are the quarter's postings to `tds_payable`.

use crate::domain::ledger::Journal;
use crate::domain::{Clock, Paise, RegistrationId, Timestamp};
use crate::store::ledger::{Accrued, Settled};
use crate::store::{DebitError, LedgerStore, StoreError};

/// A calendar month, `YYYY-MM`, in India time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// Reads `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Month, String> {
        let bad = || format!("month must be YYYY-MM, e.g. 2026-11 (got {text:?})");
        let (year, month) = text.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let (year, month): (i32, u32) = (year.parse().map_err(|_| bad())?, month.parse().map_err(|_| bad())?);
        if !(2000..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    fn first_day(year: i32, month: u32) -> Timestamp {
        Timestamp::parse_ist_date(&format!("{year:04}-{month:02}-01")).unwrap_or(Timestamp::from_unix(0))
    }

    /// Its first instant.
    pub fn start(self) -> Timestamp {
        Month::first_day(self.year, self.month)
    }

    /// The first instant after it.
    pub fn end(self) -> Timestamp {
        let (year, month) = if self.month == 12 { (self.year + 1, 1) } else { (self.year, self.month + 1) };
        Month::first_day(year, month)
    }

    /// The settlement journals' memo for this month.
    pub fn memo(self) -> String {
        format!("commission {self}")
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A quarter of an Indian financial year (April to March), `YYYY-YY-QN`:
/// `2026-27-Q1` is April–June 2026, `2026-27-Q4` January–March 2027.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarter {
    first_year: i32,
    number: u32,
}

impl Quarter {
    /// Reads `YYYY-YY-QN`.
    pub fn parse(text: &str) -> Result<Quarter, String> {
        let bad = || format!("quarter must be a financial-year quarter YYYY-YY-QN, e.g. 2026-27-Q3 (got {text:?})");
        let mut parts = text.split('-');
        let (Some(first), Some(second), Some(q), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let first_year: i32 = first.parse().map_err(|_| bad())?;
        let second: i32 = second.parse().map_err(|_| bad())?;
        let number: u32 = q.strip_prefix('Q').and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        if first.len() != 4 || second != (first_year + 1) % 100 || !(1..=4).contains(&number) || first_year < 2000 {
            return Err(bad());
        }
        Ok(Quarter { first_year, number })
    }

    /// Its first month.
    fn first_month(self) -> Month {
        match self.number {
            4 => Month { year: self.first_year + 1, month: 1 },
            n => Month { year: self.first_year, month: 4 + (n - 1) * 3 },
        }
    }

    /// Its first instant.
    pub fn start(self) -> Timestamp {
        self.first_month().start()
    }

    /// The first instant after it.
    pub fn end(self) -> Timestamp {
        let first = self.first_month();
        let month = first.month + 3;
        if month > 12 {
            Month::first_day(first.year + 1, month - 12)
        } else {
            Month::first_day(first.year, month)
        }
    }
}

impl std::fmt::Display for Quarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:02}-Q{}", self.first_year, (self.first_year + 1) % 100, self.number)
    }
}

/// Why a settlement run did not run. Nothing was paid.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// The month is not over in India time.
    #[error("{0} is not over yet: a month is settled once it has ended (India time)")]
    NotOver(Month),
    /// A store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a settlement run did, partner by partner.
#[derive(Debug, Clone, Default)]
pub struct SettlementRun {
    /// Paid by this run.
    pub paid: Vec<Settled>,
    /// Paid by an earlier run (nothing more paid now).
    pub already: Vec<Settled>,
    /// Partners whose month netted to zero or less: paid nothing.
    pub nothing: Vec<(RegistrationId, Paise)>,
}

/// Pays each partner its net commission for `month`, once.
pub async fn settle(store: &dyn LedgerStore, clock: &dyn Clock, month: Month) -> Result<SettlementRun, SettleError> {
    let now = clock.now();
    if now < month.end() {
        return Err(SettleError::NotOver(month));
    }
    let memo = month.memo();
    let accrued = store.accrued(month.start(), month.end()).await?;
    let mut run = SettlementRun { already: store.settlements(&memo).await?, ..SettlementRun::default() };
    for Accrued { partner, commission, .. } in accrued {
        if run.already.iter().any(|s| s.partner == partner) {
            continue;
        }
        if commission <= Paise::ZERO {
            run.nothing.push((partner, commission));
            continue;
        }
        let journal = Journal::commission_settlement(partner, commission, memo.clone(), now);
        if let Err(e) = store.post_journal(journal).await {
            // Another run may have paid it first: the store's index refused this one.
            if !store.settlements(&memo).await?.iter().any(|s| s.partner == partner) {
                return Err(match e {
                    DebitError::Store(e) => e.into(),
                    other => StoreError::Other(anyhow::anyhow!("settling {partner}: {other}")).into(),
                });
            }
        }
    }
    let settled = store.settlements(&memo).await?;
    let earlier: Vec<RegistrationId> = run.already.iter().map(|s| s.partner).collect();
    run.paid = settled.into_iter().filter(|s| !earlier.contains(&s.partner)).collect();
    Ok(run)
}

/// One partner's line of the TDS report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdsLine {
    /// The partner.
    pub partner: RegistrationId,
    /// Commission before TDS.
    pub gross: Paise,
    /// TDS deducted.
    pub tds: Paise,
}

impl TdsLine {
    /// The rate applied, in percent with two decimals (`5.00`); `0.00` without commission.
    pub fn rate(&self) -> String {
        if self.gross.get() <= 0 {
            return "0.00".into();
        }
        let basis_points = (self.tds.get() as i128 * 10_000 + self.gross.get() as i128 / 2) / self.gross.get() as i128;
        format!("{}.{:02}", basis_points / 100, basis_points % 100)
    }
}

/// The TDS report of `quarter`: one line per partner with commission in it.
pub async fn tds_report(store: &dyn LedgerStore, quarter: Quarter) -> Result<Vec<TdsLine>, StoreError> {
    let accrued = store.accrued(quarter.start(), quarter.end()).await?;
    Ok(accrued
        .into_iter()
        .filter(|a| a.commission != Paise::ZERO || a.tds != Paise::ZERO)
        .map(|a| TdsLine { partner: a.partner, gross: a.commission + a.tds, tds: a.tds })
        .collect())
}

/// The TDS report as CSV: a header, a line per partner, a total line.
pub fn tds_csv(quarter: Quarter, lines: &[TdsLine]) -> String {
    let mut csv = String::from("partner,quarter,section,commission_paid,tds_deducted,tds_rate_percent\n");
    let (mut gross, mut tds) = (Paise::ZERO, Paise::ZERO);
    for line in lines {
        csv.push_str(&format!(
            "{},{quarter},194H,{},{},{}\n",
            line.partner,
            line.gross.to_decimal_string(),
            line.tds.to_decimal_string(),
            line.rate()
        ));
        gross = gross + line.gross;
        tds = tds + line.tds;
    }
    let total = TdsLine { partner: RegistrationId::new(0), gross, tds };
    csv.push_str(&format!(
        "total,{quarter},194H,{},{},{}\n",
        gross.to_decimal_string(),
        tds.to_decimal_string(),
        total.rate()
    ));
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_quarters_are_read_and_bounded_in_india_time() {
        let month = Month::parse("2026-11").expect("a month");
        assert_eq!(month.start().to_ist_string(), "2026-11-01 00:00:00");
        assert_eq!(month.end().to_ist_string(), "2026-12-01 00:00:00");
        assert_eq!(Month::parse("2026-12").map(|m| m.end().to_ist_string()), Ok("2027-01-01 00:00:00".into()));
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-00"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        let q3 = Quarter::parse("2026-27-Q3").expect("a quarter");
        assert_eq!(
            (q3.start().to_ist_string(), q3.end().to_ist_string()),
            ("2026-10-01 00:00:00".into(), "2027-01-01 00:00:00".into())
        );
        let q4 = Quarter::parse("2026-27-Q4").expect("a quarter");
        assert_eq!(
            (q4.start().to_ist_string(), q4.end().to_ist_string()),
            ("2027-01-01 00:00:00".into(), "2027-04-01 00:00:00".into())
        );
        assert_eq!(Quarter::parse("2026-27-Q1").map(|q| q.start().to_ist_string()), Ok("2026-04-01 00:00:00".into()));
        assert_eq!(q3.to_string(), "2026-27-Q3");
        for bad in ["2026-28-Q1", "2026-27-Q5", "2026-Q1", "2026-27-3", "1999-00-Q1"] {
            assert!(Quarter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rate_is_tds_over_gross_in_percent() {
        let line =
            |gross, tds| TdsLine { partner: RegistrationId::new(1), gross: Paise::new(gross), tds: Paise::new(tds) };
        assert_eq!(line(10_000, 500).rate(), "5.00");
        assert_eq!(line(497, 19).rate(), "3.82");
        assert_eq!(line(0, 0).rate(), "0.00");
    }
}
