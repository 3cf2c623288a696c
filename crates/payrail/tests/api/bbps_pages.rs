//! BBPS as AOPay's pages show it (SPEC §7.3, issue 11): each page's sample
//! body sent as the page sends it, answered with the page's fields in the
//! page's order and JSON types (checked on the raw bytes); a bill that must
//! be paid whole held to the provider's bill, not to the partner's echo; a
//! payment's `response_code` by its outcome, 1 / 2 / 0; and the refusals.
//!
//! The demo data: biller 100 (Bajaj Finance, "Loan Repayment") takes only
//! the whole bill; for account `102277100` the sandbox's bill is ₹2377.46,
//! "Ramesh Kumar". Biller 1 (BSES Rajdhani, "Electricity") takes any amount.

use payrail::domain::{Clock, Timestamp};
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{spawn_app_with, Answer, AppOptions, Engine, TestApp, TestPartner, TestUpstream};
use crate::journey::{assert_field_order, assert_refused, assert_verify_clean, balance, top_up};
use crate::mock_upstream::{MockUpstream, Reply, Script, WHOLE_BILL_ACCOUNT};
use crate::upstream_paysprint::{connector, JWT_KEY, PARTNER_ID};

both_engines!(
    the_fetch_pages_sample_is_answered_with_the_pages_fields_in_order,
    the_paybill_pages_sample_pays_the_whole_bill_and_answers_ackno_as_an_integer,
    part_payment_is_refused_where_the_bill_must_be_paid_whole_and_taken_where_allowed,
    a_billers_missing_customer_parameter_is_refused_naming_it,
    the_operator_list_filters_by_category_in_any_case_and_refuses_an_unknown_one,
    paybill_answers_1_2_or_0_by_outcome_and_an_immediate_failure_closes_where_it_opened,
    bad_mode_coordinates_and_bill_fetch_are_refused_and_nothing_is_written,
    through_paysprint_a_payment_carries_its_mode_location_and_the_providers_bill,
);

const FETCH: &str = "/api/AOP/FetchBilPaymentDetails";
const PAYBILL: &str = "/api/AOP/BillPaymentPaybill";
const OPERATORS: &str = "/api/AOP/BillPaymentOperatorsList";

/// The whole-bill biller and account of the samples, and its bill.
const WHOLE_BILLER: i64 = 100;
const ACCOUNT: &str = "102277100";
const BILL: &str = "2377.46";

async fn sandbox_app(engine: Engine) -> TestApp {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() };
    spawn_app_with(engine, options.on_manual_clock()).await
}

async fn funded(app: &TestApp) -> TestPartner {
    let partner = app.add_partner(true, &[]).await;
    top_up(app, &partner, "10000").await;
    partner
}

/// A body exactly as written (a page's sample keeps its key order and its
/// JSON types), signed as `partner`.
async fn post(app: &TestApp, path: &str, partner: &TestPartner, body: &str) -> Answer {
    app.post_raw(path, body.to_owned(), &[("Token", partner.token().as_str())]).await
}

/// The sandbox bill's dates: the 1st and the 20th of the clock's month.
fn bill_dates(now: Timestamp) -> (String, String) {
    let (year, month, _) = now.ist_date();
    (format!("{year:04}-{month:02}-01"), format!("{year:04}-{month:02}-20"))
}

/// The fetch page's body, values made valid for the demo data: `operator`
/// and `canumber` JSON numbers, as the page sends them.
fn fetch_sample(partner: &TestPartner) -> String {
    format!(
        r#"{{"operator":{WHOLE_BILLER},"canumber":{ACCOUNT},"mode":"online","RegistrationID":"{}"}}"#,
        partner.name()
    )
}

async fn fetched_bill_fetch(app: &TestApp, partner: &TestPartner, operator: i64, account: &str) -> Value {
    let fetched = app.call(FETCH, partner, json!({"operator": operator, "canumber": account})).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    fetched.json()["bill_fetch"].clone()
}

async fn the_fetch_pages_sample_is_answered_with_the_pages_fields_in_order(engine: Engine) {
    let app = sandbox_app(engine).await;
    let partner = funded(&app).await;
    let answer = post(&app, FETCH, &partner, &fetch_sample(&partner)).await;
    assert_eq!(
        (answer.status, answer.content_type.as_str()),
        (200, "application/json; charset=utf-8"),
        "{}",
        answer.body
    );
    let (billdate, due) = bill_dates(app.clock().now());
    // Byte for byte: the order, and every JSON type (strings quoted, the two flags bare booleans, no response_code).
    let expected = format!(
        concat!(
            r#"{{"status":true,"amount":"{bill}","name":"Ramesh Kumar","duedate":"{due}","#,
            r#""bill_fetch":{{"billAmount":"{bill}","billnetamount":"{bill}","billdate":"{billdate}","dueDate":"{due}","#,
            r#""acceptPayment":true,"acceptPartPay":false,"cellNumber":"{account}","userName":"RAMESH KUMAR"}},"#,
            r#""message":"Bill fetched"}}"#
        ),
        bill = BILL,
        due = due,
        billdate = billdate,
        account = ACCOUNT
    );
    assert_eq!(answer.body, expected);
    assert_field_order(&answer.body, &["status", "amount", "name", "duedate", "bill_fetch", "message"]);
    // The same with the strings other pages send, and without `mode`.
    let strings = json!({"operator": WHOLE_BILLER.to_string(), "canumber": ACCOUNT});
    assert_eq!(app.call(FETCH, &partner, strings).await.body, expected);
    // An electricity bill takes part payments.
    assert_eq!(fetched_bill_fetch(&app, &partner, 1, "150012345678").await["acceptPartPay"], json!(true));
}

/// The paybill page's body, values made valid: `operator` and `canumber`
/// strings as the page sends them, the bill_fetch as fetch returned it.
fn paybill_sample(partner: &TestPartner, amount: &str, reference: &str, bill_fetch: &Value) -> String {
    format!(
        concat!(
            r#"{{"operator":"{operator}","canumber":"{account}","amount":"{amount}","referenceid":"{reference}","#,
            r#""latitude":"27.2232","longitude":"78.26535","RegistrationID":"{partner}","mode":"online","#,
            r#""bill_fetch":{bill_fetch}}}"#
        ),
        operator = WHOLE_BILLER,
        account = ACCOUNT,
        amount = amount,
        reference = reference,
        partner = partner.name(),
        bill_fetch = bill_fetch
    )
}

async fn the_paybill_pages_sample_pays_the_whole_bill_and_answers_ackno_as_an_integer(engine: Engine) {
    let app = sandbox_app(engine).await;
    let partner = funded(&app).await;
    let bill_fetch = fetched_bill_fetch(&app, &partner, WHOLE_BILLER, ACCOUNT).await;
    let answer = post(&app, PAYBILL, &partner, &paybill_sample(&partner, BILL, "20018575947", &bill_fetch)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let ackno = answer.json()["ackno"].as_i64().unwrap_or_else(|| panic!("ackno is a JSON integer: {}", answer.body));
    assert_eq!(
        answer.body,
        format!(
            r#"{{"status":true,"response_code":2,"operatorid":null,"ackno":{ackno},"opening":"10000.00","closing":"7622.54","message":"Transaction Pending"}}"#
        )
    );
    assert_field_order(
        &answer.body,
        &["status", "response_code", "operatorid", "ackno", "opening", "closing", "message"],
    );
    let status = app.bill_status(&partner.name(), "20018575947", Some(&partner.token())).await.json();
    assert_eq!((&status["data"]["txnid"], &status["data"]["amount"]), (&json!(ackno.to_string()), &json!(BILL)));
    assert_eq!(balance(&app, &partner).await, "7622.54");
    assert_verify_clean(&app);
}

async fn part_payment_is_refused_where_the_bill_must_be_paid_whole_and_taken_where_allowed(engine: Engine) {
    let app = sandbox_app(engine).await;
    let partner = funded(&app).await;
    let bill_fetch = fetched_bill_fetch(&app, &partner, WHOLE_BILLER, ACCOUNT).await;
    let part = post(&app, PAYBILL, &partner, &paybill_sample(&partner, "100", "PART-1", &bill_fetch)).await;
    assert_refused(&part, 400, 8, "amount must be 2377.46, the whole bill: this biller takes no part payment");
    // An echo that claims part payment is allowed is not believed.
    let mut forged = bill_fetch.clone();
    forged["acceptPartPay"] = json!(true);
    let claimed = post(&app, PAYBILL, &partner, &paybill_sample(&partner, "100", "PART-2", &forged)).await;
    assert_refused(&claimed, 400, 8, "no part payment");
    // Nor is an echo of another bill.
    let mut other = bill_fetch.clone();
    other["billAmount"] = json!("100.0");
    let stale = post(&app, PAYBILL, &partner, &paybill_sample(&partner, "100", "PART-3", &other)).await;
    assert_refused(&stale, 400, 8, "bill_fetch: billAmount 100.00 is not the biller's current bill (2377.46)");
    // Without any echo, the provider's bill still rules.
    let bare = json!({"operator": WHOLE_BILLER, "canumber": ACCOUNT, "amount": "2377.45", "referenceid": "PART-4"});
    assert_refused(&app.call(PAYBILL, &partner, bare).await, 400, 8, "the whole bill");
    assert_eq!(balance(&app, &partner).await, "10000.00", "nothing was debited");
    for reference in ["PART-1", "PART-2", "PART-3", "PART-4"] {
        let status = app.bill_status(&partner.name(), reference, Some(&partner.token())).await;
        assert_eq!(status.json()["message"], "No Transaction found", "{reference} was not recorded");
    }

    // An electricity bill takes part of it.
    let electricity = fetched_bill_fetch(&app, &partner, 1, "150012345678").await;
    assert_ne!(electricity["billAmount"], json!("100"));
    let fields = json!({"operator": "1", "canumber": "150012345678", "amount": "100", "referenceid": "PART-5",
                        "mode": "online", "bill_fetch": electricity});
    let paid = app.call(PAYBILL, &partner, fields).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!((&paid.json()["response_code"], &paid.json()["closing"]), (&json!(2), &json!("9900.00")));
    assert_verify_clean(&app);
}

async fn a_billers_missing_customer_parameter_is_refused_naming_it(engine: Engine) {
    let app = sandbox_app(engine).await;
    let partner = funded(&app).await;
    // Mahanagar Gas (21) asks for "CA Number" (canumber) and "Bill Group Number" (ad1).
    let fetch = json!({"operator": 21, "canumber": 210012345678_u64, "mode": "online"});
    assert_refused(&app.call(FETCH, &partner, fetch.clone()).await, 400, 8, "ad1 (Bill Group Number) is missing");
    let pay = json!({"operator": "21", "canumber": "210012345678", "amount": "100", "referenceid": "AD-21"});
    assert_refused(&app.call(PAYBILL, &partner, pay.clone()).await, 400, 8, "ad1 (Bill Group Number) is missing");
    assert_eq!(balance(&app, &partner).await, "10000.00", "nothing was debited");
    let mut with_group = fetch;
    with_group["ad1"] = json!("BG-7");
    assert_eq!(app.call(FETCH, &partner, with_group).await.status, 200);
    let mut pay_with_group = pay;
    pay_with_group["ad1"] = json!("BG-7");
    assert_eq!(app.call(PAYBILL, &partner, pay_with_group).await.status, 200);
}

async fn the_operator_list_filters_by_category_in_any_case_and_refuses_an_unknown_one(engine: Engine) {
    let app = sandbox_app(engine).await;
    let partner = funded(&app).await;
    let lpg = app.call(OPERATORS, &partner, json!({"mode": "online", "category": "lpg gas"})).await;
    assert_eq!(lpg.status, 200, "{}", lpg.body);
    // The sample of docs/API.md, byte for byte.
    assert_eq!(
        lpg.body,
        concat!(
            r#"{"status":true,"response_code":1,"message":"Operators fetched","data":["#,
            r#"{"id":"90","name":"Indane Gas","category":"LPG Gas","displayname":"LPG ID","ad_params":[],"fetch_bill":true},"#,
            r#"{"id":"91","name":"Bharat Gas (BPCL)","category":"LPG Gas","displayname":"Consumer Number","#,
            r#""ad_params":["Distributor ID"],"fetch_bill":true}]}"#
        )
    );
    // Without a filter, every biller; the old path answers the same.
    let all = app.call(OPERATORS, &partner, json!({})).await;
    assert_eq!(all.json()["data"].as_array().map(Vec::len), Some(30), "{}", all.body);
    assert_eq!(app.call("/api/AOP/BillPaymentOperators", &partner, json!({})).await.body, all.body);

    let unknown = app.call(OPERATORS, &partner, json!({"category": "broadband"})).await;
    assert_refused(&unknown, 400, 8, "category \"broadband\" is unknown: the categories are Electricity, Gas, Water, Broadband Postpaid, Mobile Postpaid, DTH, Insurance, FASTag, LPG Gas, Loan Repayment");
    let bad_mode = app.call(OPERATORS, &partner, json!({"mode": "upi"})).await;
    assert_refused(&bad_mode, 400, 8, "mode must be online or offline");
}

async fn paybill_answers_1_2_or_0_by_outcome_and_an_immediate_failure_closes_where_it_opened(engine: Engine) {
    let app = sandbox_app(engine).await;
    let partner = funded(&app).await;
    let pay = |account: &str, reference: &str| json!({"operator": "1", "canumber": account, "amount": "500", "referenceid": reference, "mode": "online"});
    // Sandbox: `888` succeeds at once, anything else is pending at first, `111` fails at once.
    let paid = app.call(PAYBILL, &partner, pay("150012345888", "OUT-1")).await;
    let body = paid.json();
    assert_eq!(
        (&body["status"], &body["response_code"], &body["message"]),
        (&json!(true), &json!(1), &json!("Transaction Successful")),
        "{}",
        paid.body
    );
    assert!(body["operatorid"].is_string() && body["ackno"].is_i64(), "{}", paid.body);
    assert_eq!((&body["opening"], &body["closing"]), (&json!("10000.00"), &json!("9500.00")));

    let pending = app.call(PAYBILL, &partner, pay("150012345678", "OUT-2")).await.json();
    assert_eq!(
        (&pending["status"], &pending["response_code"], &pending["operatorid"]),
        (&json!(true), &json!(2), &Value::Null)
    );
    assert_eq!((&pending["opening"], &pending["closing"]), (&json!("9500.00"), &json!("9000.00")));

    let failed = app.call(PAYBILL, &partner, pay("150012345111", "OUT-3")).await;
    assert_eq!(failed.status, 200, "{}", failed.body);
    let failed = failed.json();
    assert_eq!(
        (&failed["status"], &failed["response_code"], &failed["message"]),
        (&json!(false), &json!(0), &json!("Transaction Refunded"))
    );
    assert!(failed["ackno"].is_i64(), "{failed}");
    assert_eq!(
        (&failed["opening"], &failed["closing"]),
        (&json!("9000.00"), &json!("9000.00")),
        "closed after its refund"
    );
    assert_eq!(balance(&app, &partner).await, "9000.00");
    assert_verify_clean(&app);
}

async fn bad_mode_coordinates_and_bill_fetch_are_refused_and_nothing_is_written(engine: Engine) {
    let app = sandbox_app(engine).await;
    let partner = funded(&app).await;
    let counts = app.store.counts().await.unwrap_or_else(|e| panic!("{e}"));
    let good_fetch = fetched_bill_fetch(&app, &partner, 1, "150012345678").await;
    let base = json!({"operator": "1", "canumber": "150012345678", "amount": "100", "referenceid": "BAD-1",
                      "latitude": "27.2232", "longitude": "78.26535", "mode": "online", "bill_fetch": good_fetch});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        match value {
            Value::Null => {
                body.as_object_mut().map(|o| o.remove(field));
            }
            value => body[field] = value,
        }
        body
    };
    let echo_with = |field: &str, value: Value| {
        let mut echo = good_fetch.clone();
        match value {
            Value::Null => {
                echo.as_object_mut().map(|o| o.remove(field));
            }
            value => echo[field] = value,
        }
        with("bill_fetch", echo)
    };
    let cases = [
        (with("mode", json!("online /offline")), "mode must be online or offline"),
        (with("latitude", json!("91")), "latitude must be decimal degrees within ±90"),
        (with("longitude", json!("78,26")), "longitude must be decimal degrees"),
        (with("longitude", Value::Null), "longitude is missing"),
        (with("bill_fetch", json!("820.0")), "bill_fetch must be a JSON object"),
        (echo_with("acceptPartPay", json!("false")), "bill_fetch.acceptPartPay must be true or false"),
        (echo_with("billAmount", Value::Null), "bill_fetch.billAmount is missing"),
        (echo_with("billAmount", json!(820)), "bill_fetch.billAmount must be a string"),
        (echo_with("billnetamount", json!("8.201")), "bill_fetch.billnetamount"),
    ];
    for (body, needle) in cases {
        assert_refused(&app.call(PAYBILL, &partner, body).await, 400, 8, needle);
    }
    let fetch = json!({"operator": 1, "canumber": "150012345678", "mode": "UPI"});
    assert_refused(&app.call(FETCH, &partner, fetch).await, 400, 8, "mode must be online or offline");
    assert_eq!(balance(&app, &partner).await, "10000.00");
    assert_eq!(app.store.counts().await.unwrap_or_else(|e| panic!("{e}")), counts, "nothing was written");
    // The same body with nothing wrong is paid; `mode` in capitals is read.
    let fine = with("mode", json!("OFFLINE"));
    assert_eq!(app.call(PAYBILL, &partner, fine).await.status, 200);
}

async fn through_paysprint_a_payment_carries_its_mode_location_and_the_providers_bill(engine: Engine) {
    let mock = MockUpstream::start(JWT_KEY, PARTNER_ID, "").await;
    let options = AppOptions { upstream: TestUpstream::Provider(connector(&mock)), ..AppOptions::default() };
    let app = spawn_app_with(engine, options).await;
    let partner = funded(&app).await;
    // The mock's bill: ₹1234.50, whole only for WHOLE_BILL_ACCOUNT.
    let whole = json!({"operator": "1", "canumber": WHOLE_BILL_ACCOUNT, "amount": "1000", "referenceid": "PS-1"});
    assert_refused(&app.call(PAYBILL, &partner, whole).await, 400, 8, "amount must be 1234.50, the whole bill");
    let fetched = app.call(FETCH, &partner, json!({"operator": 1, "canumber": "CA778899", "mode": "offline"})).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let bill_fetch = fetched.json()["bill_fetch"].clone();
    assert_eq!((&bill_fetch["billdate"], &bill_fetch["acceptPartPay"]), (&json!("01Jan2026"), &json!(true)));
    let fields = json!({"operator": "1", "canumber": "CA778899", "amount": "1000", "referenceid": "PS-2",
                        "latitude": "27.2232", "longitude": "78.26535", "mode": "offline", "bill_fetch": bill_fetch});
    let paid = app.call(PAYBILL, &partner, fields).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let calls = mock.calls();
    let fetches: Vec<&Value> =
        calls.iter().filter(|c| c.path == "bill-payment/bill/fetchbill").map(|c| &c.body).collect();
    assert_eq!(fetches[1], &json!({"operator": 1, "canumber": "CA778899", "mode": "offline"}));
    let sent = calls.iter().find(|c| c.path == "bill-payment/bill/paybill").map(|c| c.body.clone());
    let sent = sent.unwrap_or_else(|| panic!("no paybill: {calls:?}"));
    assert_eq!(
        (&sent["mode"], &sent["latitude"], &sent["longitude"], &sent["amount"]),
        (&json!("offline"), &json!("27.2232"), &json!("78.26535"), &json!("1000"))
    );
    assert_eq!(
        sent["bill_fetch"],
        json!({"billAmount": "1234.50", "billnetamount": "1234.50", "billdate": "01Jan2026", "dueDate": "2026-01-20",
               "acceptPayment": true, "acceptPartPay": true, "cellNumber": "CA778899", "userName": "RAMESH KUMAR"})
    );

    // A biller that gives no bill date nor cell number: null, never "", and the echo of it is taken.
    let sparse = json!({"status": true, "response_code": 1, "name": "Asha", "amount": "300", "duedate": "2026-01-20",
                        "bill_fetch": {"billAmount": "300", "acceptPartPay": true}});
    mock.script("CA-SPARSE", Script::new().fetch(Reply::Raw(sparse)));
    let fetched = app.call(FETCH, &partner, json!({"operator": 1, "canumber": "CA-SPARSE"})).await;
    assert_eq!(
        fetched.body,
        concat!(
            r#"{"status":true,"amount":"300","name":"Asha","duedate":"2026-01-20","bill_fetch":{"billAmount":"300","#,
            r#""billnetamount":"300","billdate":null,"dueDate":"2026-01-20","acceptPayment":true,"acceptPartPay":true,"#,
            r#""cellNumber":null,"userName":"Asha"},"message":"Bill fetched"}"#
        )
    );
    let echo = fetched.json()["bill_fetch"].clone();
    let fields =
        json!({"operator": 1, "canumber": "CA-SPARSE", "amount": "300", "referenceid": "PS-3", "bill_fetch": echo});
    let paid = app.call(PAYBILL, &partner, fields).await;
    assert_eq!(paid.status, 200, "{}", paid.body);

    // A bill the biller takes no payment on now is refused, whatever the amount.
    let closed = json!({"status": true, "response_code": 1, "name": "Asha", "amount": "300", "duedate": "2026-01-20",
                        "bill_fetch": {"billAmount": "300", "acceptPayment": false, "acceptPartPay": true}});
    mock.script("CA-CLOSED", Script::new().fetch(Reply::Raw(closed)));
    let fields = json!({"operator": 1, "canumber": "CA-CLOSED", "amount": "300", "referenceid": "PS-4"});
    let refused = app.call(PAYBILL, &partner, fields).await;
    assert_refused(&refused, 400, 8, "the biller takes no payment on this bill now");
    let submits = mock.calls().iter().filter(|c| c.path == "bill-payment/bill/paybill").count();
    assert_eq!(submits, 2, "PS-2 and PS-3 only: nothing refused went upstream");
}
