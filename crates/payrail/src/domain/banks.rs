//! The bank list: the banks a beneficiary can be registered at, with the
//! IFSC prefixes that belong to each and whether it takes IMPS and NEFT.
//!
//! A table in the code rather than rows in a migration: it is reference
//! data that changes with a release (a merger adds a prefix to the bank that
//! absorbed another), both engines need it alike, and a lookup needs no
//! store round trip. `bankid`s are payrail's own, stable once published
//! (HDFC Bank is `309`, the id AOPay's own `RegisterBaneficiary` sample
//! sends). Prefixes of merged banks (Vijaya and Dena into Bank of Baroda,
//! Oriental and United into PNB, Syndicate into Canara, Andhra and
//! Corporation into Union, Allahabad into Indian Bank) still appear on
//! old cheque books, so they stay with the bank that absorbed them.

/// What kind of bank it is (`banktype` in beneficiary answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankType {
    /// A public-sector bank.
    PublicSector,
    /// A private-sector bank.
    Private,
    /// A small finance bank.
    SmallFinance,
    /// A payments bank.
    Payments,
    /// A foreign bank's Indian branches.
    Foreign,
    /// A co-operative bank.
    Cooperative,
}

impl BankType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BankType::PublicSector => "PSU",
            BankType::Private => "PRIVATE",
            BankType::SmallFinance => "SMALL FINANCE",
            BankType::Payments => "PAYMENTS",
            BankType::Foreign => "FOREIGN",
            BankType::Cooperative => "CO-OPERATIVE",
        }
    }
}

/// One bank of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankInfo {
    /// payrail's id for it (`bankid`).
    pub id: i64,
    /// Its name.
    pub name: &'static str,
    /// The IFSC prefixes (first four letters) of its branches, the current one first.
    pub ifsc_prefixes: &'static [&'static str],
    /// Whether it takes IMPS transfers.
    pub imps: bool,
    /// Whether it takes NEFT transfers.
    pub neft: bool,
    /// What kind of bank it is.
    pub kind: BankType,
}

impl BankInfo {
    /// Whether `ifsc` is one of this bank's branches (by its first four letters).
    pub fn owns_ifsc(&self, ifsc: &str) -> bool {
        ifsc.get(..4).is_some_and(|prefix| self.ifsc_prefixes.iter().any(|p| p.eq_ignore_ascii_case(prefix)))
    }

    /// Whether it is Paytm Payments Bank (`paytm` in beneficiary answers).
    pub fn is_paytm(&self) -> bool {
        self.ifsc_prefixes.contains(&"PYTM")
    }
}

const fn bank(
    id: i64,
    name: &'static str,
    ifsc_prefixes: &'static [&'static str],
    imps: bool,
    kind: BankType,
) -> BankInfo {
    BankInfo { id, name, ifsc_prefixes, imps, neft: true, kind }
}

use BankType::{Cooperative, Foreign, Payments, Private, PublicSector, SmallFinance};

/// Every bank, by id.
pub const BANKS: &[BankInfo] = &[
    bank(101, "State Bank of India", &["SBIN"], true, PublicSector),
    bank(102, "Punjab National Bank", &["PUNB", "ORBC", "UTBI"], true, PublicSector),
    bank(103, "Bank of Baroda", &["BARB", "VIJB", "DENA"], true, PublicSector),
    bank(104, "Canara Bank", &["CNRB", "SYNB"], true, PublicSector),
    bank(105, "Union Bank of India", &["UBIN", "ANDB", "CORP"], true, PublicSector),
    bank(106, "Bank of India", &["BKID"], true, PublicSector),
    bank(107, "Indian Bank", &["IDIB", "ALLA"], true, PublicSector),
    bank(108, "Central Bank of India", &["CBIN"], true, PublicSector),
    bank(109, "Indian Overseas Bank", &["IOBA"], true, PublicSector),
    bank(110, "UCO Bank", &["UCBA"], true, PublicSector),
    bank(111, "Bank of Maharashtra", &["MAHB"], true, PublicSector),
    bank(112, "Punjab & Sind Bank", &["PSIB"], true, PublicSector),
    bank(309, "HDFC Bank", &["HDFC"], true, Private),
    bank(310, "ICICI Bank", &["ICIC"], true, Private),
    bank(311, "Axis Bank", &["UTIB"], true, Private),
    bank(312, "Kotak Mahindra Bank", &["KKBK"], true, Private),
    bank(313, "IDFC First Bank", &["IDFB"], true, Private),
    bank(314, "Yes Bank", &["YESB"], true, Private),
    bank(315, "IndusInd Bank", &["INDB"], true, Private),
    bank(316, "Federal Bank", &["FDRL"], true, Private),
    bank(317, "IDBI Bank", &["IBKL"], true, Private),
    bank(318, "South Indian Bank", &["SIBL"], true, Private),
    bank(319, "Karur Vysya Bank", &["KVBL"], true, Private),
    bank(320, "RBL Bank", &["RATN"], true, Private),
    bank(321, "Bandhan Bank", &["BDBL"], true, Private),
    bank(322, "City Union Bank", &["CIUB"], true, Private),
    bank(323, "Karnataka Bank", &["KARB"], true, Private),
    bank(324, "DCB Bank", &["DCBL"], true, Private),
    bank(325, "Jammu & Kashmir Bank", &["JAKA"], true, Private),
    bank(326, "Tamilnad Mercantile Bank", &["TMBL"], true, Private),
    bank(327, "CSB Bank", &["CSBK"], true, Private),
    bank(328, "Dhanlaxmi Bank", &["DLXB"], true, Private),
    bank(401, "AU Small Finance Bank", &["AUBL"], true, SmallFinance),
    bank(402, "Equitas Small Finance Bank", &["ESFB"], true, SmallFinance),
    bank(403, "Ujjivan Small Finance Bank", &["UJVN"], true, SmallFinance),
    bank(501, "Airtel Payments Bank", &["AIRP"], true, Payments),
    bank(502, "Paytm Payments Bank", &["PYTM"], true, Payments),
    bank(503, "India Post Payments Bank", &["IPOS"], true, Payments),
    bank(601, "Standard Chartered Bank", &["SCBL"], true, Foreign),
    bank(602, "Citibank", &["CITI"], true, Foreign),
    bank(603, "HSBC", &["HSBC"], true, Foreign),
    bank(604, "DBS Bank India", &["DBSS"], true, Foreign),
    bank(701, "Saraswat Co-operative Bank", &["SRCB"], true, Cooperative),
    // Reached through its sponsor bank's NEFT only: IMPS to it is refused.
    bank(702, "The Zoroastrian Co-operative Bank", &["ZCBL"], false, Cooperative),
];

/// The bank with this id.
pub fn find_bank(id: i64) -> Option<&'static BankInfo> {
    BANKS.iter().find(|b| b.id == id)
}

/// The bank whose branch `ifsc` is.
pub fn bank_of_ifsc(ifsc: &str) -> Option<&'static BankInfo> {
    BANKS.iter().find(|b| b.owns_ifsc(ifsc))
}

/// Why a beneficiary's bank could not be settled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The `bankid` is not in the list.
    #[error("is not in the bank list (POST /api/AOP/DMTV1/BankList)")]
    UnknownBank,
    /// The IFSC is a branch of another bank.
    #[error("{ifsc} is not a branch of {bank} (bankid {id}): its prefix must be one of {prefixes}")]
    OtherBank {
        /// The IFSC sent.
        ifsc: String,
        /// The bank named.
        bank: &'static str,
        /// Its id.
        id: i64,
        /// Its prefixes, comma-separated.
        prefixes: String,
    },
}

/// The bank of a beneficiary: the one `bank_id` names, whose branch `ifsc`
/// must be; without an id, the bank of the IFSC's prefix if the list has it
/// (clients of the older `RegisterBeneficiary` send no `bankid`).
pub fn settle_bank(bank_id: Option<i64>, ifsc: &str) -> Result<Option<&'static BankInfo>, BankError> {
    let Some(id) = bank_id else { return Ok(bank_of_ifsc(ifsc)) };
    let bank = find_bank(id).ok_or(BankError::UnknownBank)?;
    if !bank.owns_ifsc(ifsc) {
        return Err(BankError::OtherBank {
            ifsc: ifsc.to_owned(),
            bank: bank.name,
            id,
            prefixes: bank.ifsc_prefixes.join(", "),
        });
    }
    Ok(Some(bank))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_prefixes_are_unique_and_prefixes_are_four_capital_letters() {
        let mut ids: Vec<i64> = BANKS.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), BANKS.len());
        let mut prefixes: Vec<&str> = BANKS.iter().flat_map(|b| b.ifsc_prefixes.iter().copied()).collect();
        assert!(prefixes.iter().all(|p| p.len() == 4 && p.bytes().all(|c| c.is_ascii_uppercase())));
        let count = prefixes.len();
        prefixes.sort_unstable();
        prefixes.dedup();
        assert_eq!(prefixes.len(), count);
        assert!(BANKS.len() >= 30);
    }

    #[test]
    fn an_ifsc_belongs_to_the_bank_of_its_prefix_merged_banks_included() {
        assert_eq!(bank_of_ifsc("HDFC0001234").map(|b| b.id), Some(309));
        assert_eq!(bank_of_ifsc("vijb0001234").map(|b| b.name), Some("Bank of Baroda"));
        assert!(find_bank(101).is_some_and(|sbi| sbi.owns_ifsc("SBIN0001234") && !sbi.owns_ifsc("HDFC0001234")));
        assert_eq!(bank_of_ifsc("ZZZZ0001234"), None);
        assert!(find_bank(502).is_some_and(BankInfo::is_paytm));
    }

    #[test]
    fn a_bankid_must_be_listed_and_own_the_ifsc() {
        assert_eq!(settle_bank(Some(309), "HDFC0000125").map(|b| b.map(|b| b.id)), Ok(Some(309)));
        assert_eq!(settle_bank(Some(999), "HDFC0000125"), Err(BankError::UnknownBank));
        assert!(matches!(settle_bank(Some(309), "SBIN0000125"), Err(BankError::OtherBank { id: 309, .. })));
        assert_eq!(settle_bank(None, "SBIN0000125").map(|b| b.map(|b| b.id)), Ok(Some(101)));
        assert_eq!(settle_bank(None, "QQQQ0000125"), Ok(None));
    }
}
