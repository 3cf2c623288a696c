//! The Paysprint connector against the fake upstream: what each answer
//! becomes, that a submission is never sent twice, and that credentials
//! travel both ways.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use payrail::domain::remitter_details::{BirthDate, GstState, Pincode, RemitterDetails};
use payrail::domain::upstream::{BillUpstream, DmtUpstream};
use payrail::domain::{
    BillMode, BillPayment, BillStatus, DmtCharges, DmtStatus, DmtTransfer, GeoPoint, Paise, ReferenceId,
    RegistrationId, Timestamp,
};
use payrail::services::billers;
use payrail::services::upstream::paysprint::{PaysprintConfig, PaysprintProvider};
use payrail::services::upstream::provider::{
    BillOrder, BillQuery, CallbackError, FetchedBill, Provider, ProviderError, TransferOrder, UpstreamReport,
};
use secrecy::SecretString;
use serde_json::json;

use crate::mock_upstream::{Call, MockUpstream, Reply, Script, FIXED_BILL, NO_BILL_ACCOUNT, WHOLE_BILL_ACCOUNT};

const JWT_KEY: &str = "upstream-jwt-key";
const PARTNER_ID: &str = "PS004217";
pub const AUTHORISED_KEY: &str = "authorised-key-1";
/// Short, so that the timeout tests are fast; the fake hangs for longer.
const TIMEOUT: Duration = Duration::from_millis(400);
const HANG: Duration = Duration::from_secs(3);

pub async fn mock() -> MockUpstream {
    MockUpstream::start(JWT_KEY, PARTNER_ID, AUTHORISED_KEY).await
}

fn connector_with(url: &str, jwt_key: &str, authorised_key: &str) -> PaysprintProvider {
    let mut config = PaysprintConfig::new(url, PARTNER_ID, SecretString::from(jwt_key));
    config.authorised_key = Some(SecretString::from(authorised_key));
    config.submit_timeout = TIMEOUT;
    config.status_timeout = TIMEOUT;
    PaysprintProvider::new(config).unwrap_or_else(|e| panic!("{e:#}"))
}

fn connector(mock: &MockUpstream) -> PaysprintProvider {
    connector_with(&mock.url, JWT_KEY, AUTHORISED_KEY)
}

fn transfer() -> DmtTransfer {
    DmtTransfer {
        ackno: 7,
        partner: RegistrationId::new(554),
        reference: ReferenceId::parse("R1").unwrap_or_else(|e| panic!("{e}")),
        amount: Paise::new(150_050),
        account: "50100123456789".into(),
        utr: None,
        status: DmtStatus::InProcess,
        charges: DmtCharges::compute(Paise::rupees(10), Paise::rupees(3), Timestamp::from_unix(1_780_000_000)),
        created_at: Timestamp::from_unix(1_780_000_000),
        refund_txn_id: None,
        refunded_at: None,
        upstream_ackno: None,
    }
}

pub fn transfer_order(reference: &str) -> TransferOrder {
    TransferOrder {
        upstream_ref: reference.into(),
        transfer: transfer(),
        mobile: "9876543210".into(),
        beneficiary_id: 42,
        upstream_bene_id: Some("7000042".into()),
        beneficiary_name: "Asha Verma".into(),
        ifsc: "HDFC0001234".into(),
        pipe: 2,
        mode: "IMPS".into(),
        details: RemitterDetails {
            dob: BirthDate::from_stored("2000-08-20").ok(),
            address: Some("New delhi".into()),
            pincode: Pincode::parse("110045").ok(),
            gst_state: GstState::parse("07").ok(),
        },
        location: Some(("28.6090".into(), "77.2362".into())),
    }
}

fn payment() -> BillPayment {
    BillPayment {
        txnid: 11,
        partner: RegistrationId::new(554),
        reference: ReferenceId::parse("B1").unwrap_or_else(|e| panic!("{e}")),
        operator_name: "Test Electricity".into(),
        ca_number: "CA778899".into(),
        amount: Paise::rupees(499),
        ad1: Some("North".into()),
        ad2: None,
        ad3: None,
        commission: Paise::ZERO,
        tds: Paise::ZERO,
        status: BillStatus::Pending,
        operator_ref: None,
        created_at: Timestamp::from_unix(1_780_000_000),
        refund_txn_id: None,
        refunded_at: None,
    }
}

fn bill_order(reference: &str) -> BillOrder {
    BillOrder {
        upstream_ref: reference.into(),
        payment: payment(),
        biller_id: 1,
        mode: BillMode::Online,
        location: None,
        bill: None,
    }
}

async fn submit(provider: &PaysprintProvider, reference: &str) -> Result<DmtUpstream, ProviderError> {
    provider.submit_transfer(&transfer_order(reference)).await
}

async fn status(provider: &PaysprintProvider, reference: &str) -> Result<DmtUpstream, ProviderError> {
    provider.dmt_status(reference, &transfer()).await
}

fn only_call(mock: &MockUpstream) -> Call {
    let calls = mock.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].clone()
}

#[tokio::test]
async fn a_transfer_paid_upstream_is_a_success_with_its_utr_and_the_request_says_what_paysprint_needs() {
    let mock = mock().await;
    mock.script("PRD1", Script::new().submit(Reply::dmt(1, Some("UTR000111"))));
    let report = submit(&connector(&mock), "PRD1").await;
    assert_eq!(report.ok(), Some(DmtUpstream::Success { utr: Some("UTR000111".into()) }));
    let call = only_call(&mock);
    assert!(call.accepted, "the fake refused the connector's credentials");
    assert_eq!(call.path, "dmt/transact/transact");
    assert_eq!(call.user_agent.as_deref(), Some(concat!("payrail/", env!("CARGO_PKG_VERSION"))));
    assert_eq!(call.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        call.body,
        json!({"mobile": "9876543210", "referenceid": "PRD1", "pipe": "bank2", "bene_id": "7000042", "txntype": "IMPS",
               "amount": "1500.50", "benename": "Asha Verma", "accno": "50100123456789",
               "ifsccode": "HDFC0001234", "pincode": "110045", "address": "New delhi", "dob": "20-08-2000",
               "gst_state": "07"})
    );
}

#[tokio::test]
async fn a_transfer_refused_upstream_is_a_failure() {
    let mock = mock().await;
    // Paysprint sends its refusals as 4xx with a code (13: 401); a code 0 is not on its page.
    mock.script("PRD2", Script::new().submit(Reply::http(401, 13, false, "Insufficient fund in your account")));
    assert_eq!(submit(&connector(&mock), "PRD2").await.ok(), Some(DmtUpstream::Failed));
    mock.script("PRD2", Script::new().submit(Reply::answer(0, false, "Insufficient fund in your account")));
    assert!(matches!(submit(&connector(&mock), "PRD2").await, Ok(DmtUpstream::Unknown { .. })));
}

#[tokio::test]
async fn a_submit_that_times_out_is_a_timeout_and_is_never_sent_twice() {
    let mock = mock().await;
    mock.script("PRD3", Script::new().submit(Reply::Hang(HANG)).status(Reply::Hang(HANG)));
    let provider = connector(&mock);
    // The mock hangs 3 s and then answers nothing: a timeout is the client giving up first.
    assert!(matches!(submit(&provider, "PRD3").await, Err(ProviderError::Timeout)));
    assert!(matches!(status(&provider, "PRD3").await, Err(ProviderError::Timeout)));
    assert_eq!((mock.submits("PRD3"), mock.status_queries("PRD3")), (1, 1));
}

#[tokio::test]
async fn garbage_is_garbage_a_server_error_is_unavailable_and_neither_is_sent_twice() {
    let mock = mock().await;
    mock.script("PRD4", Script::new().submit(Reply::Garbage).status(Reply::Raw(json!({"status": true}))));
    mock.script("PRD5", Script::new().submit(Reply::Http(502)).status(Reply::Http(404)));
    let provider = connector(&mock);
    assert!(matches!(submit(&provider, "PRD4").await, Err(ProviderError::Garbage(_))));
    assert!(matches!(status(&provider, "PRD4").await, Err(ProviderError::Garbage(_))));
    assert!(matches!(submit(&provider, "PRD5").await, Err(ProviderError::Unavailable(_))));
    // A 4xx with a JSON body is an answer: its code 0 is undocumented, so pending.
    assert!(matches!(status(&provider, "PRD5").await, Ok(DmtUpstream::Unknown { .. })));
    assert_eq!((mock.submits("PRD4"), mock.submits("PRD5")), (1, 1));
}

#[tokio::test]
async fn an_unknown_txn_status_is_unknown_and_never_a_final_state() {
    let mock = mock().await;
    mock.script("PRD6", Script::new().submit(Reply::dmt(9, None)).status(Reply::dmt(9, None)));
    let provider = connector(&mock);
    assert!(matches!(submit(&provider, "PRD6").await, Ok(DmtUpstream::Unknown { .. })));
    assert!(matches!(status(&provider, "PRD6").await, Ok(DmtUpstream::Unknown { .. })));
}

#[tokio::test]
async fn code_1_with_the_transfer_pending_is_in_process_and_codes_may_come_as_strings() {
    let mock = mock().await;
    mock.script("PRD7", Script::new().submit(Reply::dmt(2, None)));
    let no_txn_status = json!({"status": true, "response_code": "1", "message": "Transaction Pending"});
    mock.script("PRD8", Script::new().submit(Reply::Raw(no_txn_status)));
    let as_strings = json!({"status": true, "response_code": "1", "message": "Done",
                            "data": {"txn_status": "1", "utr": "UTR8"}});
    mock.script("PRD9", Script::new().status(Reply::Raw(as_strings)));
    let provider = connector(&mock);
    assert_eq!(submit(&provider, "PRD7").await.ok(), Some(DmtUpstream::InProcess));
    assert_eq!(submit(&provider, "PRD8").await.ok(), Some(DmtUpstream::InProcess));
    assert_eq!(status(&provider, "PRD9").await.ok(), Some(DmtUpstream::Success { utr: Some("UTR8".into()) }));
}

#[tokio::test]
async fn status_answers_follow_the_script_one_per_call_and_unscripted_ones_stay_undecided() {
    let mock = mock().await;
    mock.script("PRD10", Script::new().status(Reply::dmt(3, None)).status(Reply::dmt(1, Some("UTR10"))));
    let provider = connector(&mock);
    let paid = DmtUpstream::Success { utr: Some("UTR10".into()) };
    assert_eq!(status(&provider, "PRD10").await.ok(), Some(DmtUpstream::SentToBank));
    assert_eq!(status(&provider, "PRD10").await.ok(), Some(paid.clone()));
    assert_eq!(status(&provider, "PRD10").await.ok(), Some(paid));
    assert_eq!(mock.status_queries("PRD10"), 3);
    assert_eq!(submit(&provider, "PRD11").await.ok(), Some(DmtUpstream::SentToBank));
    assert_eq!(status(&provider, "PRD11").await.ok(), Some(DmtUpstream::InProcess));
}

#[tokio::test]
async fn a_transfer_the_upstream_does_not_know_is_unknown_not_failed() {
    let mock = mock().await;
    mock.script("PRD12", Script::new().status(Reply::answer(0, false, "Transaction not found")));
    let report = status(&connector(&mock), "PRD12").await;
    assert!(matches!(report, Ok(DmtUpstream::Unknown { ref detail }) if detail.contains("not found")), "{report:?}");
}

#[tokio::test]
async fn a_wrong_jwt_key_or_authorised_key_is_refused_and_the_connector_gets_an_error_not_a_state() {
    let mock = mock().await;
    mock.script("PRD13", Script::new().submit(Reply::dmt(1, Some("UTR13"))));
    // The fake refuses with 401 and a code Paysprint does not document (10):
    // read as an answer, it decides nothing.
    let wrong_jwt = connector_with(&mock.url, "not-the-key", AUTHORISED_KEY);
    assert!(matches!(submit(&wrong_jwt, "PRD13").await, Ok(DmtUpstream::Unknown { .. })));
    assert!(matches!(status(&wrong_jwt, "PRD13").await, Ok(DmtUpstream::Unknown { .. })));
    let wrong_authorised_key = connector_with(&mock.url, JWT_KEY, "not-the-authorised-key");
    assert!(matches!(submit(&wrong_authorised_key, "PRD13").await, Ok(DmtUpstream::Unknown { .. })));
    assert_eq!((mock.rejected(), mock.submits("PRD13")), (3, 0));
}

#[tokio::test]
async fn a_replayed_token_is_refused_by_the_fake() {
    let mock = mock().await;
    let token = mock.token();
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = http
            .post(format!("{}/dmt/transact/transact/querytransact", mock.url))
            .header("Token", &token)
            .header("Authorisedkey", AUTHORISED_KEY)
            .json(&json!({"referenceid": "PRD14"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 401]);
    assert_eq!((mock.status_queries("PRD14"), mock.rejected()), (1, 1));
}

#[tokio::test]
async fn a_closed_port_is_unavailable_after_two_retries_and_the_fake_sees_nothing() {
    let mock = mock().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = closed.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    drop(closed);
    let provider = connector_with(&format!("http://127.0.0.1:{port}/api/v1/service"), JWT_KEY, AUTHORISED_KEY);
    let started = Instant::now();
    assert!(matches!(submit(&provider, "PRD15").await, Err(ProviderError::Unavailable(_))));
    // Three tries, 200 ms apart: the request provably never left.
    assert!(started.elapsed() >= Duration::from_millis(400), "took {:?}", started.elapsed());
    assert!(matches!(status(&provider, "PRD15").await, Err(ProviderError::Unavailable(_))));
    assert!(mock.calls().is_empty());
}

#[tokio::test]
async fn bill_payments_map_paid_refused_and_pending() {
    let mock = mock().await;
    mock.script("PRB1", Script::new().submit(Reply::bill(1, Some("OP-771"))));
    mock.script("PRB2", Script::new().submit(Reply::answer(0, false, "Invalid CA number")));
    let provider = connector(&mock);
    let paid = provider.submit_bill(&bill_order("PRB1")).await;
    assert_eq!(paid.ok(), Some(BillUpstream::Success { operator_ref: Some("OP-771".into()) }));
    assert_eq!(provider.submit_bill(&bill_order("PRB2")).await.ok(), Some(BillUpstream::Failed));
    assert_eq!(provider.submit_bill(&bill_order("PRB3")).await.ok(), Some(BillUpstream::Pending));
    let first = &mock.calls()[0];
    assert_eq!(first.path, "bill-payment/bill/paybill");
    assert_eq!(
        first.body,
        json!({"operator": 1, "canumber": "CA778899", "amount": "499", "referenceid": "PRB1",
               "ad1": "North", "ad2": null, "ad3": null, "mode": "online"})
    );
}

#[tokio::test]
async fn a_bill_payment_passes_on_its_mode_location_and_fetched_bill() {
    let mock = mock().await;
    let provider = connector(&mock);
    let bill = FetchedBill {
        customer_name: "SALMAN".into(),
        amount: Paise::rupees(820),
        net_amount: Paise::rupees(820),
        bill_date: Some("01Jan1990".into()),
        due_date: "2021-01-06".into(),
        accept_payment: true,
        accept_part_pay: false,
        cell_number: Some("102277100".into()),
        user_name: "SALMAN".into(),
    };
    let mut order = bill_order("PRB9");
    order.mode = BillMode::Offline;
    order.location = Some(GeoPoint { latitude: "27.2232".into(), longitude: "78.26535".into() });
    order.bill = Some(bill);
    provider.submit_bill(&order).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        mock.calls()[0].body,
        json!({"operator": 1, "canumber": "CA778899", "amount": "499", "referenceid": "PRB9",
               "latitude": "27.2232", "longitude": "78.26535", "ad1": "North", "ad2": null, "ad3": null,
               "mode": "offline",
               "bill_fetch": {"billAmount": "820.00", "billnetamount": "820.00", "billdate": "01Jan1990",
                              "dueDate": "2021-01-06", "acceptPayment": true, "acceptPartPay": false,
                              "cellNumber": "102277100", "userName": "SALMAN"}})
    );
}

#[tokio::test]
async fn bill_status_maps_paid_failed_pending_and_unknown_in_turn() {
    let mock = mock().await;
    let script = Script::new()
        .status(Reply::bill(2, None))
        .status(Reply::bill(1, Some("OP-9")))
        .status(Reply::bill(0, None))
        .status(Reply::bill(7, None));
    mock.script("PRB4", script);
    let provider = connector(&mock);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(provider.bill_status("PRB4", &payment()).await.unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(
        &seen[..3],
        [BillUpstream::Pending, BillUpstream::Success { operator_ref: Some("OP-9".into()) }, BillUpstream::Failed]
    );
    assert!(matches!(seen[3], BillUpstream::Unknown { .. }));
    assert!(mock.calls().iter().all(|call| call.path == "bill-payment/bill/status"));
}

#[tokio::test]
async fn a_fetched_bill_is_the_upstreams_and_an_account_without_one_has_no_bill() {
    let mock = mock().await;
    mock.script("CA-GARBLED", Script::new().fetch(Reply::Garbage));
    let provider = connector(&mock);
    let biller = billers::find(1).unwrap_or_else(|| panic!("biller 1"));
    let extra = [None, None, None];
    let query = |account| BillQuery { biller, account, extra: &extra, mode: BillMode::Online };
    let bill = provider.fetch_bill(&query("CA778899")).await.unwrap_or_else(|e| panic!("{e}"));
    let (name, amount, due, date) = FIXED_BILL;
    assert_eq!(
        (bill.customer_name.as_str(), bill.amount, bill.due_date.as_str(), bill.accept_part_pay),
        (name, Paise::parse(amount).expect("the fixture amount"), due, true)
    );
    assert_eq!(bill.bill_date.as_deref(), Some(date));
    let whole = provider.fetch_bill(&query(WHOLE_BILL_ACCOUNT)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!whole.accept_part_pay && whole.accept_payment);
    assert!(matches!(provider.fetch_bill(&query(NO_BILL_ACCOUNT)).await, Err(ProviderError::NoBill)));
    assert!(matches!(provider.fetch_bill(&query("CA-GARBLED")).await, Err(ProviderError::Garbage(_))));
    let first = &mock.calls()[0];
    assert_eq!((first.path.as_str(), first.reference.as_deref()), ("bill-payment/bill/fetchbill", Some("CA778899")));
    assert_eq!(first.body, json!({"operator": 1, "canumber": "CA778899", "mode": "online"}));
    assert!(first.at <= Instant::now());
}

/// A stand-in for payrail's callback endpoint: the connector reads what arrives.
async fn callback_receiver(provider: Arc<PaysprintProvider>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let route = axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let provider = provider.clone();
        async move {
            let token = headers.get("Token").and_then(|v| v.to_str().ok());
            match provider.read_callback(token, &body, Timestamp::now()) {
                Ok(callback) => (StatusCode::OK, format!("{}: {:?}", callback.upstream_ref, callback.report)),
                Err(e @ CallbackError::Unauthenticated(_)) => (StatusCode::UNAUTHORIZED, e.to_string()),
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
    });
    let app = axum::Router::new().route("/upstream/v1/callback", route);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn callbacks_signed_by_the_fake_are_read_and_forged_or_unsigned_ones_refused() {
    let mock = mock().await;
    let payrail = callback_receiver(Arc::new(connector(&mock))).await;
    let dmt = MockUpstream::dmt_callback("PRD16", 1, Some("UTR16"));
    let (code, body) = mock.send_callback(&payrail, &dmt).await;
    let expected = UpstreamReport::Dmt(DmtUpstream::Success { utr: Some("UTR16".into()) });
    assert_eq!((code, body), (200, format!("PRD16: {expected:?}")));
    let bill = MockUpstream::bill_callback("PRB5", 0, None);
    let (code, body) = mock.send_callback(&payrail, &bill).await;
    assert_eq!((code, body), (200, format!("PRB5: {:?}", UpstreamReport::Bill(BillUpstream::Failed))));
    assert_eq!(mock.send_callback_with_bad_token(&payrail, &dmt).await.0, 401);
    // Paysprint sends no header: the signed copy of param is what counts (issue 12 item 8).
    assert_eq!(mock.post_callback(&payrail, None, &dmt).await, (200, format!("PRD16: {expected:?}")));
    assert_eq!(mock.post_exactly(&payrail, None, &dmt).await.0, 401, "no param_inc");
    assert_eq!(mock.send_callback(&payrail, &json!({"event": "DMT"})).await.0, 400);
}
