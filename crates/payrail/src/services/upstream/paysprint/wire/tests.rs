//! The answers' readings, unit by unit.

use serde::de::DeserializeOwned;
use serde_json::json;

use super::*;

fn read_callback_body(body: &[u8]) -> Result<(String, UpstreamReport), CallbackError> {
    parse_callback_body(body)?.report()
}

fn read<T: DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
}

const EXPECTED: Expected<'static> = Expected { reference: "PRD7", amount: Paise::new(100_000), account: "1234567890" };

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
    let amount = query_answer(json!({"response_code": 1, "data": {"txn_status": 1, "utr": "U", "amount": "500.00"}}));
    assert_eq!(amount, DmtUpstream::Review { reason: "upstream answer's amount 500.00 differs from 1000.00".into() });
    let reference = transact(json!({"status": true, "response_code": 1, "txn_status": 1, "referenceid": "PRD8"}));
    assert!(matches!(reference, DmtUpstream::Review { reason } if reason.contains("reference")));
    let account = query_answer(json!({"response_code": 1, "data": {"txn_status": 1, "account": "1234567899"}}));
    assert!(matches!(account, DmtUpstream::Review { reason } if reason.contains("account")));
    // A masked account that agrees with the transfer's, and an amount as a number, are the same.
    let masked =
        query_answer(json!({"response_code": 1, "data": {"txn_status": 2, "account": "XXXXXX7890", "amount": 1000}}));
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
    let docs = include_str!("../../../../../../../docs/UPSTREAM.md");
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
    assert_eq!(paybill(json!({"status": true, "response_code": 5, "message": "Txn PENDING"})), BillUpstream::Pending);
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
