//! Paysprint's wire format and what its codes mean to payrail.
//!
//! The request and answer types here are the contract with the upstream;
//! the `report` methods map an answer onto [`DmtUpstream`] or
//! [`BillUpstream`]. Codes arrive as JSON numbers or strings and are read
//! either way. Anything not recognised maps to `Unknown`, never to a final
//! state: the poller asks again and, in the end, an operator decides.

use serde::{Deserialize, Serialize};

use crate::domain::upstream::{BillUpstream, DmtUpstream};
use crate::domain::Paise;
use crate::services::upstream::provider::{
    AccountHolder, CallbackError, FetchedBill, ProviderError, RefundClaimOutcome, RefundOtpOutcome, UpstreamReport,
};

/// `dmt/transact/transact`: send money.
#[derive(Debug, Serialize)]
pub(super) struct TransactRequest<'a> {
    pub mobile: &'a str,
    pub referenceid: &'a str,
    /// `bank1`, `bank2` or `bank3`.
    pub pipe: String,
    pub bene_id: String,
    /// `IMPS` or `NEFT`.
    pub txntype: &'a str,
    /// Rupees, as `Paise::to_amount_string` renders them.
    pub amount: String,
    pub benename: &'a str,
    pub accno: &'a str,
    pub ifsccode: &'a str,
    /// The remitter's PIN code, address, date of birth (`DD-MM-YYYY`) and
    /// GST state code, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pincode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dob: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gst_state: Option<&'a str>,
}

/// The status queries' body: `{"referenceid": ...}`.
#[derive(Debug, Serialize)]
pub(super) struct ReferenceQuery<'a> {
    pub referenceid: &'a str,
}

/// `bill-payment/bill/paybill`: pay a bill.
#[derive(Debug, Serialize)]
pub(super) struct PayBillRequest<'a> {
    /// The biller's id.
    pub operator: i64,
    pub canumber: &'a str,
    /// Rupees.
    pub amount: String,
    pub referenceid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<&'a str>,
    pub ad1: Option<&'a str>,
    pub ad2: Option<&'a str>,
    pub ad3: Option<&'a str>,
    /// `online` or `offline`.
    pub mode: &'static str,
    /// The bill as fetchbill returned it, for billers with bill fetch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bill_fetch: Option<BillFetchEcho>,
}

/// A fetched bill sent back with its payment, in fetchbill's own shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BillFetchEcho {
    pub bill_amount: String,
    #[serde(rename = "billnetamount")]
    pub bill_net_amount: String,
    #[serde(rename = "billdate")]
    pub bill_date: Option<String>,
    pub due_date: String,
    pub accept_payment: bool,
    pub accept_part_pay: bool,
    pub cell_number: Option<String>,
    pub user_name: String,
}

impl From<&FetchedBill> for BillFetchEcho {
    fn from(bill: &FetchedBill) -> Self {
        BillFetchEcho {
            bill_amount: bill.amount.to_decimal_string(),
            bill_net_amount: bill.net_amount.to_decimal_string(),
            bill_date: bill.bill_date.clone(),
            due_date: bill.due_date.clone(),
            accept_payment: bill.accept_payment,
            accept_part_pay: bill.accept_part_pay,
            cell_number: bill.cell_number.clone(),
            user_name: bill.user_name.clone(),
        }
    }
}

/// `bill-payment/bill/fetchbill`: the customer's current bill.
#[derive(Debug, Serialize)]
pub(super) struct FetchBillRequest<'a> {
    pub operator: i64,
    pub canumber: &'a str,
    /// `online` or `offline`.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ad1: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ad2: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ad3: Option<&'a str>,
}

/// Paysprint's pages that the code table follows.
pub mod pages {
    /// The DMT transaction call and its codes.
    pub const TRANSACT: &str = "https://pay-sprint.readme.io/reference/bank2-transaction";
    /// The DMT status query (`txn_status`, its two shapes): Paysprint's page was not at hand; the
    /// codes follow the AOPay status page that passes it through (SPEC §4).
    pub const QUERY_TRANSACT: &str = "https://pay-sprint.readme.io/reference/bank2-transaction";
    /// Resending a refund OTP.
    pub const REFUND_OTP: &str = "https://pay-sprint.readme.io/reference/refund-otp";
    /// Claiming a refund with the OTP.
    pub const REFUND: &str = "https://pay-sprint.readme.io/reference/bank4-refund-claim-api";
    /// BBPS (pay bill, bill status, fetch bill): AOPay's overview of the codes it passes through.
    pub const BBPS: &str = "https://readapi.aopay.co.in/billPaymentIntro";
}

/// Which Paysprint call an answer is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaysprintCall {
    /// `dmt/transact/transact` (or its e-KYC twin).
    Transact,
    /// `dmt/transact/transact/querytransact`.
    QueryTransact,
    /// The refund OTP (resend) call.
    RefundOtp,
    /// The refund (claim) call.
    Refund,
    /// `bill-payment/bill/paybill`.
    PayBill,
    /// `bill-payment/bill/status`.
    BillStatus,
    /// `bill-payment/bill/fetchbill`.
    FetchBill,
}

impl PaysprintCall {
    /// Every call, in the order the table lists them.
    pub const ALL: [PaysprintCall; 7] = [
        PaysprintCall::Transact,
        PaysprintCall::QueryTransact,
        PaysprintCall::RefundOtp,
        PaysprintCall::Refund,
        PaysprintCall::PayBill,
        PaysprintCall::BillStatus,
        PaysprintCall::FetchBill,
    ];

    /// The call's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            PaysprintCall::Transact => "transact",
            PaysprintCall::QueryTransact => "querytransact",
            PaysprintCall::RefundOtp => "refund OTP",
            PaysprintCall::Refund => "refund",
            PaysprintCall::PayBill => "paybill",
            PaysprintCall::BillStatus => "bill status",
            PaysprintCall::FetchBill => "fetchbill",
        }
    }

    /// The page its rows come from.
    pub fn page(self) -> &'static str {
        match self {
            PaysprintCall::Transact => pages::TRANSACT,
            PaysprintCall::QueryTransact => pages::QUERY_TRANSACT,
            PaysprintCall::RefundOtp => pages::REFUND_OTP,
            PaysprintCall::Refund => pages::REFUND,
            PaysprintCall::PayBill | PaysprintCall::BillStatus | PaysprintCall::FetchBill => pages::BBPS,
        }
    }
}

/// What a documented code means for the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMeaning {
    /// The answer carries the transaction's state (`txn_status`, `status`), read by its own table.
    ReadStatus,
    /// Final success.
    FinalSuccess,
    /// Refused before anything was processed: fail now and refund.
    NotProcessed,
    /// Authentication refused: nothing was processed; fail now and refund.
    AuthRefused,
    /// Accepted and not final (the wallet deducted, or in progress): keep querying.
    Pending,
    /// Duplicate reference: hold for review (the upstream may be answering about another transaction).
    Duplicate,
    /// An upstream error that asks for a person: hold for review.
    Review,
    /// Fetchbill: the customer has no bill.
    NoBill,
    /// Refund OTP: sent to the remitter.
    OtpSent,
    /// Refund: confirmed; credit the partner, once.
    Refunded,
    /// Refund or OTP refused (bad OTP, validation, upstream down): no money moves; may be tried again.
    RefundRefused,
    /// Refund: not found or already refunded: no money moves; an operator looks.
    RefundUnknown,
}

impl CodeMeaning {
    /// The meaning as the docs' table says it.
    pub fn text(self) -> &'static str {
        match self {
            CodeMeaning::ReadStatus => "Answered → read the status field",
            CodeMeaning::FinalSuccess => "Final success",
            CodeMeaning::NotProcessed => "Final failure: not processed → fail now and refund",
            CodeMeaning::AuthRefused => "Auth refused: not processed → fail now and refund",
            CodeMeaning::Pending => "Pending (wallet deducted / in progress) → keep querying",
            CodeMeaning::Duplicate => "Duplicate reference → hold for review",
            CodeMeaning::Review => "Upstream error asking for a person → hold for review",
            CodeMeaning::NoBill => "No bill",
            CodeMeaning::OtpSent => "OTP sent to the remitter",
            CodeMeaning::Refunded => "Refund confirmed → credit the partner once",
            CodeMeaning::RefundRefused => "Refused, nothing moved → may be tried again",
            CodeMeaning::RefundUnknown => "Not found or already refunded → nothing credited, operator review",
        }
    }
}

/// One documented code of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRow {
    /// The call.
    pub call: PaysprintCall,
    /// The HTTP status Paysprint sends it with.
    pub http: u16,
    /// `response_code`.
    pub code: i64,
    /// The page's text.
    pub text: &'static str,
    /// What it means.
    pub meaning: CodeMeaning,
}

const fn row(call: PaysprintCall, http: u16, code: i64, text: &'static str, meaning: CodeMeaning) -> CodeRow {
    CodeRow { call, http, code, text, meaning }
}

/// Every documented code of every call. A code that arrives with another
/// HTTP status than its row's, or is not here, is undocumented: never final
/// (pending for a transaction, no bill for a fetch, refused for a refund).
pub const CODE_TABLE: &[CodeRow] = {
    use CodeMeaning::*;
    use PaysprintCall::*;
    &[
        row(Transact, 200, 1, "Transaction Successful.", ReadStatus),
        row(Transact, 200, 2, "IMPS is down. Wallet deducted successfully.", Pending),
        row(Transact, 200, 4, "IMPS Service is not active for given bank", Pending),
        row(Transact, 200, 5, "Unable to process.Wallet deducted successfully.", Pending),
        row(Transact, 200, 6, "IMPS is down. Wallet deducted successfully.", Pending),
        row(Transact, 401, 3, "(refusal named in the connector review; not on the page at hand)", Review),
        row(
            Transact,
            401,
            7,
            "Something went wrong.Please do not post any transaction before contacting admin.",
            Review,
        ),
        row(Transact, 401, 8, "IMPS of bank is down.", NotProcessed),
        row(Transact, 401, 11, "Monthly limit of remitter is over.", NotProcessed),
        row(
            Transact,
            401,
            12,
            "Pipe is not activated for the user Please activate the pipe before initiating transaction.",
            NotProcessed,
        ),
        row(
            Transact,
            401,
            13,
            "Insufficient fund in your account. Please topup user wallet before posting any transaction.",
            NotProcessed,
        ),
        row(Transact, 401, 14, "Selected Bank do not support IMPS type transaction.", NotProcessed),
        row(
            Transact,
            406,
            15,
            "Mobile Number is not allowed to do remittance or Remittance is not allowed in this account number.",
            NotProcessed,
        ),
        row(Transact, 406, 16, "Invalid Beneficiary Details.", NotProcessed),
        row(Transact, 406, 17, "Invalid Remitter Details", NotProcessed),
        row(Transact, 401, 18, "Charges not configured Please contact admin", NotProcessed),
        row(Transact, 406, 19, "Duplicate transaction reference number.", Duplicate),
        row(Transact, 406, 20, "Remittance is not allowed in this mobile number.", NotProcessed),
        row(Transact, 406, 21, "Validation Errors", NotProcessed),
        row(Transact, 401, 22, "DMT service is not active for this account.", NotProcessed),
        row(Transact, 412, 23, "Unable to process loging request.", AuthRefused),
        row(Transact, 401, 24, "Invalid JWT.", AuthRefused),
        row(Transact, 401, 25, "Authentication failed.", AuthRefused),
        row(QueryTransact, 200, 1, "Transaction found: txn_status (top level or under data)", ReadStatus),
        row(RefundOtp, 200, 1, "Refund Otp Successfully Sent.", OtpSent),
        row(RefundOtp, 200, 2, "Transaction not found or already refunded.", RefundUnknown),
        row(RefundOtp, 412, 3, "No record found.", RefundUnknown),
        row(RefundOtp, 406, 4, "Validations Error", RefundRefused),
        row(RefundOtp, 412, 5, "Unable to resend refund OTP request.", RefundRefused),
        row(RefundOtp, 401, 6, "Jwt Token Error.", AuthRefused),
        row(RefundOtp, 401, 7, "Authentication failed.", AuthRefused),
        row(Refund, 200, 1, "Transaction Successfully Refunded", Refunded),
        row(Refund, 200, 2, "Transaction not found or already refunded.", RefundUnknown),
        row(Refund, 200, 3, "Invalid OTP", RefundRefused),
        row(Refund, 200, 4, "No refund found", RefundUnknown),
        row(Refund, 200, 5, "Transaction not found", RefundUnknown),
        row(
            Refund,
            200,
            6,
            "Merchant is not activate to use DMT services. Please try again after some time.",
            RefundRefused,
        ),
        row(Refund, 200, 7, "MERCHANT ID NOT FOUND..", RefundRefused),
        row(Refund, 200, 8, "validation_errors (dynamic message related to validations)", RefundRefused),
        row(Refund, 200, 9, "DMT service or preference is not active for this account.", RefundRefused),
        row(Refund, 200, 10, "Unable to process Resend Refund Request", RefundRefused),
        row(Refund, 200, 11, "Invalid JWT token or token related errors", AuthRefused),
        row(Refund, 200, 12, "Authentication failed", AuthRefused),
        row(Refund, 200, 13, "DMT Bank4 service is down.", RefundRefused),
        row(PayBill, 200, 1, "Success", FinalSuccess),
        row(PayBill, 200, 2, "Pending", Pending),
        row(PayBill, 200, 0, "Refunded (failed, wallet credited)", NotProcessed),
        row(BillStatus, 200, 1, "Transaction found: data.status", ReadStatus),
        row(FetchBill, 200, 1, "Bill fetched: amount, name, duedate, bill_fetch", ReadStatus),
        row(FetchBill, 200, 0, "No bill", NoBill),
    ]
};

/// A transfer's documented `txn_status` values (querytransact, transact
/// under code 1, callbacks): what each means. `5` is payrail's own code for
/// "failed, refund to be made" (SPEC §4), never Paysprint's: undocumented.
pub const TXN_STATUS_TABLE: &[(i64, &str, CodeMeaning)] = &[
    (0, "Failed", CodeMeaning::NotProcessed),
    (1, "Success (final only with its UTR)", CodeMeaning::FinalSuccess),
    (2, "Pending / in process", CodeMeaning::Pending),
    (3, "Sent to bank", CodeMeaning::Pending),
    (4, "On hold at the upstream", CodeMeaning::Pending),
];

/// A bill payment's documented `data.status` values (bill status, callbacks).
pub const BILL_STATUS_TABLE: &[(i64, &str, CodeMeaning)] = &[
    (0, "Refunded (failed, wallet credited)", CodeMeaning::NotProcessed),
    (1, "Success", CodeMeaning::FinalSuccess),
    (2, "Pending", CodeMeaning::Pending),
];

/// The documented row for `code` of `call` sent with HTTP `http`.
pub fn code_row(call: PaysprintCall, http: u16, code: i64) -> Option<&'static CodeRow> {
    CODE_TABLE.iter().find(|row| row.call == call && row.http == http && row.code == code)
}

/// What a refund OTP (resend) answer means; `None`: undocumented (treat as refused, nothing moves).
pub fn refund_otp_meaning(http: u16, code: i64) -> Option<CodeMeaning> {
    code_row(PaysprintCall::RefundOtp, http, code).map(|row| row.meaning)
}

/// What a refund (claim) answer means; `None`: undocumented (nothing is
/// credited; only [`CodeMeaning::Refunded`] credits the partner).
pub fn refund_meaning(http: u16, code: i64) -> Option<CodeMeaning> {
    code_row(PaysprintCall::Refund, http, code).map(|row| row.meaning)
}

/// The code table as docs/UPSTREAM.md shows it (a test keeps the two the same).
pub fn code_table_markdown() -> String {
    let mut out =
        String::from("| Call | HTTP | Code | Paysprint's text | Meaning for payrail |\n|---|---|---|---|---|\n");
    for row in CODE_TABLE {
        let line =
            format!("| {} | {} | {} | {} | {} |\n", row.call.name(), row.http, row.code, row.text, row.meaning.text());
        out.push_str(&line);
    }
    out.push_str("\n| Field | Value | Text | Meaning for payrail |\n|---|---|---|---|\n");
    for (value, text, meaning) in TXN_STATUS_TABLE {
        out.push_str(&format!("| `txn_status` | {value} | {text} | {} |\n", meaning.text()));
    }
    for (value, text, meaning) in BILL_STATUS_TABLE {
        out.push_str(&format!("| bill `status` | {value} | {text} | {} |\n", meaning.text()));
    }
    out.push_str("\nPages:\n\n");
    let mut seen = Vec::new();
    for call in PaysprintCall::ALL {
        if !seen.contains(&call.page()) {
            seen.push(call.page());
        }
    }
    for page in seen {
        out.push_str(&format!("- <{page}>\n"));
    }
    out
}

/// What an answer is checked against: the transaction it should be about.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expected<'a> {
    /// The reference payrail gave the upstream.
    pub reference: &'a str,
    /// The amount.
    pub amount: Paise,
    /// The beneficiary account (transfers) or customer number (bills).
    pub account: &'a str,
}

impl Expected<'_> {
    /// Why an answer carrying these fields is not about the transaction, if it is not.
    fn mismatch(
        &self,
        reference: Option<&Scalar>,
        amount: Option<&Scalar>,
        account: Option<&Scalar>,
    ) -> Option<String> {
        if let Some(reference) = reference.filter(|r| !r.0.is_empty()) {
            if reference.0 != self.reference {
                return Some(format!(
                    "upstream answer's reference {:?} differs from {:?}",
                    reference.0, self.reference
                ));
            }
        }
        if let Some(amount) = amount.filter(|a| !a.0.is_empty()) {
            let theirs = Paise::parse(&amount.0).ok().or_else(|| {
                // A number with more decimals (`1000.000`) or a float's rendering.
                amount
                    .0
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| Paise::new((f * 100.0).round() as i64))
            });
            if theirs != Some(self.amount) {
                let shown = theirs.map_or_else(|| amount.0.clone(), Paise::to_decimal_string);
                return Some(format!(
                    "upstream answer's amount {shown} differs from {}",
                    self.amount.to_decimal_string()
                ));
            }
        }
        if let Some(account) = account.filter(|a| !a.0.is_empty()) {
            if !same_account(&account.0, self.account) {
                return Some(format!("upstream answer's account {:?} differs from the transaction's", account.0));
            }
        }
        None
    }
}

/// Whether an answer's account is the transaction's: equal, or equal in
/// the digits the answer shows when it masks the rest (`XXXXXX7890`).
fn same_account(theirs: &str, ours: &str) -> bool {
    if theirs == ours {
        return true;
    }
    let masked = |c: char| matches!(c, 'X' | 'x' | '*');
    theirs.len() == ours.len()
        && theirs.chars().any(masked)
        && theirs.chars().zip(ours.chars()).all(|(t, o)| masked(t) || t == o)
}

/// A JSON number or string, kept as text (`1`, `"1"`, `"UTR9"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "ScalarRepr")]
pub(super) struct Scalar(String);

#[derive(Deserialize)]
#[serde(untagged)]
enum ScalarRepr {
    Number(serde_json::Number),
    Text(String),
}

impl From<ScalarRepr> for Scalar {
    fn from(repr: ScalarRepr) -> Self {
        match repr {
            ScalarRepr::Number(n) => Scalar(n.to_string()),
            ScalarRepr::Text(s) => Scalar(s.trim().to_owned()),
        }
    }
}

impl Scalar {
    /// The value as a whole number, if it is one.
    pub(super) fn number(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// The text, or `None` when empty.
    fn non_empty(self) -> Option<String> {
        (!self.0.is_empty()).then_some(self.0)
    }
}

/// `null`, absent and `""` all mean "not known yet".
pub(super) fn known(value: Option<Scalar>) -> Option<String> {
    value.and_then(Scalar::non_empty)
}

/// What to record about an answer payrail could not place.
pub(super) fn unplaced(response_code: &Scalar, message: &Option<String>) -> String {
    format!("response_code {:?}: {}", response_code.0, message.as_deref().unwrap_or("no message"))
}

/// A transfer's `txn_status` ([`TXN_STATUS_TABLE`]); `5` and anything else
/// undocumented is unknown, never final.
fn dmt_report(txn_status: &Scalar, utr: Option<Scalar>) -> DmtUpstream {
    match txn_status.number() {
        Some(0) => DmtUpstream::Failed,
        Some(1) => DmtUpstream::Success { utr: known(utr) },
        Some(2) => DmtUpstream::InProcess,
        Some(3) => DmtUpstream::SentToBank,
        Some(4) => DmtUpstream::OnHold,
        _ => DmtUpstream::Unknown { detail: format!("txn_status {:?}", txn_status.0) },
    }
}

/// A bill payment's `status`: `"1"` paid, `"0"` failed, `"2"` pending.
fn bill_report(status: &Scalar, operator_id: Option<Scalar>) -> BillUpstream {
    match status.number() {
        Some(1) => BillUpstream::Success { operator_ref: known(operator_id) },
        Some(0) => BillUpstream::Failed,
        Some(2) => BillUpstream::Pending,
        _ => BillUpstream::Unknown { detail: format!("status {:?}", status.0) },
    }
}

/// The answer to a transfer.
#[derive(Debug, Deserialize)]
pub(super) struct TransactAnswer {
    #[serde(alias = "responsecode")]
    response_code: Scalar,
    txn_status: Option<Scalar>,
    utr: Option<Scalar>,
    referenceid: Option<Scalar>,
    amount: Option<Scalar>,
    #[serde(alias = "accno")]
    account: Option<Scalar>,
    message: Option<String>,
    /// Paysprint's own acknowledgement number, needed to claim a refund.
    #[serde(default)]
    ackno: Option<Scalar>,
}

/// What an answer's code means for a transfer, given its row (or none).
fn dmt_meaning(
    call: PaysprintCall,
    http: u16,
    code: &Scalar,
    message: &Option<String>,
) -> Result<CodeMeaning, DmtUpstream> {
    let row = code.number().and_then(|code| code_row(call, http, code));
    row.map(|row| row.meaning).ok_or_else(|| DmtUpstream::Unknown {
        detail: format!("undocumented answer (HTTP {http}, {}); pending", unplaced(code, message)),
    })
}

/// A documented answer that is not the transfer's state.
fn dmt_verdict(meaning: CodeMeaning, http: u16, code: &Scalar, message: &Option<String>) -> DmtUpstream {
    let seen = || format!("HTTP {http}, {}", unplaced(code, message));
    match meaning {
        CodeMeaning::NotProcessed | CodeMeaning::AuthRefused => DmtUpstream::Failed,
        CodeMeaning::Duplicate => {
            DmtUpstream::Review { reason: format!("duplicate reference at the upstream ({})", seen()) }
        }
        CodeMeaning::Review => DmtUpstream::Review { reason: format!("the upstream asks for a person ({})", seen()) },
        _ => DmtUpstream::Unknown { detail: format!("pending ({})", seen()) },
    }
}

impl TransactAnswer {
    /// Paysprint's `ackno`, whatever the code (empty: none).
    pub(super) fn upstream_ackno(&self) -> Option<String> {
        known(self.ackno.clone())
    }

    /// Read by the code table: code 1 (HTTP 200) carries `txn_status`
    /// (absent: in process), checked against the transfer; documented
    /// refusals fail it; code 19 and the errors asking for a person hold it
    /// for review; "wallet deducted" codes and anything undocumented (a
    /// code 0 included) are pending.
    pub(super) fn report(self, http: u16, expected: &Expected<'_>) -> DmtUpstream {
        let meaning = match dmt_meaning(PaysprintCall::Transact, http, &self.response_code, &self.message) {
            Ok(meaning) => meaning,
            Err(unknown) => return unknown,
        };
        if let Some(reason) = expected.mismatch(self.referenceid.as_ref(), self.amount.as_ref(), self.account.as_ref())
        {
            return DmtUpstream::Review { reason };
        }
        match meaning {
            CodeMeaning::ReadStatus => {
                self.txn_status.map_or(DmtUpstream::InProcess, |code| dmt_report(&code, self.utr))
            }
            other => dmt_verdict(other, http, &self.response_code, &self.message),
        }
    }
}

/// The answer to a transfer status query: `txn_status` at the top level or
/// under `data` (both shapes appear in Paysprint's material).
#[derive(Debug, Deserialize)]
pub(super) struct TransactQueryAnswer {
    #[serde(alias = "responsecode")]
    response_code: Scalar,
    data: Option<serde_json::Value>,
    message: Option<String>,
    #[serde(flatten)]
    top: TransactData,
}

#[derive(Debug, Default, Deserialize)]
struct TransactData {
    txn_status: Option<Scalar>,
    utr: Option<Scalar>,
    #[serde(alias = "refid")]
    referenceid: Option<Scalar>,
    amount: Option<Scalar>,
    #[serde(alias = "accno")]
    account: Option<Scalar>,
}

impl TransactQueryAnswer {
    /// Paysprint's `ackno` and whether it says it refunded the transfer
    /// (`refunded` `"1"`/`1`/`true`), read only from a code-1 answer, under
    /// `data` or at the top level (both shapes appear in Paysprint's
    /// material). Anything else is "not refunded".
    pub(super) fn refund_facts(&self, top: &serde_json::Value) -> (Option<String>, bool) {
        if self.response_code.number() != Some(1) {
            return (None, false);
        }
        let field = |name: &str| {
            let nested = self.data.as_ref().and_then(|d| d.get(name)).filter(|v| !v.is_null());
            nested.or_else(|| top.get(name).filter(|v| !v.is_null())).cloned()
        };
        let ackno = field("ackno").and_then(|v| serde_json::from_value::<Scalar>(v).ok()).and_then(Scalar::non_empty);
        let refunded = match field("refunded") {
            Some(serde_json::Value::Bool(b)) => b,
            Some(v) => serde_json::from_value::<Scalar>(v).ok().and_then(|s| s.number()) == Some(1),
            None => false,
        };
        (ackno, refunded)
    }

    /// Code 1 (HTTP 200): `txn_status` (under `data`, else at the top
    /// level), checked against the transfer; anything else (a transaction
    /// the upstream does not know included) is pending.
    pub(super) fn report(self, http: u16, expected: &Expected<'_>) -> Result<DmtUpstream, ProviderError> {
        let meaning = match dmt_meaning(PaysprintCall::QueryTransact, http, &self.response_code, &self.message) {
            Ok(meaning) => meaning,
            Err(unknown) => return Ok(unknown),
        };
        if meaning != CodeMeaning::ReadStatus {
            return Ok(dmt_verdict(meaning, http, &self.response_code, &self.message));
        }
        let nested = match self.data {
            Some(data @ serde_json::Value::Object(_)) => serde_json::from_value::<TransactData>(data)
                .map_err(|e| ProviderError::Garbage(format!("querytransact: data: {e}")))?,
            _ => TransactData::default(),
        };
        let data = if nested.txn_status.is_some() { nested } else { self.top };
        let txn_status = data
            .txn_status
            .ok_or_else(|| ProviderError::Garbage("querytransact: response_code 1 without txn_status".into()))?;
        if let Some(reason) = expected.mismatch(data.referenceid.as_ref(), data.amount.as_ref(), data.account.as_ref())
        {
            return Ok(DmtUpstream::Review { reason });
        }
        Ok(dmt_report(&txn_status, data.utr))
    }
}

/// Reads `data` of a code-1 answer; absent or unreadable is garbage.
fn data_of<T: serde::de::DeserializeOwned>(data: Option<serde_json::Value>, call: &str) -> Result<T, ProviderError> {
    let data = data.ok_or_else(|| ProviderError::Garbage(format!("{call}: response_code 1 without data")))?;
    serde_json::from_value(data).map_err(|e| ProviderError::Garbage(format!("{call}: data: {e}")))
}

/// `dmt/beneficiary/registerbeneficiary/benenameverify`: a penny drop.
#[derive(Debug, Serialize)]
pub(super) struct BeneNameVerifyRequest<'a> {
    pub mobile: &'a str,
    pub accno: &'a str,
    pub bankid: String,
    pub benename: &'a str,
    pub referenceid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pincode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<&'a str>,
    /// `DD-MM-YYYY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dob: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gst_state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bene_id: Option<String>,
}

/// The answer to a penny drop: the holder's name in `data.benename` (or
/// `benename`) under code 1.
#[derive(Debug, Deserialize)]
pub(super) struct BeneNameVerifyAnswer {
    response_code: Scalar,
    benename: Option<String>,
    data: Option<serde_json::Value>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BeneNameData {
    benename: Option<String>,
}

impl BeneNameVerifyAnswer {
    /// Code 1 with a name: the account's holder. Code 1 without one is
    /// garbage; any other code, an account the bank does not know when the
    /// message says so, else a failure (the fee goes back).
    pub(super) fn holder(self) -> Result<AccountHolder, ProviderError> {
        if self.response_code.number() != Some(1) {
            let message = self.message.clone().unwrap_or_default().to_lowercase();
            if message.contains("invalid account") || message.contains("account not found") {
                return Ok(AccountHolder::NoSuchAccount);
            }
            return Err(ProviderError::Unavailable(format!(
                "benenameverify: {}",
                unplaced(&self.response_code, &self.message)
            )));
        }
        let from_data = match self.data {
            Some(data) => serde_json::from_value::<BeneNameData>(data).ok().and_then(|d| d.benename),
            None => None,
        };
        let name = from_data.or(self.benename).map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        name.map(AccountHolder::Named)
            .ok_or_else(|| ProviderError::Garbage("benenameverify: response_code 1 without benename".into()))
    }
}

/// The answer to a bill payment.
#[derive(Debug, Deserialize)]
pub(super) struct PayBillAnswer {
    status: Option<bool>,
    #[serde(alias = "responsecode")]
    response_code: Scalar,
    operatorid: Option<Scalar>,
    message: Option<String>,
}

impl PayBillAnswer {
    /// Read by the code table: code 1 paid, 2 pending, 0 with `status:
    /// false` refused (refunded at once). An answer whose message says
    /// pending is pending whatever its code: a failure is refunded at once,
    /// so it must be certain. Anything undocumented is pending.
    pub(super) fn report(self, http: u16) -> BillUpstream {
        let says_pending = self.message.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains("pending"));
        let row = self.response_code.number().and_then(|code| code_row(PaysprintCall::PayBill, http, code));
        match row.map(|row| row.meaning) {
            _ if says_pending => BillUpstream::Pending,
            Some(CodeMeaning::FinalSuccess) => BillUpstream::Success { operator_ref: known(self.operatorid) },
            Some(CodeMeaning::Pending) => BillUpstream::Pending,
            Some(CodeMeaning::NotProcessed) if self.status == Some(false) => BillUpstream::Failed,
            _ => BillUpstream::Unknown {
                detail: format!(
                    "undocumented answer (HTTP {http}, {}); pending",
                    unplaced(&self.response_code, &self.message)
                ),
            },
        }
    }
}

/// The answer to a bill status query.
#[derive(Debug, Deserialize)]
pub(super) struct BillStatusAnswer {
    #[serde(alias = "responsecode")]
    response_code: Scalar,
    data: Option<serde_json::Value>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BillData {
    status: Scalar,
    operatorid: Option<Scalar>,
    #[serde(alias = "refid")]
    referenceid: Option<Scalar>,
    amount: Option<Scalar>,
    canumber: Option<Scalar>,
}

impl BillStatusAnswer {
    /// Code 1 (HTTP 200): `data.status`, checked against the payment (a
    /// mismatch changes nothing: the payment stays pending, for review);
    /// anything else is pending.
    pub(super) fn report(self, http: u16, expected: &Expected<'_>) -> Result<BillUpstream, ProviderError> {
        let row = self.response_code.number().and_then(|code| code_row(PaysprintCall::BillStatus, http, code));
        if row.map(|row| row.meaning) != Some(CodeMeaning::ReadStatus) {
            let detail =
                format!("undocumented answer (HTTP {http}, {}); pending", unplaced(&self.response_code, &self.message));
            return Ok(BillUpstream::Unknown { detail });
        }
        let data: BillData = data_of(self.data, "bill status")?;
        if let Some(reason) = expected.mismatch(data.referenceid.as_ref(), data.amount.as_ref(), data.canumber.as_ref())
        {
            return Ok(BillUpstream::Unknown { detail: format!("not applied: {reason}") });
        }
        Ok(bill_report(&data.status, data.operatorid))
    }
}

/// The answer to a bill fetch. Only code 1 carries the bill's fields.
#[derive(Debug, Deserialize)]
pub(super) struct FetchBillAnswer {
    status: Option<bool>,
    /// Absent in AOPay's copy of the 200 answer: then `status` decides.
    #[serde(alias = "responsecode")]
    response_code: Option<Scalar>,
    name: Option<String>,
    amount: Option<Scalar>,
    duedate: Option<String>,
    bill_fetch: Option<BillFetch>,
    message: Option<String>,
}

/// fetchbill's `bill_fetch` (its `billAmount` repeats the answer's
/// `amount`, which is the one read). A missing `acceptPartPay` is read as
/// `false` (the exact amount is then required) and a missing
/// `acceptPayment` as `true`: guessing "part payment allowed" could pay a
/// wrong amount, the other guesses only refuse.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BillFetch {
    #[serde(rename = "billnetamount")]
    bill_net_amount: Option<Scalar>,
    #[serde(rename = "billdate")]
    bill_date: Option<Scalar>,
    due_date: Option<Scalar>,
    accept_payment: Option<bool>,
    accept_part_pay: Option<bool>,
    cell_number: Option<Scalar>,
    user_name: Option<Scalar>,
}

fn money(field: &str, value: &Scalar) -> Result<Paise, ProviderError> {
    Paise::parse(&value.0).map_err(|e| ProviderError::Garbage(format!("fetchbill: {field} {:?} {e}", value.0)))
}

/// Absent, `null` and `""` are all "not given".
fn given(value: Option<Scalar>) -> Option<String> {
    value.and_then(Scalar::non_empty)
}

impl FetchBillAnswer {
    /// Read by the code table: code 1 (or no code and `status: true`) is the
    /// bill, with its amount, name and due date (`duedate` or
    /// `bill_fetch.dueDate`) and `bill_fetch` when given; code 0 (or
    /// `status: false`) is no bill. Anything else cannot be read.
    pub(super) fn bill(self) -> Result<FetchedBill, ProviderError> {
        let code = self.response_code.as_ref().and_then(Scalar::number);
        match (code, self.status) {
            (Some(1), Some(true) | None) | (None, Some(true)) => {}
            (Some(0), _) | (None, Some(false)) | (Some(1), Some(false)) => return Err(ProviderError::NoBill),
            _ => {
                let code = self.response_code.clone().unwrap_or(Scalar(String::new()));
                return Err(ProviderError::Garbage(format!("fetchbill: {}", unplaced(&code, &self.message))));
            }
        }
        let missing = |field: &str| ProviderError::Garbage(format!("fetchbill: no {field}"));
        let amount = money("amount", &self.amount.ok_or_else(|| missing("amount"))?)?;
        let bill = self.bill_fetch.unwrap_or_default();
        let net_amount = match &bill.bill_net_amount {
            Some(net) if !net.0.is_empty() => money("billnetamount", net)?,
            _ => amount,
        };
        let customer_name = self.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| missing("name"))?;
        let due_date =
            given(bill.due_date).or(self.duedate.filter(|d| !d.trim().is_empty())).ok_or_else(|| missing("duedate"))?;
        Ok(FetchedBill {
            amount,
            net_amount,
            bill_date: given(bill.bill_date),
            due_date,
            accept_payment: bill.accept_payment.unwrap_or(true),
            accept_part_pay: bill.accept_part_pay.unwrap_or(false),
            cell_number: given(bill.cell_number),
            user_name: given(bill.user_name).unwrap_or_else(|| customer_name.clone()),
            customer_name,
        })
    }
}

/// A status callback's body: `param` and its signed copy `param_inc` (see
/// `signed_param`).
#[derive(Debug, Deserialize)]
pub(super) struct CallbackBody {
    event: String,
    /// Kept as sent, to be compared with the signed copy.
    pub param: serde_json::Value,
    /// The signed copy of `param`; Paysprint's pages also spell it `param_enc`.
    #[serde(alias = "param_enc")]
    pub param_inc: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CallbackParam {
    referenceid: Scalar,
    txn_status: Option<Scalar>,
    utr: Option<Scalar>,
    status: Option<Scalar>,
    operatorid: Option<Scalar>,
}

/// Parses a callback's body, not yet checked against its signed copy.
pub(super) fn parse_callback_body(body: &[u8]) -> Result<CallbackBody, CallbackError> {
    serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))
}

impl CallbackBody {
    /// As [`CallbackBody::report`], read from `claims` (the verified signed
    /// copy of `param`) in place of the plain `param`.
    pub(super) fn report_from_claims(
        &self,
        claims: serde_json::Value,
    ) -> Result<(String, UpstreamReport), CallbackError> {
        CallbackBody { event: self.event.clone(), param: claims, param_inc: None }.report()
    }

    /// What the callback says: event `DMT` carries `txn_status`, event `BBPS`
    /// carries `status`; case does not matter. Returns the reference and the report.
    pub(super) fn report(&self) -> Result<(String, UpstreamReport), CallbackError> {
        let param: CallbackParam =
            serde_json::from_value(self.param.clone()).map_err(|e| CallbackError::Malformed(format!("param: {e}")))?;
        let missing = |field: &str| CallbackError::Malformed(format!("{} callback without {field}", self.event));
        let upstream_ref = param.referenceid.non_empty().ok_or_else(|| missing("referenceid"))?;
        let report = match self.event.to_ascii_uppercase().as_str() {
            "DMT" => {
                UpstreamReport::Dmt(dmt_report(&param.txn_status.ok_or_else(|| missing("txn_status"))?, param.utr))
            }
            "BBPS" => {
                UpstreamReport::Bill(bill_report(&param.status.ok_or_else(|| missing("status"))?, param.operatorid))
            }
            other => return Err(CallbackError::Malformed(format!("unknown event {other:?}"))),
        };
        Ok((upstream_ref, report))
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    fn read_callback_body(body: &[u8]) -> Result<(String, UpstreamReport), CallbackError> {
        parse_callback_body(body)?.report()
    }

    fn read<T: DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    const EXPECTED: Expected<'static> =
        Expected { reference: "PRD7", amount: Paise::new(100_000), account: "1234567890" };

    fn transact_at(http: u16, value: serde_json::Value) -> DmtUpstream {
        read::<TransactAnswer>(value).report(http, &EXPECTED)
    }

    fn transact(value: serde_json::Value) -> DmtUpstream {
        transact_at(200, value)
    }

    fn query_answer(value: serde_json::Value) -> DmtUpstream {
        read::<TransactQueryAnswer>(value).report(200, &EXPECTED).unwrap_or_else(|e| panic!("{e}"))
    }

    fn query(txn_status: serde_json::Value, utr: serde_json::Value) -> DmtUpstream {
        query_answer(json!({"status": true, "response_code": 1, "data": {"txn_status": txn_status, "utr": utr}}))
    }

    #[test]
    fn a_penny_drop_answer_names_the_holder_or_says_why_not() {
        let holder = |v: serde_json::Value| read::<BeneNameVerifyAnswer>(v).holder();
        let named = holder(json!({"status": true, "response_code": 1, "data": {"benename": "ROHIT KUMAR "}}));
        assert_eq!(named.ok(), Some(AccountHolder::Named("ROHIT KUMAR".into())));
        let top = holder(json!({"status": true, "response_code": "1", "benename": "ASHA"}));
        assert_eq!(top.ok(), Some(AccountHolder::Named("ASHA".into())));
        let missing = holder(json!({"status": false, "response_code": 0, "message": "Invalid account number"}));
        assert_eq!(missing.ok(), Some(AccountHolder::NoSuchAccount));
        assert!(matches!(holder(json!({"response_code": 1})), Err(ProviderError::Garbage(_))));
        let down = holder(json!({"status": false, "response_code": 2, "message": "Bank server down"}));
        assert!(matches!(down, Err(ProviderError::Unavailable(_))));
    }

    #[test]
    fn every_documented_txn_status_maps_and_numbers_may_be_strings() {
        let utr = || json!("UTR1");
        assert_eq!(query(json!(0), json!(null)), DmtUpstream::Failed);
        assert_eq!(query(json!(1), utr()), DmtUpstream::Success { utr: Some("UTR1".into()) });
        assert_eq!(query(json!("1"), utr()), DmtUpstream::Success { utr: Some("UTR1".into()) });
        assert_eq!(query(json!("2"), json!(null)), DmtUpstream::InProcess);
        assert_eq!(query(json!(3), json!(null)), DmtUpstream::SentToBank);
        assert_eq!(query(json!(" 4 "), json!(null)), DmtUpstream::OnHold);
        // 5 is payrail's own code, not Paysprint's: never final.
        assert!(matches!(query(json!(5), json!(null)), DmtUpstream::Unknown { .. }));
    }

    #[test]
    fn a_query_answer_is_read_at_the_top_level_or_under_data() {
        let top = query_answer(json!({"status": true, "response_code": 1, "txn_status": 1, "utr": "U5",
                                      "referenceid": "PRD7", "amount": "1000.00"}));
        assert_eq!(top, DmtUpstream::Success { utr: Some("U5".into()) });
        let nested =
            query_answer(json!({"status": true, "response_code": 1, "data": {"txn_status": "3", "refid": "PRD7"}}));
        assert_eq!(nested, DmtUpstream::SentToBank);
    }

    #[test]
    fn an_answer_about_another_reference_amount_or_account_is_held_for_review() {
        let amount =
            query_answer(json!({"response_code": 1, "data": {"txn_status": 1, "utr": "U", "amount": "500.00"}}));
        assert_eq!(
            amount,
            DmtUpstream::Review { reason: "upstream answer's amount 500.00 differs from 1000.00".into() }
        );
        let reference = transact(json!({"status": true, "response_code": 1, "txn_status": 1, "referenceid": "PRD8"}));
        assert!(matches!(reference, DmtUpstream::Review { reason } if reason.contains("reference")));
        let account = query_answer(json!({"response_code": 1, "data": {"txn_status": 1, "account": "1234567899"}}));
        assert!(matches!(account, DmtUpstream::Review { reason } if reason.contains("account")));
        // A masked account that agrees with the transfer's, and an amount as a number, are the same.
        let masked = query_answer(
            json!({"response_code": 1, "data": {"txn_status": 2, "account": "XXXXXX7890", "amount": 1000}}),
        );
        assert_eq!(masked, DmtUpstream::InProcess);
    }

    #[test]
    fn every_row_of_the_code_table_is_read_as_it_says() {
        for row in CODE_TABLE.iter().filter(|r| r.call == PaysprintCall::Transact) {
            let answer = json!({"status": row.code == 1, "response_code": row.code, "message": row.text});
            let report = transact_at(row.http, answer.clone());
            let expected_ok = match row.meaning {
                CodeMeaning::ReadStatus => report == DmtUpstream::InProcess,
                CodeMeaning::NotProcessed | CodeMeaning::AuthRefused => report == DmtUpstream::Failed,
                CodeMeaning::Duplicate | CodeMeaning::Review => matches!(report, DmtUpstream::Review { .. }),
                CodeMeaning::Pending => matches!(report, DmtUpstream::Unknown { .. }),
                _ => false,
            };
            assert!(expected_ok, "{row:?} → {report:?}");
            // The same code with another HTTP status is undocumented: pending.
            let other = if row.http == 200 { 401 } else { 200 };
            assert!(matches!(transact_at(other, answer), DmtUpstream::Unknown { .. }), "{row:?} as {other}");
        }
        assert_eq!(refund_meaning(200, 1), Some(CodeMeaning::Refunded));
        assert_eq!(refund_meaning(200, 3), Some(CodeMeaning::RefundRefused));
        assert_eq!(refund_meaning(401, 1), None);
        assert_eq!(refund_otp_meaning(200, 1), Some(CodeMeaning::OtpSent));
        assert_eq!(refund_otp_meaning(412, 3), Some(CodeMeaning::RefundUnknown));
    }

    #[test]
    fn docs_upstream_carries_the_code_table() {
        let docs = include_str!("../../../../../../docs/UPSTREAM.md");
        assert!(
            docs.contains(&code_table_markdown()),
            "docs/UPSTREAM.md's code table differs from CODE_TABLE:\n{}",
            code_table_markdown()
        );
    }

    #[test]
    fn a_success_without_a_utr_has_none_and_unknown_codes_are_never_final() {
        assert_eq!(query(json!(1), json!("")), DmtUpstream::Success { utr: None });
        assert_eq!(query(json!(1), json!(null)), DmtUpstream::Success { utr: None });
        for strange in [json!(9), json!("-1"), json!("1.0"), json!("x"), json!(1.5)] {
            assert!(matches!(query(strange.clone(), json!(null)), DmtUpstream::Unknown { .. }), "{strange}");
        }
    }

    #[test]
    fn a_transfer_submit_is_failed_only_by_a_documented_refusal() {
        let accepted = transact(json!({"status": true, "response_code": 1, "txn_status": 3, "message": "ok"}));
        assert_eq!(accepted, DmtUpstream::SentToBank);
        let silent = transact(json!({"status": true, "response_code": "1", "message": "ok"}));
        assert_eq!(silent, DmtUpstream::InProcess);
        let refused = transact_at(401, json!({"status": false, "response_code": 13, "message": "Insufficient fund"}));
        assert_eq!(refused, DmtUpstream::Failed);
        let duplicate = transact_at(406, json!({"status": false, "responsecode": 19, "message": "Duplicate"}));
        assert!(matches!(duplicate, DmtUpstream::Review { .. }));
        // Code 0 with status false is not on Paysprint's page: pending.
        for other in [
            json!({"status": true, "response_code": 0}),
            json!({"status": false, "response_code": 0}),
            json!({"status": false, "response_code": 77}),
        ] {
            assert!(matches!(transact(other.clone()), DmtUpstream::Unknown { .. }), "{other}");
        }
    }

    #[test]
    fn a_status_query_that_is_not_code_1_is_unknown_whatever_its_data() {
        let not_found = json!({"status": false, "response_code": 0, "data": [], "message": "Transaction not found"});
        let report = read::<TransactQueryAnswer>(not_found).report(200, &EXPECTED).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(report, DmtUpstream::Unknown { detail } if detail.contains("not found")));
        let no_data = read::<TransactQueryAnswer>(json!({"status": true, "response_code": 1})).report(200, &EXPECTED);
        assert!(matches!(no_data, Err(ProviderError::Garbage(_))));
    }

    #[test]
    fn an_answer_without_a_response_code_cannot_be_read() {
        assert!(serde_json::from_value::<TransactAnswer>(json!({"status": true, "txn_status": 1})).is_err());
        assert!(serde_json::from_value::<PayBillAnswer>(json!({"status": true, "response_code": true})).is_err());
    }

    #[test]
    fn a_bill_submit_maps_paid_refused_pending_and_unknown() {
        let paybill = |value| read::<PayBillAnswer>(value).report(200);
        assert_eq!(
            paybill(json!({"status": true, "response_code": 1, "operatorid": "OP7"})),
            BillUpstream::Success { operator_ref: Some("OP7".into()) }
        );
        assert_eq!(paybill(json!({"status": false, "response_code": 0, "message": "Invalid"})), BillUpstream::Failed);
        assert_eq!(paybill(json!({"status": true, "response_code": "2"})), BillUpstream::Pending);
        assert_eq!(
            paybill(json!({"status": true, "response_code": 5, "message": "Txn PENDING"})),
            BillUpstream::Pending
        );
        assert_eq!(paybill(json!({"status": false, "response_code": 0, "message": "pending"})), BillUpstream::Pending);
        assert!(matches!(paybill(json!({"status": true, "response_code": 5})), BillUpstream::Unknown { .. }));
        // Code 0 with status true, or with another HTTP status, is not a documented refusal.
        assert!(matches!(paybill(json!({"status": true, "response_code": 0})), BillUpstream::Unknown { .. }));
        let as_401 = read::<PayBillAnswer>(json!({"status": false, "response_code": 0})).report(401);
        assert!(matches!(as_401, BillUpstream::Unknown { .. }));
    }

    #[test]
    fn a_bill_status_maps_its_three_codes_and_nothing_else() {
        let status = |code: serde_json::Value| {
            let answer = json!({"status": true, "response_code": 1,
                                "data": {"status": code, "operatorid": "OP1", "refunded": "0", "refid": "PRD7"}});
            read::<BillStatusAnswer>(answer).report(200, &EXPECTED).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(status(json!("1")), BillUpstream::Success { operator_ref: Some("OP1".into()) });
        assert_eq!(status(json!(0)), BillUpstream::Failed);
        assert_eq!(status(json!("2")), BillUpstream::Pending);
        assert!(matches!(status(json!("3")), BillUpstream::Unknown { .. }));
        let unknown = read::<BillStatusAnswer>(json!({"status": false, "response_code": 0})).report(200, &EXPECTED);
        assert!(matches!(unknown, Ok(BillUpstream::Unknown { .. })));
    }

    #[test]
    fn a_fetched_bill_needs_every_field_and_code_0_is_no_bill() {
        let full = json!({"status": true, "response_code": 1, "name": "Asha", "amount": "1234.5",
                          "duedate": "2026-01-20", "bill_fetch": {"billAmount": "1234.5", "billnetamount": "1200.0",
                          "billdate": "01Jan2026", "dueDate": "2026-01-20", "acceptPayment": true,
                          "acceptPartPay": true, "cellNumber": "9812345678", "userName": "ASHA"}});
        let bill = read::<FetchBillAnswer>(full.clone()).bill().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((bill.amount, bill.net_amount), (Paise::new(123_450), Paise::new(120_000)));
        assert_eq!(
            (bill.bill_date.as_deref(), bill.accept_part_pay, bill.user_name.as_str()),
            (Some("01Jan2026"), true, "ASHA")
        );
        // Without bill_fetch, or without response_code (AOPay's copy of the
        // answer has none), it is still the bill; without an amount it is not.
        let mut partial = full.clone();
        partial["bill_fetch"] = json!(null);
        let bill = read::<FetchBillAnswer>(partial).bill().unwrap_or_else(|e| panic!("{e}"));
        assert!(!bill.accept_part_pay && bill.due_date == "2026-01-20" && bill.user_name == "Asha");
        let mut no_code = full.clone();
        no_code.as_object_mut().map(|o| o.remove("response_code"));
        assert!(read::<FetchBillAnswer>(no_code).bill().is_ok());
        let mut no_amount = full.clone();
        no_amount["amount"] = json!(null);
        assert!(matches!(read::<FetchBillAnswer>(no_amount).bill(), Err(ProviderError::Garbage(_))));
        let none = json!({"status": false, "response_code": 0, "message": "No bill"});
        assert!(matches!(read::<FetchBillAnswer>(none).bill(), Err(ProviderError::NoBill)));
        // Without acceptPartPay the exact amount is required.
        let mut silent = full;
        silent["bill_fetch"] = json!({"billdate": "01Jan2026"});
        let bill = read::<FetchBillAnswer>(silent).bill().unwrap_or_else(|e| panic!("{e}"));
        assert!(!bill.accept_part_pay && bill.accept_payment && bill.net_amount == bill.amount);
        assert_eq!((bill.cell_number, bill.user_name.as_str()), (None, "Asha"));
    }

    #[test]
    fn callback_bodies_map_like_status_answers_and_events_ignore_case() {
        let dmt = json!({"event": "dmt", "param": {"referenceid": "PRD7", "txn_status": "1", "utr": "U1"}});
        let (reference, report) = read_callback_body(dmt.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reference, "PRD7");
        assert_eq!(report, UpstreamReport::Dmt(DmtUpstream::Success { utr: Some("U1".into()) }));
        let bill = json!({"event": "BBPS", "param": {"referenceid": "PRB3", "status": "0", "operatorid": null}});
        let (_, report) = read_callback_body(bill.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report, UpstreamReport::Bill(BillUpstream::Failed));
    }

    #[test]
    fn unreadable_callback_bodies_are_malformed() {
        for body in [
            "not json".to_owned(),
            json!({"event": "RECHARGE", "param": {"referenceid": "PRD1", "txn_status": 1}}).to_string(),
            json!({"event": "DMT", "param": {"referenceid": "PRD1", "status": "1"}}).to_string(),
            json!({"event": "BBPS", "param": {"referenceid": "", "status": "1"}}).to_string(),
            json!({"event": "DMT"}).to_string(),
        ] {
            assert!(matches!(read_callback_body(body.as_bytes()), Err(CallbackError::Malformed(_))), "{body}");
        }
    }
}

/// `dmt/kyc/remitter/queryremitter/kyc`: a new remitter's biometric e-KYC.
/// Paysprint's page for it was not at hand: the path follows its DMT
/// layout and the fields its other calls' style (docs/UPSTREAM.md says so).
#[derive(Serialize)]
pub(super) struct RemitterEkycRequest<'a> {
    pub mobile: &'a str,
    pub lat: &'a str,
    pub long: &'a str,
    pub aadhaar_number: &'a str,
    /// The PID data, as the fingerprint device gave it.
    pub data: &'a str,
    /// `2`: a fingerprint, not an iris scan.
    pub is_iris: i64,
}

/// The answer to an e-KYC: code 1 with `data.ekyc_id` when verified.
#[derive(Debug, Deserialize)]
pub(super) struct RemitterEkycAnswer {
    status: Option<bool>,
    response_code: Scalar,
    message: Option<String>,
    data: Option<EkycData>,
}

#[derive(Debug, Deserialize)]
struct EkycData {
    ekyc_id: Option<Scalar>,
}

impl RemitterEkycAnswer {
    /// Code 1 with an id: verified. Code 0 with `status: false`: refused,
    /// with the upstream's message. Anything else: not an answer.
    pub(super) fn outcome(self) -> Result<crate::services::upstream::provider::EkycOutcome, ProviderError> {
        use crate::services::upstream::provider::EkycOutcome;
        match self.response_code.number() {
            Some(1) => {
                let id = known(self.data.and_then(|d| d.ekyc_id));
                let id = id.ok_or_else(|| ProviderError::Garbage("e-KYC verified without an ekyc_id".into()))?;
                Ok(EkycOutcome::Verified { upstream_id: id })
            }
            Some(0) if self.status == Some(false) => {
                Ok(EkycOutcome::Refused { reason: self.message.unwrap_or_else(|| "e-KYC refused".into()) })
            }
            _ => Err(ProviderError::Garbage(unplaced(&self.response_code, &self.message))),
        }
    }
}

/// `dmt/refund/refund/resendotp`: the remitter gets the refund OTP (again).
#[derive(Debug, Serialize)]
pub(super) struct RefundOtpRequest<'a> {
    pub referenceid: &'a str,
    pub ackno: &'a str,
}

/// `dmt/refund/refund/`: claims the refund with the remitter's OTP.
#[derive(Debug, Serialize)]
pub(super) struct RefundRequest<'a> {
    pub referenceid: &'a str,
    pub ackno: &'a str,
    pub otp: &'a str,
}

/// The answer to either refund call (HTTP 200 or 4xx alike).
#[derive(Debug, Deserialize)]
pub(super) struct RefundAnswer {
    status: Option<bool>,
    response_code: Scalar,
    message: Option<String>,
}

impl RefundAnswer {
    fn message(&self) -> String {
        self.message.clone().unwrap_or_else(|| format!("response_code {:?}", self.response_code.0))
    }

    /// What a refund OTP answer means, by the code table's refund-OTP rows
    /// (the code with the HTTP status it came with): sent; nothing to refund
    /// (not found or refunded already); refused. Token and authentication
    /// refusals and undocumented answers are no answer about the transfer.
    pub(super) fn otp_outcome(self, http: u16) -> Result<RefundOtpOutcome, ProviderError> {
        let message = self.message();
        let meaning = self.response_code.number().and_then(|code| refund_otp_meaning(http, code));
        match meaning {
            Some(CodeMeaning::OtpSent) if self.status != Some(false) => Ok(RefundOtpOutcome::Sent),
            Some(CodeMeaning::RefundUnknown) => Ok(RefundOtpOutcome::NotRefundable { message }),
            Some(CodeMeaning::RefundRefused) => Ok(RefundOtpOutcome::Refused { message }),
            _ => Err(ProviderError::Unavailable(format!(
                "refund OTP: HTTP {http}: {}",
                unplaced(&self.response_code, &self.message)
            ))),
        }
    }

    /// What a refund claim answer means, by the code table's refund rows:
    /// only the documented confirmation (code 1, `status` true) refunds; a
    /// "not found or already refunded" may hide an earlier success (the
    /// status query decides); anything else, undocumented answers included,
    /// refuses it and nothing is credited.
    pub(super) fn claim_outcome(self, http: u16) -> RefundClaimOutcome {
        let message = self.message();
        let meaning = self.response_code.number().and_then(|code| refund_meaning(http, code));
        match meaning {
            Some(CodeMeaning::Refunded) if self.status == Some(true) => RefundClaimOutcome::Refunded,
            Some(CodeMeaning::RefundUnknown) => RefundClaimOutcome::NotFoundOrRefunded { message },
            _ => RefundClaimOutcome::Refused { message },
        }
    }
}

#[cfg(test)]
mod refund_tests {
    use super::*;

    fn answer(value: serde_json::Value) -> RefundAnswer {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_code_1_with_status_true_is_a_refund() {
        let claim = |v| answer(v).claim_outcome(200);
        let refunded = serde_json::json!({"status": true, "response_code": 1, "message": "ok"});
        assert_eq!(claim(refunded.clone()), RefundClaimOutcome::Refunded);
        assert!(
            matches!(answer(refunded).claim_outcome(401), RefundClaimOutcome::Refused { .. }),
            "a code with an HTTP status the page does not give it is undocumented"
        );
        for not in [
            serde_json::json!({"status": false, "response_code": 1, "message": "?"}),
            serde_json::json!({"response_code": "1", "message": "no status"}),
            serde_json::json!({"status": false, "response_code": 3, "message": "Invalid OTP"}),
            serde_json::json!({"status": false, "response_code": 13, "message": "DMT Bank4 service is down."}),
            serde_json::json!({"status": true, "response_code": 77, "message": "?"}),
        ] {
            assert!(matches!(claim(not.clone()), RefundClaimOutcome::Refused { .. }), "{not}");
        }
        // "Not found or already refunded", "no refund found", "not found":
        // an earlier claim may have gone through; the status query decides.
        for code in ["2", "4", "5"] {
            let maybe = serde_json::json!({"status": false, "response_code": code, "message": "?"});
            assert!(matches!(claim(maybe), RefundClaimOutcome::NotFoundOrRefunded { .. }), "{code}");
        }
    }

    #[test]
    fn refund_otp_codes_map_as_the_code_table_says() {
        let otp = |code: i64, http: u16| {
            answer(serde_json::json!({"status": code == 1, "response_code": code})).otp_outcome(http)
        };
        assert_eq!(otp(1, 200).ok(), Some(RefundOtpOutcome::Sent));
        assert!(matches!(otp(2, 200), Ok(RefundOtpOutcome::NotRefundable { .. })));
        assert!(matches!(otp(3, 412), Ok(RefundOtpOutcome::NotRefundable { .. })));
        assert!(matches!(otp(4, 406), Ok(RefundOtpOutcome::Refused { .. })));
        assert!(matches!(otp(5, 412), Ok(RefundOtpOutcome::Refused { .. })));
        for (code, http) in [(6, 401), (7, 401), (0, 200), (99, 200), (4, 200), (1, 401)] {
            assert!(otp(code, http).is_err(), "{code} as HTTP {http}");
        }
    }

    #[test]
    fn a_query_says_refunded_only_under_code_1_in_either_shape() {
        let facts = |v: serde_json::Value| {
            let parsed: TransactQueryAnswer = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}"));
            parsed.refund_facts(&v)
        };
        let nested = serde_json::json!({"response_code": 1, "data": {"txn_status": 0, "ackno": 77, "refunded": "1"}});
        assert_eq!(facts(nested), (Some("77".into()), true));
        let top = serde_json::json!({"response_code": 1, "txn_status": 0, "ackno": "78", "refunded": 0});
        assert_eq!(facts(top), (Some("78".into()), false));
        let unknown = serde_json::json!({"response_code": 2, "data": {"ackno": 79, "refunded": 1}});
        assert_eq!(facts(unknown), (None, false));
    }
}
