//! The BBPS biller catalogue: real Indian billers by category, each with the
//! names of the customer parameters it asks for. The first parameter is the
//! one reported as `canumber`; the others travel as `ad1`..`ad3`.
//!
//! The catalogue is part of the program (like a seed): billers change rarely,
//! and a status lookup or a payment must not depend on a table an operator
//! could empty. Ids are stable; never reuse one.

/// A biller a bill can be paid to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Biller {
    /// payrail's id for the biller, sent as `operator`.
    pub id: i64,
    /// The biller's name, reported as `operatorname`.
    pub name: &'static str,
    /// Its BBPS category; fee plans price commission by category.
    pub category: &'static str,
    /// The customer parameters: the first is the account (`canumber`), the
    /// others `ad1`.. in order.
    pub params: &'static [&'static str],
    /// Whether a bill can be fetched before paying.
    pub fetch: bool,
}

const fn biller(
    id: i64,
    name: &'static str,
    category: &'static str,
    params: &'static [&'static str],
    fetch: bool,
) -> Biller {
    Biller { id, name, category, params, fetch }
}

/// Every biller, by id.
pub const BILLERS: &[Biller] = &[
    biller(1, "BSES Rajdhani Power Limited", "Electricity", &["CA Number"], true),
    biller(2, "BSES Yamuna Power Limited", "Electricity", &["CA Number"], true),
    biller(3, "Tata Power - Delhi", "Electricity", &["Customer ID"], true),
    biller(
        4,
        "Maharashtra State Electricity Distribution Co. Ltd. (MSEDCL)",
        "Electricity",
        &["Consumer No", "BU"],
        true,
    ),
    biller(5, "Bangalore Electricity Supply Co. Ltd. (BESCOM)", "Electricity", &["Customer ID / Account ID"], true),
    biller(
        6,
        "Tamil Nadu Generation and Distribution Corporation (TANGEDCO)",
        "Electricity",
        &["Consumer Number"],
        true,
    ),
    biller(7, "Uttar Pradesh Power Corporation Ltd. (UPPCL) - Urban", "Electricity", &["Account Number"], true),
    biller(8, "Adani Electricity Mumbai Limited", "Electricity", &["Consumer Number"], true),
    biller(20, "Indraprastha Gas Limited", "Gas", &["Business Partner Number"], true),
    biller(21, "Mahanagar Gas Limited", "Gas", &["CA Number", "Bill Group Number"], true),
    biller(22, "Gujarat Gas Limited", "Gas", &["Service Number"], true),
    biller(30, "Delhi Jal Board", "Water", &["K Number"], true),
    biller(31, "Bangalore Water Supply and Sewerage Board", "Water", &["RR Number"], true),
    biller(32, "Municipal Corporation of Greater Mumbai - Water", "Water", &["Consumer Number"], true),
    biller(40, "Airtel Broadband", "Broadband Postpaid", &["Landline Number with STD Code"], true),
    biller(41, "ACT Fibernet", "Broadband Postpaid", &["Account Number / User Name"], true),
    biller(42, "Hathway Broadband", "Broadband Postpaid", &["Customer ID"], true),
    biller(50, "Airtel Postpaid", "Mobile Postpaid", &["Mobile Number"], true),
    biller(51, "Jio Postpaid", "Mobile Postpaid", &["Mobile Number"], true),
    biller(52, "Vi Postpaid", "Mobile Postpaid", &["Mobile Number"], true),
    biller(60, "Tata Play", "DTH", &["Subscriber Number"], false),
    biller(61, "Dish TV", "DTH", &["Registered Mobile Number / Viewing Card Number"], false),
    biller(62, "Airtel Digital TV", "DTH", &["Customer ID"], false),
    biller(
        70,
        "Life Insurance Corporation of India",
        "Insurance",
        &["Policy Number", "Date of Birth (dd/mm/yyyy)", "Email ID"],
        true,
    ),
    biller(71, "HDFC Life Insurance", "Insurance", &["Policy Number", "Date of Birth (dd/mm/yyyy)"], true),
    biller(80, "ICICI Bank FASTag", "FASTag", &["Vehicle Registration Number"], true),
    biller(81, "Paytm Payments Bank FASTag", "FASTag", &["Vehicle Registration Number"], true),
    biller(90, "Indane Gas", "LPG Gas", &["LPG ID"], true),
    biller(91, "Bharat Gas (BPCL)", "LPG Gas", &["Consumer Number", "Distributor ID"], true),
    biller(100, "Bajaj Finance Limited", "Loan Repayment", &["Loan Account Number"], true),
];

/// The biller with this id.
pub fn find(id: i64) -> Option<&'static Biller> {
    BILLERS.iter().find(|b| b.id == id)
}

/// Every category, each once, in catalogue order.
pub fn categories() -> Vec<&'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for biller in BILLERS {
        if !seen.contains(&biller.category) {
            seen.push(biller.category);
        }
    }
    seen
}

/// The category named `name` in any case, spelt as the catalogue has it.
pub fn category(name: &str) -> Option<&'static str> {
    categories().into_iter().find(|c| c.eq_ignore_ascii_case(name))
}

/// The billers of a category (any case), or every biller.
pub fn in_category(category: Option<&str>) -> impl Iterator<Item = &'static Biller> + '_ {
    BILLERS.iter().filter(move |b| category.is_none_or(|c| b.category.eq_ignore_ascii_case(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_biller_names_its_account_parameter() {
        for (i, a) in BILLERS.iter().enumerate() {
            assert!(!a.params.is_empty() && a.params.len() <= 4, "{}", a.name);
            assert!(BILLERS[i + 1..].iter().all(|b| b.id != a.id), "duplicate id {}", a.id);
        }
    }

    #[test]
    fn categories_filter_case_insensitively() {
        assert_eq!(in_category(Some("water")).count(), 3);
        assert_eq!(in_category(None).count(), BILLERS.len());
        assert_eq!(find(1).map(|b| b.category), Some("Electricity"));
    }

    #[test]
    fn categories_are_listed_once_and_found_in_any_case() {
        let all = categories();
        assert_eq!(all.len(), 10, "{all:?}");
        assert_eq!(category("broadband postpaid"), Some("Broadband Postpaid"));
        assert_eq!((category("LPG GAS"), category("broadband")), (Some("LPG Gas"), None));
    }
}
