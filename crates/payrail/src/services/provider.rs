//! The upstream that really moves money, behind one trait.
//!
//! Until a real connector is configured, [`InProcessProvider`] stands in: it
//! accepts every transfer and leaves it "sent to bank", accepts every bill
//! payment and leaves it pending, and makes up a deterministic bill for any
//! customer account. It never decides a final state: operators (or a real
//! upstream) do.

use async_trait::async_trait;

use super::billers::Biller;
use crate::domain::bbps::BillChange;
use crate::domain::dmt::DmtChange;
use crate::domain::{BillPayment, DmtTransfer, Paise, Timestamp};

/// A bill as the biller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBill {
    /// The customer's name on the bill.
    pub customer_name: String,
    /// What is due.
    pub amount: Paise,
    /// The bill's number.
    pub bill_number: String,
    /// The bill's date (India time, `YYYY-MM-DD`).
    pub bill_date: String,
    /// When it is due (India time, `YYYY-MM-DD`).
    pub due_date: String,
}

/// Why the upstream could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The biller knows no such customer.
    #[error("no bill found for this customer")]
    NoBill,
    /// The upstream failed.
    #[error("the provider did not answer: {0}")]
    Unavailable(String),
}

/// The upstream provider.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Hands a debited transfer over; returns the change its answer implies, if any.
    async fn submit_transfer(&self, transfer: &DmtTransfer) -> Option<DmtChange>;
    /// Hands a debited bill payment over; returns the change its answer implies, if any.
    async fn submit_bill(&self, payment: &BillPayment) -> Option<BillChange>;
    /// Fetches the customer's current bill.
    async fn fetch_bill(&self, biller: &Biller, account: &str) -> Result<FetchedBill, ProviderError>;
}

/// The stand-in upstream (see the module documentation).
#[derive(Debug, Default)]
pub struct InProcessProvider;

#[async_trait]
impl Provider for InProcessProvider {
    async fn submit_transfer(&self, _transfer: &DmtTransfer) -> Option<DmtChange> {
        Some(DmtChange::SentToBank)
    }

    async fn submit_bill(&self, _payment: &BillPayment) -> Option<BillChange> {
        None
    }

    async fn fetch_bill(&self, biller: &Biller, account: &str) -> Result<FetchedBill, ProviderError> {
        Ok(made_up_bill(biller, account, Timestamp::now()))
    }
}

const NAMES: [&str; 6] =
    ["Ramesh Kumar", "Sunita Devi", "Arjun Mehta", "Priya Sharma", "Mohammed Irfan", "Lakshmi Iyer"];

/// A bill that depends only on the biller, the account and the month.
fn made_up_bill(biller: &Biller, account: &str, now: Timestamp) -> FetchedBill {
    let seed = account.bytes().fold(biller.id as u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
    let (year, month, _) = now.ist_date();
    FetchedBill {
        customer_name: NAMES[(seed % NAMES.len() as u64) as usize].to_owned(),
        amount: Paise::new(10_000 + (seed % 490_000) as i64),
        bill_number: format!("{}{:04}{:02}{:06}", biller.id, year, month, seed % 1_000_000),
        bill_date: format!("{year:04}-{month:02}-01"),
        due_date: format!("{year:04}-{month:02}-20"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::billers;

    #[test]
    fn a_made_up_bill_is_the_same_for_the_same_account_and_differs_between_accounts() {
        let biller = billers::find(1).copied().unwrap_or_else(|| panic!("biller 1"));
        let now = Timestamp::from_unix(1_790_000_000);
        assert_eq!(made_up_bill(&biller, "123", now), made_up_bill(&biller, "123", now));
        assert_ne!(made_up_bill(&biller, "123", now).amount, made_up_bill(&biller, "124", now).amount);
        assert!(made_up_bill(&biller, "123", now).amount >= Paise::rupees(100));
    }
}
