//! The partner API's operations, at AOPay's mixed-case paths, with the
//! request shapes the handlers read field by field (each field's aliases
//! in its description) and the samples of docs/API.md and the seeds.
// The request types are shapes only: they describe a body, never hold one;
// their fields are AOPay's names.
#![allow(non_snake_case, dead_code)]

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::ToSchema;

use super::{collect, Op, Schemas, Security};

/// A string, or a JSON number written as digits only (read as those
/// digits): every text field of the partner API takes both.
fn digits() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Integer]))
}

pub(super) fn text_or_digits() -> RefOr<Schema> {
    digits().minimum(Some(0)).description(Some("A string, or a JSON number written as digits only")).build().into()
}

/// Optional: also `null`, read as absent.
pub(super) fn optional_text_or_digits() -> RefOr<Schema> {
    let types = [Type::String, Type::Integer, Type::Null];
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter(types))
        .minimum(Some(0))
        .description(Some("A string, or a JSON number written as digits only; null or absent when not given"))
        .build()
        .into()
}

/// `bill_fetch` as fetch returned it, or `null`.
fn optional_bill_fetch() -> RefOr<Schema> {
    let null = ObjectBuilder::new().schema_type(Type::Null).build();
    Schema::AnyOf(
        utoipa::openapi::schema::AnyOfBuilder::new().item(Ref::from_schema_name("BillFetchBody")).item(null).build(),
    )
    .into()
}

/// `TransactionStatus`: `ReferanceID` (as documented, misspelt; also
/// `ReferenceID`, `referenceid`).
#[derive(ToSchema)]
struct DmtStatusRequest {
    #[schema(schema_with = text_or_digits)]
    ReferanceID: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
    /// `true`: the answer ends with the record's status history (`"history":[{"status","at","source"},…]`).
    history: Option<bool>,
}

/// `BillPaymentStatus`: `referenceid` (also `ReferenceID`, `ReferanceID`).
#[derive(ToSchema)]
struct BillStatusRequest {
    #[schema(schema_with = text_or_digits)]
    referenceid: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
    /// `true`: the answer ends with the record's status history (`"history":[{"status","at","source"},…]`).
    history: Option<bool>,
}

/// A found transfer (SPEC §4), field for field as the seed shows it: the
/// shape of `payrail_client::wire::DmtStatusBody`, held to it by a unit test.
#[derive(ToSchema, serde::Serialize)]
pub(super) struct DmtStatusFound {
    status: bool,
    response_code: i64,
    utr: Option<String>,
    amount: String,
    ackno: String,
    referenceid: String,
    account: String,
    /// "0" refunded, "1" success, "2" in process, "3" sent to bank, "4" on hold, "5" failed.
    txn_status: String,
    message: String,
    customercharge: String,
    gst: String,
    discount: String,
    tds: String,
    netcommission: String,
    daterefunded: Option<String>,
    refundtxnid: Option<String>,
}

/// A found bill payment (SPEC §5): the shape of `payrail_client::wire::BillStatusBody`.
#[derive(ToSchema, serde::Serialize)]
pub(super) struct BillStatusFound {
    response_code: i64,
    status: bool,
    data: BillStatusData,
    message: String,
}

/// `payrail_client::wire::BillStatusData`.
#[derive(ToSchema, serde::Serialize)]
pub(super) struct BillStatusData {
    txnid: String,
    operatorname: String,
    canumber: String,
    amount: String,
    ad1: Option<String>,
    ad2: Option<String>,
    ad3: Option<String>,
    comm: String,
    tds: String,
    /// "1" success, "2" pending, "0" failed.
    status: String,
    refid: String,
    operatorid: Option<String>,
    dateadded: String,
    refunded: String,
    refundtxnid: Option<String>,
    daterefunded: Option<String>,
}

/// `QueryRemitter`: `MobileNumber` (also `MobileNo`, `mobile`).
#[derive(ToSchema)]
struct QueryRemitterRequest {
    #[schema(schema_with = text_or_digits)]
    MobileNumber: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `RemitterEKyc`. Aliases: `MobileNo`/`mobile`, `Latitude`/`lat`, `long`, `aadhaar`, `piddata`.
#[derive(ToSchema)]
struct RemitterEkycRequest {
    #[schema(schema_with = text_or_digits)]
    MobileNumber: String,
    /// Sic: AOPay's spelling. A decimal within ±90.
    #[schema(schema_with = text_or_digits)]
    Lattitude: String,
    /// A decimal within ±180.
    #[schema(schema_with = text_or_digits)]
    Longitude: String,
    /// 12 digits, not starting with 0 or 1, a valid Verhoeff check digit. Never stored.
    #[schema(schema_with = text_or_digits)]
    AadhaarNumber: String,
    /// The fingerprint device's PID block (up to 60,000 characters). Never stored.
    #[schema(schema_with = text_or_digits)]
    FingerPrintData: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `RegisterRemitter`: `MobileNo` (also `MobileNumber`, `mobile`).
#[derive(ToSchema)]
struct RegisterRemitterRequest {
    #[schema(schema_with = text_or_digits)]
    MobileNo: String,
    #[schema(schema_with = text_or_digits)]
    OTP: String,
    #[schema(schema_with = text_or_digits)]
    Stateresp: String,
    /// The `stateresp` of the `RemitterEKyc`.
    #[schema(schema_with = text_or_digits)]
    KycId: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    FirstName: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    LastName: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `RegisterBaneficiary` (sic), AOPay's lower-case names (the older
/// `RegisterBeneficiary` also takes `MobileNo`, `BeneName`, `AccountNo`, `IFSC`, `BankName`).
#[derive(ToSchema)]
struct RegisterBeneficiaryRequest {
    #[schema(schema_with = text_or_digits)]
    mobile: String,
    #[schema(schema_with = text_or_digits)]
    benename: String,
    /// A bank of `BankList`.
    #[schema(schema_with = optional_text_or_digits, required = false)]
    bankid: String,
    /// 9–18 digits.
    #[schema(schema_with = text_or_digits)]
    accno: String,
    #[schema(schema_with = text_or_digits)]
    ifsccode: String,
    /// "0" or "1": the partner's claim, never trusted.
    #[schema(schema_with = optional_text_or_digits, required = false)]
    verified: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    gst_state: String,
    /// DD-MM-YYYY.
    #[schema(schema_with = optional_text_or_digits, required = false)]
    dob: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    address: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    pincode: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `FetchBeneficiary`: `MobileNumber` (also `mobile`, `MobileNo`).
#[derive(ToSchema)]
struct FetchBeneficiaryRequest {
    #[schema(schema_with = text_or_digits)]
    MobileNumber: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `FetchBeneficiaryBeneID`.
#[derive(ToSchema)]
struct FetchBeneficiaryBeneIdRequest {
    #[schema(schema_with = text_or_digits)]
    MobileNumber: String,
    #[schema(schema_with = text_or_digits)]
    BeneID: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `BankList`.
#[derive(ToSchema)]
struct BankListRequest {
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `PennyDrop` (Paysprint's `benenameverify` fields): with `bene_id`
/// (also `BeneID`) `accno`, `bankid` and `benename` may be left out.
#[derive(ToSchema)]
struct PennyDropRequest {
    #[schema(schema_with = text_or_digits)]
    mobile: String,
    #[schema(schema_with = text_or_digits)]
    referenceid: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    bene_id: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    accno: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    bankid: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    benename: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ifsccode: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    pincode: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    address: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    dob: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    gst_state: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `DeleteBeneficiary`: `MobileNo` (also `MobileNumber`, `mobile`).
#[derive(ToSchema)]
struct DeleteBeneficiaryRequest {
    #[schema(schema_with = text_or_digits)]
    MobileNo: String,
    #[schema(schema_with = text_or_digits)]
    BeneID: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `TransactionSendOtp`.
#[derive(ToSchema)]
struct TransactionSendOtpRequest {
    #[schema(schema_with = text_or_digits)]
    MobileNumber: String,
    #[schema(schema_with = text_or_digits)]
    BeneID: String,
    /// `IMPS` or `NEFT`.
    #[schema(schema_with = text_or_digits)]
    Txntype: String,
    /// Whole rupees, ₹100 to ₹5,000.
    #[schema(schema_with = text_or_digits)]
    Amount: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Pincode: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Address: String,
    /// DD/MM/YYYY.
    #[schema(schema_with = optional_text_or_digits, required = false)]
    DOB: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Latitude: String,
    /// Sic (also `Longitude`); with `Latitude` or not at all.
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Longitute: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    gst_state: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `Transaction`: `TransactionSendOtp`'s fields and the OTP.
#[derive(ToSchema)]
struct TransactionRequest {
    #[schema(schema_with = text_or_digits)]
    MobileNumber: String,
    #[schema(schema_with = text_or_digits)]
    BeneID: String,
    #[schema(schema_with = text_or_digits)]
    Txntype: String,
    #[schema(schema_with = text_or_digits)]
    Amount: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Pincode: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Address: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    DOB: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Latitude: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Longitute: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    gst_state: String,
    /// The partner's own, unique per partner (also `ReferanceID`, `ReferenceID`).
    #[schema(schema_with = text_or_digits)]
    referenceid: String,
    #[schema(schema_with = text_or_digits)]
    OTP: String,
    #[schema(schema_with = text_or_digits)]
    Stateresp: String,
    /// `bank1`, `bank2` or `bank3`.
    #[schema(schema_with = optional_text_or_digits, required = false)]
    pipe: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `RefundOtp`: the transfer by `referenceid`, `ackno`, or both.
#[derive(ToSchema)]
struct RefundOtpRequest {
    #[schema(schema_with = optional_text_or_digits, required = false)]
    referenceid: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ackno: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `ClaimRefund`: the transfer as in `RefundOtp`; `otp` (also `OTP`).
#[derive(ToSchema)]
struct ClaimRefundRequest {
    #[schema(schema_with = optional_text_or_digits, required = false)]
    referenceid: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ackno: String,
    #[schema(schema_with = text_or_digits)]
    otp: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    Stateresp: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `BillPaymentOperatorsList`.
#[derive(ToSchema)]
struct OperatorsRequest {
    /// `online` or `offline`, any case.
    #[schema(schema_with = optional_text_or_digits, required = false)]
    mode: String,
    /// One of the categories, any case.
    #[schema(schema_with = optional_text_or_digits, required = false)]
    category: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `FetchBilPaymentDetails` (sic).
#[derive(ToSchema)]
struct FetchBillRequest {
    #[schema(schema_with = text_or_digits)]
    operator: String,
    #[schema(schema_with = text_or_digits)]
    canumber: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    mode: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ad1: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ad2: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ad3: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// `BillPaymentPaybill`.
#[derive(ToSchema)]
struct PaybillRequest {
    #[schema(schema_with = text_or_digits)]
    operator: String,
    #[schema(schema_with = text_or_digits)]
    canumber: String,
    /// Rupees: digits and at most two decimals.
    #[schema(schema_with = text_or_digits)]
    amount: String,
    #[schema(schema_with = text_or_digits)]
    referenceid: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    latitude: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    longitude: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    mode: String,
    /// As `FetchBilPaymentDetails` returned it: compared with the biller's bill, never believed.
    #[schema(schema_with = optional_bill_fetch, required = false)]
    bill_fetch: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ad1: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ad2: String,
    #[schema(schema_with = optional_text_or_digits, required = false)]
    ad3: String,
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
}

/// The upstream's callback, in its own signed format (Paysprint's or the
/// sandbox's; docs/UPSTREAM.md): checked by the provider, not described here.
#[derive(ToSchema)]
struct UpstreamCallback {}

/// The schemas written here.
pub(super) fn schemas(out: &mut Schemas) {
    collect!(out; DmtStatusRequest, BillStatusRequest, DmtStatusFound, BillStatusFound, QueryRemitterRequest,
        RemitterEkycRequest, RegisterRemitterRequest, RegisterBeneficiaryRequest, FetchBeneficiaryRequest,
        FetchBeneficiaryBeneIdRequest, BankListRequest, PennyDropRequest, DeleteBeneficiaryRequest,
        TransactionSendOtpRequest, TransactionRequest, RefundOtpRequest, ClaimRefundRequest, OperatorsRequest,
        FetchBillRequest, PaybillRequest, UpstreamCallback);
}

const DMT: &str = "DMT V1";
const BBPS: &str = "BBPS";
const CONFLICT: &str = "Not allowed in this state (code 16), or the referenceid is taken (code 12).";
const LIMIT_OR_OTP: &str = "A limit (code 14), an OTP refused (code 15), or the upstream refused (code 18).";
const UPSTREAM_DOWN: &str =
    "The upstream, the SMS gateway or the biller did not answer, or transfers are paused (code 17).";

/// The remitter flows' 202 (SPEC §7.1).
const OTP_202: &str = r#"{"status":false,"response_code":0,"stateresp":"b3c1e519-cf15-4145-8c26-c3d03e9d2f00","message":"Remitter not registered OTP sent for new registration."}"#;
const REMITTER_200: &str = r#"{"status":true,"response_code":1,"message":"Remitter found","data":{"fname":"Asha","lname":"Verma","mobile":"9812345670","status":"Active","bank3_limit":25000,"bank3_status":"Active","bank2_limit":25000,"bank1_limit":25000}}"#;
const TRANSFER_200: &str = r#"{"status":true,"response_code":1,"ackno":"418502913","referenceid":"ORDER-1","utr":null,"amount":"1000","account":"123456789012","txn_status":"3","message":"Transaction Sent To Bank","customercharge":"10.00","gst":"1.53","tds":"0.10","netcommission":"4.87","opening":"10000.00","closing":"8990.00","refundtxnid":null,"daterefunded":null}"#;
const BILL_FETCH: &str = r#"{"status":true,"amount":"2377.46","name":"Ramesh Kumar","duedate":"2026-12-20","bill_fetch":{"billAmount":"2377.46","billnetamount":"2377.46","billdate":"2026-12-01","dueDate":"2026-12-20","acceptPayment":true,"acceptPartPay":false,"cellNumber":"102277100","userName":"RAMESH KUMAR"},"message":"Bill fetched"}"#;

/// Every partner operation (and the upstream's callback and the sandbox's advance).
pub(super) fn operations() -> Vec<Op> {
    vec![
        Op::post("/api/AOP/DMTV1/TransactionStatus", "DMT status", "A DMT transfer's status (the seed page)")
            .body("DmtStatusRequest", r#"{"ReferanceID":"12345678927","RegistrationID":"AOP-554"}"#)
            .sample(200, "Found (code 1), or not found for this partner (code 2).", &["DmtStatusFound", "Refusal"],
                r#"{"status":true,"response_code":1,"utr":"12345678927","amount":"100","ackno":"128","referenceid":"12345678927","account":"918882541913","txn_status":"1","message":"Transaction Successful","customercharge":"10.00","gst":"1.53","discount":"1.53","tds":"0.19","netcommission":"4.78","daterefunded":null,"refundtxnid":null}"#),
        Op::post("/api/AOP/BillPaymentStatus", "BBPS status", "A bill payment's status (the seed page)")
            .body("BillStatusRequest", r#"{"referenceid":"123456","RegistrationID":"AOP-554"}"#)
            .answer(200, "Found (code 1), or `No Transaction found` (code 0).", &["BillStatusFound", "Refusal"]),
        Op::post("/api/AOP/DMTV1/QueryRemitter", DMT, "A remitter and its monthly limits, or a registration OTP")
            .body("QueryRemitterRequest", r#"{"MobileNumber":"9812345670","RegistrationID":"AOP-554"}"#)
            .sample(200, "Registered: the remitter and the rupees left this month per pipe.", &["RemitterFound"], REMITTER_200)
            .sample(202, "Not registered: a registration OTP went to the mobile.", &["OtpSent"], OTP_202)
            .refusals(&[(422, "Too many OTP texts to the mobile (code 15)."), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/RemitterEKyc", DMT, "The biometric e-KYC of a new remitter")
            .body("RemitterEkycRequest", r#"{"MobileNumber":"9812345670","Lattitude":"28.61","Longitude":"77.20","AadhaarNumber":"999999990019","FingerPrintData":"<PidData><Data type=\"X\">FP-7c1d-NEVER-STORED-e9a4</Data></PidData>","RegistrationID":"AOP-554"}"#)
            .sample(202, "Verified: the registration OTP went out; the stateresp is also the KycId.", &["OtpSent"], OTP_202)
            .refusals(&[(409, "The remitter is registered already (code 16)."),
                (422, "UIDAI refused (code 18), or too many e-KYC attempts or OTP texts (code 15)."), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/RegisterRemitter", DMT, "Registers a remitter with the e-KYC and the OTP")
            .body("RegisterRemitterRequest", r#"{"MobileNo":"9812345670","OTP":"123456","Stateresp":"b3c1e519-cf15-4145-8c26-c3d03e9d2f00","KycId":"b3c1e519-cf15-4145-8c26-c3d03e9d2f00","FirstName":"Asha","LastName":"Verma","RegistrationID":"AOP-554"}"#)
            .sample(200, "Registered: the remitter as QueryRemitter shows it.", &["RemitterFound"],
                r#"{"status":true,"response_code":1,"message":"Remitter registered successfully","data":{"fname":"Asha","lname":"Verma","mobile":"9812345670","status":"Active","bank3_limit":25000,"bank3_status":"Active","bank2_limit":25000,"bank1_limit":25000}}"#)
            .refusals(&[(409, CONFLICT), (422, LIMIT_OR_OTP), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/RegisterBaneficiary", DMT, "Registers a beneficiary (sic: AOPay's path, no DMTV1 segment)")
            .body("RegisterBeneficiaryRequest", r#"{"mobile":"9876543210","benename":"Rohit","bankid":"309","accno":"50100123456782","ifsccode":"HDFC0000125","verified":"0","gst_state":"07","dob":"20-05-2020","address":"New delhi","pincode":"560001","RegistrationID":"AOP-554"}"#)
            .sample(200, "Registered (code 1), or the remitter is unknown (code 2).", &["BeneficiaryAdded", "Refusal"],
                r#"{"status":true,"response_code":1,"message":"Beneficiary registered successfully","beneid":"12"}"#)
            .refusals(&[(409, "The account is a beneficiary of the remitter already (code 16)."), (422, LIMIT_OR_OTP), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/RegisterBeneficiary", DMT, "Registers a beneficiary (the older path; same body)")
            .body("RegisterBeneficiaryRequest", r#"{"mobile":"9876543210","benename":"Rohit","bankid":"309","accno":"50100123456782","ifsccode":"HDFC0000125","RegistrationID":"AOP-554"}"#)
            .answer(200, "Registered (code 1), or the remitter is unknown (code 2).", &["BeneficiaryAdded", "Refusal"])
            .refusals(&[(409, "The account is a beneficiary of the remitter already (code 16)."), (422, LIMIT_OR_OTP), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/FetchBeneficiary", DMT, "A remitter's beneficiaries")
            .body("FetchBeneficiaryRequest", r#"{"MobileNumber":"9876543210","RegistrationID":"AOP-554"}"#)
            .sample(200, "The beneficiaries (code 1), or the remitter is unknown (code 2).", &["BeneficiaryList", "Refusal"],
                r#"{"status":true,"response_code":1,"message":"Beneficiaries fetched","data":[{"bene_id":"12","bankid":"309","bankname":"HDFC Bank","name":"Rohit","accno":"50100123456782","ifsc":"HDFC0000125","verified":"0","banktype":"PRIVATE","paytm":false}]}"#),
        Op::post("/api/AOP/DMTV1/FetchBeneficiaryBeneID", DMT, "One beneficiary of a remitter")
            .body("FetchBeneficiaryBeneIdRequest", r#"{"MobileNumber":"9876543210","BeneID":"12","RegistrationID":"AOP-554"}"#)
            .answer(200, "The beneficiary (code 1), or not found (code 2).", &["OneBeneficiary", "Refusal"]),
        Op::post("/api/AOP/DMTV1/BankList", DMT, "Every bank a beneficiary can be at")
            .body("BankListRequest", r#"{"RegistrationID":"AOP-554"}"#)
            .answer(200, "The banks.", &["BankListBody"]),
        Op::post("/api/AOP/DMTV1/PennyDrop", DMT, "Verifies an account at its bank (a fee from the wallet)")
            .body("PennyDropRequest", r#"{"mobile":"9876543210","bene_id":"12","referenceid":"PD-1","RegistrationID":"AOP-554"}"#)
            .sample(200, "Verified (code 1), no such account (code 2), the bank could not be asked (code 0, refunded), or the remitter or beneficiary is unknown (code 2).",
                &["PennyDropBody", "Refusal"],
                r#"{"status":true,"response_code":1,"message":"Account verified at the bank","data":{"referenceid":"PD-1","bene_id":"12","bankid":"309","accno":"50100123456782","benename":"ROHIT","verified":"1","charge":"3.54","refunded":"0","opening":"100.00","closing":"96.46"}}"#)
            .refusals(&[(402, "The wallet balance is too low (code 13)."), (409, CONFLICT), (422, LIMIT_OR_OTP), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/DeleteBeneficiary", DMT, "Deletes a beneficiary (at the upstream first)")
            .body("DeleteBeneficiaryRequest", r#"{"MobileNo":"9876543210","BeneID":"12","RegistrationID":"AOP-554"}"#)
            .sample(200, "Deleted (code 1), or not found (code 2).", &["Done", "Refusal"],
                r#"{"status":true,"response_code":1,"message":"Beneficiary deleted successfully"}"#)
            .refusals(&[(422, "The upstream refused (code 18)."), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/TransactionSendOtp", DMT, "Sends the OTP for a transfer")
            .body("TransactionSendOtpRequest", r#"{"MobileNumber":"9876543210","BeneID":"12","Txntype":"IMPS","Amount":"100","Pincode":"110045","Address":"New delhi","DOB":"20/08/2000","Latitude":"28.6090","Longitute":"77.2362","RegistrationID":"AOP-554"}"#)
            .answer(200, "The remitter or beneficiary is unknown (code 2).", &["Refusal"])
            .answer(202, "The OTP went to the remitter (status true, code 1).", &["OtpSent"])
            .refusals(&[(409, CONFLICT), (422, LIMIT_OR_OTP), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/Transaction", DMT, "A transfer, confirmed by its OTP, debited from the wallet")
            .body("TransactionRequest", r#"{"MobileNumber":"9876543210","BeneID":"12","Txntype":"IMPS","Amount":"100","Pincode":"110045","Address":"New delhi","DOB":"20/08/2000","Latitude":"28.6090","Longitute":"77.2362","referenceid":"ORDER-1","OTP":"123456","Stateresp":"b3c1e519-cf15-4145-8c26-c3d03e9d2f00","RegistrationID":"AOP-554"}"#)
            .sample(200, "The transfer with the upstream's first word (code 1), or not found (code 2).", &["TransferBody", "Refusal"], TRANSFER_200)
            .refusals(&[(402, "The wallet balance is too low (code 13)."), (409, CONFLICT), (422, LIMIT_OR_OTP), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/RefundOtp", DMT, "Sends the OTP to claim a failed transfer's refund")
            .body("RefundOtpRequest", r#"{"referenceid":"RF-1","RegistrationID":"AOP-554"}"#)
            .answer(200, "The OTP went out (code 1), or the transfer is unknown (code 2).", &["OtpSent", "Refusal"])
            .refusals(&[(409, "Not failed, or refunded already (code 16)."), (422, LIMIT_OR_OTP), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/DMTV1/ClaimRefund", DMT, "Refunds a failed transfer to the wallet, with the OTP")
            .body("ClaimRefundRequest", r#"{"referenceid":"RF-1","ackno":418502913,"otp":246810,"RegistrationID":"AOP-554"}"#)
            .sample(200, "Refunded (code 1, as Transaction without opening/closing), or the transfer is unknown (code 2).", &["TransferBody", "Refusal"],
                r#"{"status":true,"response_code":1,"ackno":"418502913","referenceid":"RF-1","utr":null,"amount":"1000","account":"123456789012","txn_status":"0","message":"Transaction Refunded","customercharge":"10.00","gst":"1.53","tds":"0.10","netcommission":"4.87","refundtxnid":"17","daterefunded":"2026-12-04 09:30:12"}"#)
            .refusals(&[(409, "Refunded already (code 16)."), (422, LIMIT_OR_OTP), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/BillPaymentOperatorsList", BBPS, "The biller catalogue, optionally one category")
            .body("OperatorsRequest", r#"{"mode":"online","category":"lpg gas","RegistrationID":"AOP-554"}"#)
            .sample(200, "The billers.", &["OperatorList"],
                r#"{"status":true,"response_code":1,"message":"Operators fetched","data":[{"id":"90","name":"Indane Gas","category":"LPG Gas","displayname":"LPG ID","ad_params":[],"fetch_bill":true},{"id":"91","name":"Bharat Gas (BPCL)","category":"LPG Gas","displayname":"Consumer Number","ad_params":["Distributor ID"],"fetch_bill":true}]}"#),
        Op::post("/api/AOP/BillPaymentOperators", BBPS, "The biller catalogue (the earlier path)")
            .body("OperatorsRequest", r#"{"RegistrationID":"AOP-554"}"#)
            .answer(200, "The billers.", &["OperatorList"]),
        Op::post("/api/AOP/FetchBilPaymentDetails", BBPS, "A customer's current bill, from the upstream (sic)")
            .body("FetchBillRequest", r#"{"operator":100,"canumber":102277100,"mode":"online","RegistrationID":"AOP-554"}"#)
            .sample(200, "The bill (no response_code, as AOPay's page shows it), or no bill or biller (code 2).", &["FetchedBillBody", "Refusal"], BILL_FETCH)
            .refusals(&[(409, "The biller has no bill fetch (code 16)."), (502, UPSTREAM_DOWN)]),
        Op::post("/api/AOP/BillPaymentPaybill", BBPS, "Pays a bill from the wallet")
            .body("PaybillRequest", r#"{"operator":"100","canumber":"102277100","amount":"2377.46","referenceid":"20018575947","latitude":"27.2232","longitude":"78.26535","RegistrationID":"AOP-554","mode":"online","bill_fetch":{"billAmount":"2377.46","billnetamount":"2377.46","billdate":"2026-12-01","dueDate":"2026-12-20","acceptPayment":true,"acceptPartPay":false,"cellNumber":"102277100","userName":"RAMESH KUMAR"}}"#)
            .sample(200, "The payment: code 1 paid, 2 pending, 0 failed and refunded; or no such biller or bill (code 2).", &["PaybillBody", "Refusal"],
                r#"{"status":true,"response_code":2,"operatorid":null,"ackno":736120458,"opening":"10000.00","closing":"7622.54","message":"Transaction Pending"}"#)
            .refusals(&[(402, "The wallet balance is too low (code 13)."), (409, CONFLICT), (422, "The bill amount is over the limit (code 14)."), (502, UPSTREAM_DOWN)]),
        Op::post("/upstream/v1/callback", "Upstream", "The upstream's callback about a transaction (its own signed format)")
            .security(Security::Upstream)
            .optional_body("UpstreamCallback", None)
            .answer(200, "Applied, or a duplicate.", &["CallbackAnswer"])
            .answer(400, "Malformed.", &["CallbackAnswer"])
            .answer(401, "Not signed by the upstream.", &["CallbackAnswer"])
            .answer(404, "This payrail takes no callbacks, or the reference is unknown.", &["CallbackAnswer"])
            .answer(503, "Not confirmed by a status query: send it again.", &["CallbackAnswer"]),
        Op::post("/sandbox/v1/advance", "Upstream", "The sandbox says `to` about a transaction from now on (serve --provider sandbox)")
            .body("Advance", r#"{"kind":"dmt","id":418502913,"to":"success","utr":"UTR123456"}"#)
            .answer(200, "Applied.", &["Advanced"])
            .refusals(&[(404, "The sandbox is not the provider, or no such transaction (code 2).")]),
    ]
}
