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

mod codes;
pub use codes::*;

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
mod tests;

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
mod refund_tests;
