//! A fake Paysprint: a real HTTP server on a free loopback port that checks
//! every request's credentials as the real one would, answers as each
//! transaction's [`Script`] says, and keeps every call for assertions. It
//! also plays the upstream's side of callbacks ([`MockUpstream::send_callback`]).
//!
//! Give a connector [`MockUpstream::url`] as its base URL; the calls land
//! under [`BASE_PATH`], as Paysprint's `api/v1/service/...` do.

mod answers;

pub use answers::MOCK_HOLDER;
use answers::{json_response, merge_into};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use payrail::domain::token::{verify_token, TokenKey};
use payrail::domain::Timestamp;
use payrail_client::token::sign_raw;
use payrail_client::{sign_token, TokenClaims};
use serde_json::{json, Value};

/// Where the fake's endpoints live under its root.
pub const BASE_PATH: &str = "/api/v1/service";

/// A customer account the fetch endpoint has no bill for.
pub const NO_BILL_ACCOUNT: &str = "0000000000";

/// A customer account whose bill must be paid whole (`acceptPartPay` false).
pub const WHOLE_BILL_ACCOUNT: &str = "9999999999";

/// The bill the fetch endpoint returns for every other account: name,
/// amount, due date, bill date. It takes part payments except for
/// [`WHOLE_BILL_ACCOUNT`].
pub const FIXED_BILL: (&str, &str, &str, &str) = ("Ramesh Kumar", "1234.50", "2026-01-20", "01Jan2026");

/// The refund OTP the fake "texts" the remitter: a refund claim with it
/// succeeds once, unless scripted otherwise.
pub const MOCK_REFUND_OTP: &str = "246810";

/// How long a token's `timestamp` may be off, as on the real upstream.
const MAX_SKEW_SECS: i64 = 300;

/// What one call is answered with.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A well-formed answer, shaped for the endpoint called.
    Answer(Outcome),
    /// This JSON body, 200, whatever the endpoint.
    Raw(Value),
    /// Sleeps this long (longer than the client waits), then answers as if unscripted.
    Hang(Duration),
    /// 200 with `<html>oops`.
    Garbage,
    /// This HTTP status with a short JSON body.
    Http(u16),
    /// This HTTP status with this JSON body (Paysprint's refusals come as 4xx with a body).
    HttpBody(u16, Value),
    /// 200 with a body far over payrail's 1 MiB cap (64 MiB of spaces after
    /// `{"status":true,`), streamed in 64 KiB chunks; with or without a
    /// `Content-Length` (without: chunked). Every byte handed to the
    /// connection is counted ([`MockUpstream::huge_bytes_sent`]).
    Huge {
        /// Whether the answer announces its length.
        content_length: bool,
    },
}

/// How long a [`Reply::Huge`] answer is.
pub const HUGE_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// The fields of a well-formed answer. `code` is `txn_status` on the DMT
/// endpoints and `data.status` on bill status; `reference` is the `utr` or
/// the `operatorid`.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The HTTP status it is sent with (200 unless [`Outcome::http`] says otherwise).
    pub http: u16,
    pub status: bool,
    pub response_code: i64,
    pub code: Option<Value>,
    pub reference: Option<String>,
    pub message: String,
    /// Extra fields merged into the body (see [`Outcome::with`]).
    pub extras: Value,
}

impl Outcome {
    /// An accepted transfer answer (code 1) with this `txn_status` and UTR.
    pub fn dmt(txn_status: i64, utr: Option<&str>) -> Outcome {
        Outcome {
            http: 200,
            status: true,
            response_code: 1,
            code: Some(json!(txn_status)),
            reference: utr.map(str::to_owned),
            message: format!("txn_status {txn_status}"),
            extras: Value::Null,
        }
    }

    /// An accepted bill answer (code 1) with this `status` (sent as a string) and operator reference.
    pub fn bill(status: i64, operator_id: Option<&str>) -> Outcome {
        Outcome {
            http: 200,
            status: true,
            response_code: 1,
            code: Some(json!(status.to_string())),
            reference: operator_id.map(str::to_owned),
            message: format!("status {status}"),
            extras: Value::Null,
        }
    }

    /// A penny drop's answer: code 1, the bank holds the account under `name`.
    pub fn holder(name: &str) -> Outcome {
        Outcome {
            http: 200,
            status: true,
            response_code: 1,
            code: None,
            reference: Some(name.into()),
            message: "Beneficiary name verified".into(),
            extras: Value::Null,
        }
    }

    /// Only `status`, `response_code` and `message`.
    pub fn answer(response_code: i64, status: bool, message: &str) -> Outcome {
        Outcome {
            http: 200,
            status,
            response_code,
            code: None,
            reference: None,
            message: message.into(),
            extras: Value::Null,
        }
    }

    /// As [`Outcome::answer`], sent with HTTP `http` (Paysprint sends most
    /// refusals as 401, 406 or 412 with such a body).
    pub fn http(http: u16, response_code: i64, status: bool, message: &str) -> Outcome {
        Outcome { http, ..Outcome::answer(response_code, status, message) }
    }

    /// This outcome with these extra fields in its body (e.g. `amount`,
    /// `referenceid`), at the top level, or under `data` when it has one.
    pub fn with(self, extra: Value) -> Outcome {
        let mut extras = self.extras.clone();
        merge_into(&mut extras, extra);
        Outcome { extras, ..self }
    }
}

impl Reply {
    /// See [`Outcome::dmt`].
    pub fn dmt(txn_status: i64, utr: Option<&str>) -> Reply {
        Reply::Answer(Outcome::dmt(txn_status, utr))
    }

    /// See [`Outcome::bill`].
    pub fn bill(status: i64, operator_id: Option<&str>) -> Reply {
        Reply::Answer(Outcome::bill(status, operator_id))
    }

    /// See [`Outcome::answer`] (sent as HTTP 200).
    pub fn answer(response_code: i64, status: bool, message: &str) -> Reply {
        Reply::Answer(Outcome::answer(response_code, status, message))
    }

    /// See [`Outcome::http`]: `http(406, 19, false, "Duplicate transaction reference number.")`.
    pub fn http(http: u16, response_code: i64, status: bool, message: &str) -> Reply {
        Reply::Answer(Outcome::http(http, response_code, status, message))
    }
}

/// How the fake answers about one `referenceid` (or, for bill fetches, one
/// `canumber`). Every submission gets the submit reply; status queries take
/// the status replies one per call, the last repeating.
#[derive(Debug, Clone, Default)]
pub struct Script {
    submit: Option<Reply>,
    statuses: Vec<Reply>,
    fetch: Option<Reply>,
    refund_otp: Option<Reply>,
    refunds: Vec<Reply>,
}

impl Script {
    /// Unscripted answers throughout.
    pub fn new() -> Script {
        Script::default()
    }

    /// How submissions are answered.
    pub fn submit(mut self, reply: Reply) -> Script {
        self.submit = Some(reply);
        self
    }

    /// The next status answer in line.
    pub fn status(mut self, reply: Reply) -> Script {
        self.statuses.push(reply);
        self
    }

    /// How a bill fetch for this account is answered.
    pub fn fetch(mut self, reply: Reply) -> Script {
        self.fetch = Some(reply);
        self
    }

    /// How refund OTP requests (`resendotp`) are answered.
    pub fn refund_otp(mut self, reply: Reply) -> Script {
        self.refund_otp = Some(reply);
        self
    }

    /// The next refund claim answer in line (one per call, the last repeating).
    pub fn refund(mut self, reply: Reply) -> Script {
        self.refunds.push(reply);
        self
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// Relative to the base URL, e.g. `dmt/transact/transact`.
    pub path: String,
    /// The body's `referenceid` (or `canumber` for a fetch).
    pub reference: Option<String>,
    /// When it arrived.
    pub at: Instant,
    pub user_agent: Option<String>,
    pub content_type: Option<String>,
    /// The JSON body (`null` if it was not JSON).
    pub body: Value,
    /// `false` when its credentials were refused (answered 401).
    pub accepted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Transact,
    QueryTransact,
    PayBill,
    BillStatus,
    FetchBill,
    /// A remitter's e-KYC, keyed by its `mobile`; scripted with [`Script::submit`].
    Ekyc,
    BeneNameVerify,
    /// The remitter and beneficiary calls, answered from what the fake
    /// holds ([`MockUpstream::beneficiaries`]) unless a script for their key
    /// (the `mobile`, the `accno` for a registration, the `bene_id` for a
    /// deletion) says otherwise with [`Script::submit`]. They take no queued
    /// or fallback script: those are for transactions.
    QueryRemitter,
    RegisterRemitter,
    RegisterBeneficiary,
    DeleteBeneficiary,
    FetchBeneficiary,
    /// `dmt/refund/refund/resendotp`.
    RefundOtp,
    /// `dmt/refund/refund/` (with or without its trailing slash).
    Refund,
}

impl Endpoint {
    fn of(path: &str) -> Option<Endpoint> {
        Some(match path {
            "dmt/transact/transact" | "dmt/kyc/transact/transact" => Endpoint::Transact,
            "dmt/transact/transact/querytransact" => Endpoint::QueryTransact,
            "bill-payment/bill/paybill" => Endpoint::PayBill,
            "bill-payment/bill/status" => Endpoint::BillStatus,
            "bill-payment/bill/fetchbill" => Endpoint::FetchBill,
            "dmt/kyc/remitter/queryremitter/kyc" => Endpoint::Ekyc,
            "dmt/beneficiary/registerbeneficiary/benenameverify" => Endpoint::BeneNameVerify,
            "dmt/remitter/queryremitter" => Endpoint::QueryRemitter,
            "dmt/remitter/registerremitter" => Endpoint::RegisterRemitter,
            "dmt/beneficiary/registerbeneficiary" => Endpoint::RegisterBeneficiary,
            "dmt/beneficiary/registerbeneficiary/deletebeneficiary" => Endpoint::DeleteBeneficiary,
            "dmt/beneficiary/registerbeneficiary/fetchbeneficiary" => Endpoint::FetchBeneficiary,
            "dmt/refund/refund/resendotp" => Endpoint::RefundOtp,
            "dmt/refund/refund/" | "dmt/refund/refund" => Endpoint::Refund,
            _ => return None,
        })
    }

    fn is_submit(self) -> bool {
        matches!(self, Endpoint::Transact | Endpoint::PayBill | Endpoint::BeneNameVerify)
    }

    fn is_status(self) -> bool {
        matches!(self, Endpoint::QueryTransact | Endpoint::BillStatus)
    }

    fn is_enrolment(self) -> bool {
        matches!(
            self,
            Endpoint::QueryRemitter
                | Endpoint::RegisterRemitter
                | Endpoint::RegisterBeneficiary
                | Endpoint::DeleteBeneficiary
                | Endpoint::FetchBeneficiary
        )
    }
}

/// A beneficiary the fake holds, as it lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBeneficiary {
    pub bene_id: String,
    pub mobile: String,
    pub accno: String,
    pub ifsc: String,
}

#[derive(Default)]
struct Scripted {
    script: Script,
    statuses_served: usize,
    refunds_served: usize,
}

struct MockState {
    jwt_key: String,
    partner_id: String,
    authorised_key: String,
    scripts: Mutex<HashMap<String, Scripted>>,
    /// Scripts for references not named yet, taken in the order they first arrive.
    queued: Mutex<std::collections::VecDeque<Script>>,
    /// The script of any other reference.
    fallback: Mutex<Option<Script>>,
    calls: Mutex<Vec<Call>>,
    reqids: Mutex<HashSet<String>>,
    next_ackno: AtomicI64,
    /// Registered remitters' mobiles.
    remitters: Mutex<HashSet<String>>,
    /// Registered beneficiaries, in order of registration.
    beneficiaries: Mutex<Vec<HeldBeneficiary>>,
    next_bene_id: AtomicI64,
    /// Bytes of [`Reply::Huge`] answers handed to connections.
    huge_sent: Arc<AtomicU64>,
    /// The fake's own `ackno` of each transfer, by reference (as Paysprint's, one per transfer).
    acknos: Mutex<HashMap<String, i64>>,
    /// Transfers the fake refunded on a claim, by reference.
    refunded: Mutex<HashSet<String>>,
}

/// The running fake (cheap to clone; clones share everything).
#[derive(Clone)]
pub struct MockUpstream {
    /// The base URL to give the connector (`http://127.0.0.1:<port>/api/v1/service`).
    pub url: String,
    state: Arc<MockState>,
    http: reqwest::Client,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl MockUpstream {
    /// Starts a fake that accepts tokens signed with `jwt_key` for
    /// `partner_id`, and requires `authorised_key` as `Authorisedkey` (an
    /// empty one requires none).
    pub async fn start(jwt_key: &str, partner_id: &str, authorised_key: &str) -> MockUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let state = Arc::new(MockState {
            jwt_key: jwt_key.into(),
            partner_id: partner_id.into(),
            authorised_key: authorised_key.into(),
            scripts: Mutex::default(),
            queued: Mutex::default(),
            fallback: Mutex::default(),
            calls: Mutex::default(),
            reqids: Mutex::default(),
            next_ackno: AtomicI64::new(90_000),
            remitters: Mutex::default(),
            beneficiaries: Mutex::default(),
            next_bene_id: AtomicI64::new(7_000_001),
            huge_sent: Arc::default(),
            acknos: Mutex::default(),
            refunded: Mutex::default(),
        });
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        MockUpstream { url: format!("http://{addr}{BASE_PATH}"), state, http: reqwest::Client::new() }
    }

    /// Says how the fake answers about `reference` from now on (status
    /// answers start again from the first).
    pub fn script(&self, reference: &str, script: Script) {
        lock(&self.state.scripts).insert(reference.into(), Scripted { script, statuses_served: 0, refunds_served: 0 });
    }

    /// Says how the fake answers about the next reference it hears of that
    /// has no script: payrail's numbers are not predictable, so a test that
    /// makes transactions one after another scripts them in that order.
    pub fn script_next(&self, script: Script) {
        lock(&self.state.queued).push_back(script);
    }

    /// Says how the fake answers about every reference without a script of
    /// its own (each gets its own copy, with its own status answers).
    pub fn script_others(&self, script: Script) {
        *lock(&self.state.fallback) = Some(script);
    }

    /// The remitters registered with the fake, by mobile.
    pub fn remitters(&self) -> HashSet<String> {
        lock(&self.state.remitters).clone()
    }

    /// The beneficiaries the fake holds now.
    pub fn beneficiaries(&self) -> Vec<HeldBeneficiary> {
        lock(&self.state.beneficiaries).clone()
    }

    /// Accepted calls to the path ending in `suffix`, in order.
    pub fn calls_to(&self, suffix: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.accepted && c.path.ends_with(suffix)).collect()
    }

    /// Every call so far, refused ones included, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state.calls).clone()
    }

    /// Accepted submissions (transfer or bill) for `reference`.
    pub fn submits(&self, reference: &str) -> usize {
        self.count(|endpoint| endpoint.is_submit(), reference)
    }

    /// Accepted status queries (transfer or bill) for `reference`.
    pub fn status_queries(&self, reference: &str) -> usize {
        self.count(|endpoint| endpoint.is_status(), reference)
    }

    /// Bytes of [`Reply::Huge`] answers the fake managed to hand to its
    /// connections (a client that stops reading stops it well short of
    /// [`HUGE_ANSWER_BYTES`]).
    pub fn huge_bytes_sent(&self) -> u64 {
        self.state.huge_sent.load(Ordering::SeqCst)
    }

    /// Accepted calls to `path` for `reference`, in order.
    pub fn calls_for(&self, path: &str, reference: &str) -> Vec<Call> {
        let calls = lock(&self.state.calls);
        calls
            .iter()
            .filter(|c| c.accepted && c.path == path && c.reference.as_deref() == Some(reference))
            .cloned()
            .collect()
    }

    /// The fake's `ackno` of the transfer `reference`, once it answered about it.
    pub fn ackno_of(&self, reference: &str) -> Option<i64> {
        lock(&self.state.acknos).get(reference).copied()
    }

    /// Marks `reference` refunded, as if Paysprint had refunded it on its
    /// own: its status answers say `refunded` `"1"` from now on.
    pub fn mark_refunded(&self, reference: &str) {
        lock(&self.state.refunded).insert(reference.to_owned());
    }

    /// Calls refused for their credentials.
    pub fn rejected(&self) -> usize {
        lock(&self.state.calls).iter().filter(|call| !call.accepted).count()
    }

    fn count(&self, kind: impl Fn(Endpoint) -> bool, reference: &str) -> usize {
        let calls = lock(&self.state.calls);
        calls
            .iter()
            .filter(|c| c.accepted && c.reference.as_deref() == Some(reference))
            .filter(|c| Endpoint::of(&c.path).is_some_and(&kind))
            .count()
    }

    /// A fresh `Token` as the upstream signs its callbacks.
    pub fn token(&self) -> String {
        sign_token(self.state.jwt_key.as_bytes(), &TokenClaims::now(&self.state.partner_id))
    }

    /// POSTs `body` to `{payrail_base_url}/upstream/v1/callback` with a
    /// freshly signed token; the answer's status and body.
    pub async fn send_callback(&self, payrail_base_url: &str, body: &Value) -> (u16, String) {
        self.post_callback(payrail_base_url, Some(self.token()), body).await
    }

    /// As [`MockUpstream::send_callback`], with a token signed by the wrong key.
    pub async fn send_callback_with_bad_token(&self, payrail_base_url: &str, body: &Value) -> (u16, String) {
        let forged = sign_token(b"not-the-upstream-key", &TokenClaims::now(&self.state.partner_id));
        self.post_callback(payrail_base_url, Some(forged), body).await
    }

    /// As [`MockUpstream::send_callback`], with any token or none; the body
    /// gets its `param_inc` as the upstream signs it ([`MockUpstream::signed`]).
    pub async fn post_callback(&self, payrail_base_url: &str, token: Option<String>, body: &Value) -> (u16, String) {
        self.post_exactly(payrail_base_url, token.as_deref(), &self.signed(body)).await
    }

    /// `body` with `param_inc`, the copy of its `param` that the upstream
    /// signs (HS256, its JWT key), added; a body without `param` as it is.
    pub fn signed(&self, body: &Value) -> Value {
        let mut body = body.clone();
        if let Some(param) = body.get("param").cloned() {
            let header = br#"{"alg":"HS256","typ":"JWT"}"#;
            let signed = sign_raw(self.state.jwt_key.as_bytes(), header, param.to_string().as_bytes());
            body["param_inc"] = Value::String(signed);
        }
        body
    }

    /// POSTs exactly `body` with exactly `token`: a captured callback replayed or altered.
    pub async fn post_exactly(&self, payrail_base_url: &str, token: Option<&str>, body: &Value) -> (u16, String) {
        let url = format!("{}/upstream/v1/callback", payrail_base_url.trim_end_matches('/'));
        let mut request = self.http.post(&url).header("Content-Type", "application/json").body(body.to_string());
        if let Some(token) = token {
            request = request.header("Token", token);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_else(|e| panic!("{e}")))
    }

    /// A transfer callback body.
    pub fn dmt_callback(reference: &str, txn_status: i64, utr: Option<&str>) -> Value {
        json!({"event": "DMT", "param": {"referenceid": reference, "txn_status": txn_status, "utr": utr}})
    }

    /// A bill callback body (`status` sent as a string).
    pub fn bill_callback(reference: &str, status: i64, operator_id: Option<&str>) -> Value {
        json!({"event": "BBPS", "param": {"referenceid": reference, "status": status.to_string(),
                                          "operatorid": operator_id}})
    }
}

/// Every request: checked, recorded, answered.
async fn handle(State(state): State<Arc<MockState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let prefix = format!("{BASE_PATH}/");
    let Some(endpoint) = uri.path().strip_prefix(&prefix).and_then(Endpoint::of) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = match endpoint {
        Endpoint::FetchBill => "canumber",
        Endpoint::Ekyc | Endpoint::QueryRemitter | Endpoint::RegisterRemitter | Endpoint::FetchBeneficiary => "mobile",
        Endpoint::RegisterBeneficiary => "accno",
        Endpoint::DeleteBeneficiary => "bene_id",
        _ => "referenceid",
    };
    let reference = body[key].as_str().map(str::to_owned);
    let accepted = state.credentials_hold(&headers);
    let header_text = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    lock(&state.calls).push(Call {
        path: uri.path()[prefix.len()..].to_owned(),
        reference: reference.clone(),
        at: Instant::now(),
        user_agent: header_text(header::USER_AGENT),
        content_type: header_text(header::CONTENT_TYPE),
        body: body.clone(),
        accepted,
    });
    if !accepted {
        let refusal = json!({"status": false, "response_code": 10, "message": "Invalid token"});
        return json_response(StatusCode::UNAUTHORIZED, &refusal);
    }
    let reference = reference.unwrap_or_default();
    if endpoint.is_enrolment() {
        // A query is always answered from what the fake holds: a script for
        // the mobile is for its registration (and its e-KYC).
        let scripted = match endpoint {
            Endpoint::QueryRemitter => None,
            _ => lock(&state.scripts).get(&reference).and_then(|s| s.script.submit.clone()),
        };
        return match scripted {
            // Done upstream, the answer late (the client has given up by then).
            Some(Reply::Hang(pause)) => {
                let done = state.enrol(endpoint, &body);
                tokio::time::sleep(pause).await;
                json_response(StatusCode::OK, &done)
            }
            Some(reply) => state.answer(endpoint, &reference, &body, Some(reply)).await,
            None => json_response(StatusCode::OK, &state.enrol(endpoint, &body)),
        };
    }
    let reply = state.reply_for(endpoint, &reference);
    let body = lock(&state.calls).last().map(|c| c.body.clone()).unwrap_or(Value::Null);
    state.answer(endpoint, &reference, &body, reply).await
}
