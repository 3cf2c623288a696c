//! The bodies of the two status endpoints, as the AOPay documents show them.
//! Field order in these structs is the order on the wire.

use serde::{Deserialize, Serialize};

/// `POST /api/AOP/DMTV1/TransactionStatus` request.
#[derive(Debug, Serialize)]
pub struct DmtStatusRequest<'a> {
    /// The partner's reference (spelt as documented).
    #[serde(rename = "ReferanceID")]
    pub referance_id: &'a str,
    /// The partner's registration id.
    #[serde(rename = "RegistrationID")]
    pub registration_id: &'a str,
}

/// `POST /api/AOP/BillPaymentStatus` request.
#[derive(Debug, Serialize)]
pub struct BillStatusRequest<'a> {
    /// The partner's reference.
    pub referenceid: &'a str,
    /// The partner's registration id.
    #[serde(rename = "RegistrationID")]
    pub registration_id: &'a str,
}

/// A found DMT transfer (HTTP 200, `response_code` 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmtStatusBody {
    /// Always `true` here.
    pub status: bool,
    /// Always 1 here.
    pub response_code: i64,
    /// The bank's reference, once known.
    pub utr: Option<String>,
    /// The amount: `"100"` or `"1234.50"`.
    pub amount: String,
    /// payrail's id for the transfer.
    pub ackno: String,
    /// The partner's reference.
    pub referenceid: String,
    /// The beneficiary account.
    pub account: String,
    /// `"0"`..`"5"`, see SPEC §4.
    pub txn_status: String,
    /// The message for `txn_status`.
    pub message: String,
    /// Charges, two decimals each.
    pub customercharge: String,
    /// GST inside the charge.
    pub gst: String,
    /// As documented; defaults to the GST.
    pub discount: String,
    /// TDS on the commission.
    pub tds: String,
    /// Commission after TDS.
    pub netcommission: String,
    /// When refunded, India time.
    pub daterefunded: Option<String>,
    /// The refund's id.
    pub refundtxnid: Option<String>,
}

/// The `data` of a found bill payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillStatusData {
    /// payrail's id.
    pub txnid: String,
    /// The biller.
    pub operatorname: String,
    /// The customer's account with the biller.
    pub canumber: String,
    /// The amount.
    pub amount: String,
    /// Extra biller field.
    pub ad1: Option<String>,
    /// Extra biller field.
    pub ad2: Option<String>,
    /// Extra biller field.
    pub ad3: Option<String>,
    /// Commission.
    pub comm: String,
    /// TDS on the commission.
    pub tds: String,
    /// "1" success, "2" pending, "0" failed.
    pub status: String,
    /// The partner's reference.
    pub refid: String,
    /// The biller's or BBPS reference.
    pub operatorid: Option<String>,
    /// When made, India time.
    pub dateadded: String,
    /// "1" once refunded.
    pub refunded: String,
    /// The refund's id.
    pub refundtxnid: Option<String>,
    /// When refunded, India time.
    pub daterefunded: Option<String>,
}

/// A found bill payment (HTTP 200, `response_code` 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillStatusBody {
    /// Always 1 here.
    pub response_code: i64,
    /// Always `true` here.
    pub status: bool,
    /// The payment.
    pub data: BillStatusData,
    /// "Transaction Successful", "… Pending", "… Failed" or "… Refunded".
    pub message: String,
}

/// Any refusal or "not found": `status` false with a code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always `false`.
    pub status: bool,
    /// The API's code: 2 or 0 not found, 7/10/11 authentication, 8 validation, 9 server.
    pub response_code: i64,
    /// What went wrong.
    pub message: String,
}

/// What a status query came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The record.
    Found(T),
    /// No such reference for this partner.
    NotFound(ErrorBody),
    /// Refused (validation, authentication, rate limit, server error), with its HTTP status.
    Refused {
        /// HTTP status.
        http_status: u16,
        /// The body.
        body: ErrorBody,
    },
}

/// How a found answer is picked out of a body.
pub trait FoundShape: Sized {
    /// The record, if `json` is a found answer.
    fn from_found(json: &str) -> Option<Self>;
}

impl FoundShape for DmtStatusBody {
    fn from_found(json: &str) -> Option<Self> {
        serde_json::from_str::<DmtStatusBody>(json).ok().filter(|b| b.status)
    }
}

impl FoundShape for BillStatusData {
    fn from_found(json: &str) -> Option<Self> {
        serde_json::from_str::<BillStatusBody>(json).ok().filter(|b| b.status).map(|b| b.data)
    }
}

/// Reads an HTTP status and body into an [`Outcome`]; `None` if it is none of them.
pub fn read_outcome<T: FoundShape>(http_status: u16, body: &str) -> Option<Outcome<T>> {
    if http_status == 200 {
        if let Some(found) = T::from_found(body) {
            return Some(Outcome::Found(found));
        }
        return serde_json::from_str::<ErrorBody>(body).ok().map(Outcome::NotFound);
    }
    serde_json::from_str::<ErrorBody>(body).ok().map(|body| Outcome::Refused { http_status, body })
}
