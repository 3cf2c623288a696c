//! What payrail offers beyond AOPay's pages (issue 15): bulk status, the
//! change feed, the reverse lookups, and (operators) commission settlement
//! and the TDS report. Shapes only, held to the server by the same tests.
#![allow(non_snake_case, dead_code)]

use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::ToSchema;

use super::partner::{optional_text_or_digits, text_or_digits};
use super::{collect, Op, Schemas};

const BEYOND: &str = "Beyond AOPay";
const SETTLE: &str = "Settlement";

fn any_of(names: &[&str]) -> RefOr<Schema> {
    let any = names.iter().fold(AnyOfBuilder::new(), |any, name| any.item(Ref::from_schema_name(*name)));
    Schema::AnyOf(any.build()).into()
}

/// 1 to 100 references, each a string or a JSON number of digits.
fn references() -> RefOr<Schema> {
    let item = ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Integer]))
        .minimum(Some(0));
    ArrayBuilder::new().items(item).min_items(Some(1)).max_items(Some(100)).build().into()
}

fn dmt_items() -> RefOr<Schema> {
    ArrayBuilder::new().items(any_of(&["DmtStatusFound", "Refusal"])).build().into()
}

fn bill_items() -> RefOr<Schema> {
    ArrayBuilder::new().items(any_of(&["BillStatusFound", "Refusal"])).build().into()
}

fn found_items() -> RefOr<Schema> {
    ArrayBuilder::new().items(Ref::from_schema_name("DmtStatusFound")).build().into()
}

/// A page size: a number, or digits in a string.
fn optional_limit() -> RefOr<Schema> {
    let types = [Type::String, Type::Integer, Type::Null];
    ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter(types)).build().into()
}

/// `TransactionStatusBulk` and `BillPaymentStatusBulk`.
#[derive(ToSchema)]
struct BulkStatusRequest {
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
    /// 1 to 100 references, answered in this order.
    #[schema(schema_with = references)]
    references: Vec<String>,
}

/// Each item is the single endpoint's answer for that reference, byte for byte.
#[derive(ToSchema)]
struct BulkDmtStatus {
    status: bool,
    response_code: i64,
    #[schema(schema_with = dmt_items)]
    data: Vec<String>,
}

/// Each item is the single endpoint's answer for that reference, byte for byte.
#[derive(ToSchema)]
struct BulkBillStatus {
    status: bool,
    response_code: i64,
    #[schema(schema_with = bill_items)]
    data: Vec<String>,
}

/// `Changes`.
#[derive(ToSchema)]
struct ChangesRequest {
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
    /// The `next_cursor` of the previous page, as it came; none: from the first change.
    #[schema(schema_with = optional_text_or_digits)]
    cursor: Option<String>,
    /// 1 to 500 (default 100).
    #[schema(schema_with = optional_limit)]
    limit: Option<u32>,
}

/// One change: a status-history row of one of the partner's transactions.
#[derive(ToSchema)]
struct FeedChange {
    /// `dmt` or `bbps`.
    kind: String,
    referenceid: String,
    /// The new state in the kind's AOPay codes.
    status: String,
    /// India time, `YYYY-MM-DD HH:MM:SS`.
    at: String,
    /// The id its callback carries, when a callback event was made for it.
    event_id: Option<String>,
}

/// A page of the change feed.
#[derive(ToSchema)]
struct ChangesPage {
    status: bool,
    response_code: i64,
    changes: Vec<FeedChange>,
    /// Where the next page starts (the cursor sent, when there is nothing new).
    next_cursor: String,
}

/// `TransactionByUtr`.
#[derive(ToSchema)]
struct ByUtrRequest {
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
    /// 1 to 64 letters, digits, `-`, `_`, `.` or `/`.
    #[schema(schema_with = text_or_digits)]
    utr: String,
}

/// `TransactionsByMobile`.
#[derive(ToSchema)]
struct ByMobileRequest {
    #[schema(pattern = "^[Aa][Oo][Pp]-[0-9]{1,15}$")]
    RegistrationID: String,
    /// The remitter's ten digits (also `mobile`).
    #[schema(schema_with = text_or_digits)]
    MobileNumber: String,
    /// The first day, `YYYY-MM-DD`, India time.
    #[schema(schema_with = text_or_digits)]
    from: String,
    /// The last day, `YYYY-MM-DD`, India time (included).
    #[schema(schema_with = text_or_digits)]
    to: String,
    /// 1 to 100 (default 50).
    #[schema(schema_with = optional_limit)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[schema(schema_with = optional_text_or_digits)]
    cursor: Option<String>,
}

/// A page of a remitter's transfers, each `TransactionStatus`'s answer.
#[derive(ToSchema)]
struct ByMobilePage {
    status: bool,
    response_code: i64,
    #[schema(schema_with = found_items)]
    data: Vec<String>,
    /// `null` on the last page.
    next_cursor: Option<String>,
}

/// A settlement run's month.
#[derive(ToSchema)]
struct SettleRequest {
    /// `YYYY-MM`, a month that is over (India time).
    month: String,
}

/// One settlement.
#[derive(ToSchema)]
struct SettledItem {
    registration_id: String,
    amount: String,
    journal_id: i64,
    at: String,
}

/// A partner paid nothing, and its month's net.
#[derive(ToSchema)]
struct NothingItem {
    registration_id: String,
    net: String,
}

/// What a settlement run did.
#[derive(ToSchema)]
struct SettlementRunView {
    month: String,
    paid: Vec<SettledItem>,
    already_paid: Vec<SettledItem>,
    nothing_to_pay: Vec<NothingItem>,
}

/// The settlements of a month.
#[derive(ToSchema)]
struct SettlementList {
    month: String,
    settlements: Vec<SettledItem>,
}

/// A bank's or the upstream's statement, as its CSV text.
#[derive(ToSchema)]
#[schema(value_type = String)]
struct BankFile(String);

/// The schemas written here.
pub(super) fn schemas(out: &mut Schemas) {
    collect!(out; BulkStatusRequest, BulkDmtStatus, BulkBillStatus, ChangesRequest, FeedChange, ChangesPage,
        ByUtrRequest, ByMobileRequest, ByMobilePage, SettleRequest, SettledItem, NothingItem, SettlementRunView,
        SettlementList, BankFile);
}

/// The operations.
pub(super) fn operations() -> Vec<Op> {
    vec![
        Op::post("/api/AOP/DMTV1/TransactionStatusBulk", BEYOND, "The status of 1 to 100 transfers at once")
            .body("BulkStatusRequest", r#"{"RegistrationID":"AOP-554","references":["12345678927","NOT-THERE"]}"#)
            .sample(200, "Each item the single answer, in request order.", &["BulkDmtStatus"],
                r#"{"status":true,"response_code":1,"data":[{"status":true,"response_code":1,"utr":"101306003674","amount":"100","ackno":"128","referenceid":"12345678927","account":"20018575947","txn_status":"1","message":"Transaction Successful","customercharge":"10.00","gst":"1.53","discount":"1.53","tds":"0.19","netcommission":"4.78","daterefunded":"2021-01-15 18:38:38","refundtxnid":"130"},{"status":false,"response_code":2,"message":"Transaction not found"}]}"#),
        Op::post("/api/AOP/BillPaymentStatusBulk", BEYOND, "The status of 1 to 100 bill payments at once")
            .body("BulkStatusRequest", r#"{"RegistrationID":"AOP-554","references":["123456"]}"#)
            .answer(200, "Each item the single answer, in request order.", &["BulkBillStatus"]),
        Op::post("/api/AOP/Changes", BEYOND, "The partner's state changes in commit order, from a cursor")
            .body("ChangesRequest", r#"{"RegistrationID":"AOP-554","limit":2}"#)
            .answer(200, "A page of changes and where the next starts.", &["ChangesPage"]),
        Op::post("/api/AOP/DMTV1/TransactionByUtr", BEYOND, "The partner's transfer the bank paid under a UTR")
            .body("ByUtrRequest", r#"{"RegistrationID":"AOP-554","utr":"101306003674"}"#)
            .answer(200, "As TransactionStatus answers: found (code 1) or not found (code 2).", &["DmtStatusFound", "Refusal"]),
        Op::post("/api/AOP/DMTV1/TransactionsByMobile", BEYOND, "A remitter's transfers over India-time dates, paged")
            .body("ByMobileRequest", r#"{"RegistrationID":"AOP-554","MobileNumber":"9876543210","from":"2026-12-01","to":"2026-12-04"}"#)
            .answer(200, "A page of transfers, each as TransactionStatus answers.", &["ByMobilePage"]),
        Op::post("/admin/v1/settlements", SETTLE, "Pays each partner its net commission for a month that is over, once")
            .body("SettleRequest", r#"{"month":"2026-11"}"#)
            .answer(200, "What was paid, what was paid before, who had nothing to be paid.", &["SettlementRunView"])
            .refusals(&[(409, "The month is not over yet (code 16).")]),
        Op::get("/admin/v1/settlements", SETTLE, "The settlements of a month")
            .query(vec![super::required_query("month", r"^[0-9]{4}-[0-9]{2}$", "The month, YYYY-MM.")])
            .answer(200, "The settlements.", &["SettlementList"]),
        Op::post("/admin/v1/reconciliations", SETTLE, "Reconciles a bank or upstream statement with payrail's transfers")
            .text_body("BankFile", "text/csv")
            .query(vec![
                super::query_param("format", false, "The file's format: csv (default) or paysprint."),
                super::query_param("columns", false, "For csv: the bank's header names, utr=UTR No,amount=Amt,…"),
                super::query_param("date", false, "Only this India-time day, YYYY-MM-DD."),
                super::query_param("hold", false, "true: hold the mismatched transfers for review."),
                super::query_param("name", false, "The file's name, for the reasons (default upload)."),
                super::query_param("report", false, "json (default) or csv: the report as CSV."),
            ])
            .answer(200, "The summary and every finding (report=csv: the report as CSV).", &["ReconciliationView"]),
        Op::get("/admin/v1/tds-report", SETTLE, "The Section 194H TDS report of a financial-year quarter, as CSV")
            .query(vec![super::required_query(
                "quarter",
                r"^[0-9]{4}-[0-9]{2}-Q[1-4]$",
                "A financial-year quarter: 2026-27-Q1 is April–June 2026.",
            )])
            .csv(200, "The report: a line per partner and a total."),
    ]
}
