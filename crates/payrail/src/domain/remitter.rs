//! DMT V1 remitters (the customers who send money), their beneficiaries and
//! the limits a transfer must respect.
//!
//! A remitter is registered per partner by mobile number. Transfers go out
//! through one of three bank pipes; each pipe allows a remitter
//! [`MONTHLY_LIMIT_PER_BANK`] per calendar month (India time), and a single
//! transfer may carry at most [`PER_TRANSFER_LIMIT`] (the RBI's domestic
//! money transfer limits).

use super::remitter_details::RemitterDetails;
use super::{Paise, RegistrationId, Timestamp};

/// The most a remitter may send through one bank pipe in a calendar month.
pub const MONTHLY_LIMIT_PER_BANK: Paise = Paise::rupees(25_000);
/// The most one transfer may carry.
pub const PER_TRANSFER_LIMIT: Paise = Paise::rupees(5_000);
/// The least one transfer may carry.
pub const MIN_TRANSFER: Paise = Paise::rupees(100);

/// An Indian mobile number: ten digits, the first 6 to 9.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MobileNumber(String);

/// Why a text is not a mobile number, an account number or an IFSC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankDetailError {
    /// Not ten digits starting 6–9.
    #[error("must be a 10-digit Indian mobile number")]
    Mobile,
    /// Not 9 to 18 digits.
    #[error("must be 9 to 18 digits")]
    Account,
    /// Not four letters, a zero and six letters or digits.
    #[error("must be an IFSC: 4 letters, 0, then 6 letters or digits")]
    Ifsc,
}

impl MobileNumber {
    /// Reads a mobile number, refusing anything else.
    pub fn parse(text: &str) -> Result<Self, BankDetailError> {
        let ok =
            text.len() == 10 && text.bytes().all(|b| b.is_ascii_digit()) && matches!(text.as_bytes()[0], b'6'..=b'9');
        ok.then(|| MobileNumber(text.to_owned())).ok_or(BankDetailError::Mobile)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A bank account number: 9 to 18 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountNumber(String);

impl AccountNumber {
    /// Reads an account number.
    pub fn parse(text: &str) -> Result<Self, BankDetailError> {
        let ok = (9..=18).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| AccountNumber(text.to_owned())).ok_or(BankDetailError::Account)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An Indian Financial System Code, upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ifsc(String);

impl Ifsc {
    /// Reads an IFSC, upper-casing it.
    pub fn parse(text: &str) -> Result<Self, BankDetailError> {
        let upper = text.to_ascii_uppercase();
        let b = upper.as_bytes();
        let ok = b.len() == 11
            && b[..4].iter().all(u8::is_ascii_uppercase)
            && b[4] == b'0'
            && b[5..].iter().all(u8::is_ascii_alphanumeric);
        ok.then_some(Ifsc(upper)).ok_or(BankDetailError::Ifsc)
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A registered remitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remitter {
    /// The partner it belongs to.
    pub partner: RegistrationId,
    /// Its mobile number, the key partners use.
    pub mobile: MobileNumber,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// The KYC reference given at registration.
    pub kyc_id: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// Its id at the upstream; `None` when registered under a provider that
    /// keeps none (manual) or before payrail registered remitters upstream.
    pub upstream_id: Option<String>,
}

/// A beneficiary of a remitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beneficiary {
    /// payrail's id (`beneid`); 0 before the store assigns one.
    pub id: i64,
    /// The partner it belongs to.
    pub partner: RegistrationId,
    /// The remitter who added it.
    pub remitter: MobileNumber,
    /// The account holder's name.
    pub name: String,
    /// The account.
    pub account: AccountNumber,
    /// The branch.
    pub ifsc: Ifsc,
    /// The bank's name, as the partner gave it.
    pub bank_name: Option<String>,
    /// When it was added.
    pub created_at: Timestamp,
    /// The bank in the bank list ([`super::banks`]); `None` for a beneficiary
    /// added before the list, at a bank it does not have.
    pub bank_id: Option<i64>,
    /// The remitter's details given with it, passed upstream with transfers.
    pub details: RemitterDetails,
    /// What the partner said of it (`verified: "1"`): kept, never trusted.
    pub claimed_verified: bool,
    /// The account holder's name as the bank holds it, once a penny drop
    /// verified the account: the beneficiary is verified exactly when set.
    pub verified_name: Option<String>,
    /// The upstream's id for it (`bene_id` there), which transfers are sent
    /// with; `None` until registered upstream (never under the manual provider).
    pub upstream_id: Option<String>,
}

/// One of the three bank pipes a transfer can go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bank {
    /// The first pipe (the default).
    Bank1 = 1,
    /// The second pipe.
    Bank2 = 2,
    /// The third pipe.
    Bank3 = 3,
}

impl Bank {
    /// Every pipe.
    pub const ALL: [Bank; 3] = [Bank::Bank1, Bank::Bank2, Bank::Bank3];

    /// The pipe's number, 1 to 3, as stored.
    pub fn number(self) -> i64 {
        self as i64
    }

    /// The pipe with this number.
    pub fn from_number(n: i64) -> Option<Bank> {
        Self::ALL.into_iter().find(|b| b.number() == n)
    }
}

/// An amount for each of the three pipes: what a remitter sent through each
/// one this month, or what is left of each one's monthly limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PerBank {
    /// Through [`Bank::Bank1`].
    pub bank1: Paise,
    /// Through [`Bank::Bank2`].
    pub bank2: Paise,
    /// Through [`Bank::Bank3`].
    pub bank3: Paise,
}

impl PerBank {
    /// The amount of one pipe.
    pub fn get(&self, bank: Bank) -> Paise {
        match bank {
            Bank::Bank1 => self.bank1,
            Bank::Bank2 => self.bank2,
            Bank::Bank3 => self.bank3,
        }
    }

    /// The amount of one pipe, to change it.
    pub fn get_mut(&mut self, bank: Bank) -> &mut Paise {
        match bank {
            Bank::Bank1 => &mut self.bank1,
            Bank::Bank2 => &mut self.bank2,
            Bank::Bank3 => &mut self.bank3,
        }
    }

    /// The largest of the three amounts.
    pub fn largest(self) -> Paise {
        self.bank1.max(self.bank2).max(self.bank3)
    }

    /// What is left of `limit` on each pipe once these amounts are used,
    /// never below zero.
    pub fn left_of(self, limit: Paise) -> PerBank {
        let left = |used: Paise| (limit - used).max(Paise::ZERO);
        PerBank { bank1: left(self.bank1), bank2: left(self.bank2), bank3: left(self.bank3) }
    }
}

/// How the money moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Immediate Payment Service.
    Imps,
    /// National Electronic Funds Transfer.
    Neft,
}

impl TransferMode {
    /// The wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferMode::Imps => "IMPS",
            TransferMode::Neft => "NEFT",
        }
    }

    /// Reads `IMPS` or `NEFT`, any case.
    pub fn parse(text: &str) -> Option<TransferMode> {
        [TransferMode::Imps, TransferMode::Neft].into_iter().find(|m| m.as_str().eq_ignore_ascii_case(text))
    }
}

/// Where a partner-made transfer came from and how it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmtRoute {
    /// The remitter who sent it.
    pub remitter: MobileNumber,
    /// The beneficiary it goes to.
    pub beneficiary_id: i64,
    /// The pipe.
    pub bank: Bank,
    /// IMPS or NEFT.
    pub mode: TransferMode,
}

/// The monthly limit a new transfer must fit in, checked by the store in the
/// same database transaction that debits the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyLimit {
    /// Transfers through the same remitter and pipe made at or after this
    /// instant count (and are not refunded).
    pub since: Timestamp,
    /// How much they may add up to, this one included.
    pub limit: Paise,
}

impl MonthlyLimit {
    /// The limit for a pipe in the month (India time) that contains `now`.
    pub fn for_month_of(now: Timestamp) -> MonthlyLimit {
        MonthlyLimit { since: now.ist_month_start(), limit: MONTHLY_LIMIT_PER_BANK }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pipe_keeps_its_own_amount_and_what_is_left_never_goes_below_zero() {
        let mut used = PerBank::default();
        *used.get_mut(Bank::Bank2) = Paise::rupees(30_000);
        *used.get_mut(Bank::Bank3) = Paise::rupees(60_000);
        assert_eq!(used.get(Bank::Bank1), Paise::ZERO);
        assert_eq!(used.get(Bank::Bank2), Paise::rupees(30_000));
        let left = used.left_of(Paise::rupees(50_000));
        assert_eq!(left, PerBank { bank1: Paise::rupees(50_000), bank2: Paise::rupees(20_000), bank3: Paise::ZERO });
        assert_eq!(left.largest(), Paise::rupees(50_000));
    }

    #[test]
    fn mobile_numbers_are_ten_digits_starting_six_to_nine() {
        assert!(MobileNumber::parse("9876543210").is_ok());
        for bad in ["5876543210", "987654321", "98765432101", "98765x3210", ""] {
            assert_eq!(MobileNumber::parse(bad), Err(BankDetailError::Mobile), "{bad}");
        }
    }

    #[test]
    fn account_numbers_and_ifsc_are_checked() {
        assert!(AccountNumber::parse("123456789").is_ok());
        assert!(AccountNumber::parse("123456789012345678").is_ok());
        assert!(AccountNumber::parse("12345678").is_err());
        assert!(AccountNumber::parse("1234567890123456789").is_err());
        assert!(AccountNumber::parse("12345678a").is_err());
        assert_eq!(Ifsc::parse("sbin0001234").map(|i| i.as_str().to_owned()), Ok("SBIN0001234".to_owned()));
        for bad in ["SBIN1001234", "SBI00001234", "SBIN000123", "SBIN00012345", "SBIN000123-"] {
            assert!(Ifsc::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_month_starts_at_midnight_india_time() {
        let at = Timestamp::parse_ist("2026-11-22 10:00:00").unwrap_or_else(|e| panic!("{e}"));
        let start = MonthlyLimit::for_month_of(at).since;
        assert_eq!(start.to_ist_string(), "2026-11-01 00:00:00");
        let first = Timestamp::parse_ist("2026-11-01 00:00:00").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(MonthlyLimit::for_month_of(first).since, first);
    }
}
