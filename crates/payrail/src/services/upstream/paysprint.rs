//! A Paysprint-compatible HTTP connector (`--provider paysprint`).
//!
//! Every call is `POST {base_url}/<path>` with a JSON body and these headers:
//!
//! ```text
//! Token: <JWT HS256 under jwt_key: {"timestamp", "partnerId", "reqid"}>
//! Authorisedkey: <authorised_key>        (when configured)
//! Content-Type: application/json
//! User-Agent: payrail/<version>
//! ```
//!
//! The paths mirror Paysprint's `api/v1/service/...` layout: give the
//! connector `https://<host>/api/v1/service` as its base URL.
//!
//! A submission is sent once. The only retry is when the error proves the
//! request never left (the connection could not be made): at most two more
//! tries, 200 ms apart. A timeout or any answer ends it; the poller asks for
//! the status later. Status queries and bill fetches are retried once on a
//! connection failure or timeout, within their own timeout.
//!
//! The upstream calls back with the same kind of token, signed with the
//! same key, and a body whose `param` comes with a signed copy (`param_inc`,
//! see the `signed_param` submodule). What its codes mean is in the `wire`
//! submodule; the remitter and beneficiary calls, whose ids payrail keeps,
//! are in the `enrolment` submodule.

mod enrolment;
mod signed_param;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use payrail_client::token::{sign_token, TokenClaims};
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

pub use self::wire::{
    code_row, code_table_markdown, refund_meaning, refund_otp_meaning, CodeMeaning, CodeRow, PaysprintCall,
    BILL_STATUS_TABLE, CODE_TABLE, TXN_STATUS_TABLE,
};
use self::wire::{
    BeneNameVerifyAnswer, BeneNameVerifyRequest, BillFetchEcho, BillStatusAnswer, Expected, FetchBillAnswer,
    FetchBillRequest, PayBillAnswer, PayBillRequest, ReferenceQuery, TransactAnswer, TransactQueryAnswer,
    TransactRequest,
};
use super::health::UpstreamHealth;
use super::provider::{
    AccountCheck, AccountHolder, BeneficiarySignup, BillOrder, BillQuery, CallbackError, DmtQueried, DmtSubmitted,
    EkycOutcome, EkycRequest, Enrolment, FetchedBill, Provider, ProviderError, RefundClaimOrder, RefundClaimOutcome,
    RefundOtpOrder, RefundOtpOutcome, RemitterSignup, RemitterStatus, TransferOrder, UpstreamBeneficiary,
    UpstreamCallback,
};
use crate::domain::remitter::MobileNumber;
use crate::domain::token::{verify_token, TokenKey};
use crate::domain::upstream::{BillUpstream, DmtUpstream};
use crate::domain::{BillPayment, DmtTransfer, Timestamp};

/// Where the calls go, relative to the base URL. The transfer's own path
/// is configured ([`PaysprintConfig::transact_path`], one of [`TRANSACT_PATHS`]).
pub const TRANSACT: &str = "dmt/transact/transact";
/// The transfer paths an installation may use: the plain one and the e-KYC one.
pub const TRANSACT_PATHS: [&str; 2] = [TRANSACT, "dmt/kyc/transact/transact"];
const QUERY_TRANSACT: &str = "dmt/transact/transact/querytransact";
const PAY_BILL: &str = "bill-payment/bill/paybill";
const BILL_STATUS: &str = "bill-payment/bill/status";
const FETCH_BILL: &str = "bill-payment/bill/fetchbill";
const REMITTER_EKYC: &str = "dmt/kyc/remitter/queryremitter/kyc";
const BENE_NAME_VERIFY: &str = "dmt/beneficiary/registerbeneficiary/benenameverify";
const QUERY_REMITTER: &str = "dmt/remitter/queryremitter";
const REGISTER_REMITTER: &str = "dmt/remitter/registerremitter";
const REGISTER_BENEFICIARY: &str = "dmt/beneficiary/registerbeneficiary";
const DELETE_BENEFICIARY: &str = "dmt/beneficiary/registerbeneficiary/deletebeneficiary";
const FETCH_BENEFICIARY: &str = "dmt/beneficiary/registerbeneficiary/fetchbeneficiary";
const REFUND_OTP: &str = "dmt/refund/refund/resendotp";
const REFUND: &str = "dmt/refund/refund/";

/// How many more times a submission whose connection failed is tried.
const SUBMIT_CONNECT_RETRIES: u32 = 2;
/// The pause between those tries.
const SUBMIT_CONNECT_PAUSE: Duration = Duration::from_millis(200);
/// The longest answer read from the upstream; a longer one is no answer.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// How far a callback token's `timestamp` may be from payrail's clock.
const CALLBACK_MAX_SKEW_SECS: i64 = 300;

/// How to reach the upstream.
#[derive(Debug, Clone)]
pub struct PaysprintConfig {
    /// `https://<host>/api/v1/service`; the call paths are appended.
    pub base_url: String,
    /// payrail's partner id upstream (the token's `partnerId`).
    pub partner_id: String,
    /// The key that signs tokens both ways.
    pub jwt_key: SecretString,
    /// Sent as `Authorisedkey` when the upstream issued one.
    pub authorised_key: Option<SecretString>,
    /// How long a submission may take.
    pub submit_timeout: Duration,
    /// How long a status query or a bill fetch may take, retry included.
    pub status_timeout: Duration,
    /// Where transfers are sent: `dmt/transact/transact` (the default) or
    /// `dmt/kyc/transact/transact`; anything else is refused at start.
    pub transact_path: String,
}

impl PaysprintConfig {
    /// The default submission timeout.
    pub const DEFAULT_SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default status timeout.
    pub const DEFAULT_STATUS_TIMEOUT: Duration = Duration::from_secs(5);

    /// A configuration with no authorised key and the default timeouts.
    pub fn new(base_url: impl Into<String>, partner_id: impl Into<String>, jwt_key: SecretString) -> Self {
        PaysprintConfig {
            base_url: base_url.into(),
            partner_id: partner_id.into(),
            jwt_key,
            authorised_key: None,
            submit_timeout: Self::DEFAULT_SUBMIT_TIMEOUT,
            status_timeout: Self::DEFAULT_STATUS_TIMEOUT,
            transact_path: TRANSACT.into(),
        }
    }
}

/// The connector (see the module documentation).
#[derive(Debug)]
pub struct PaysprintProvider {
    config: PaysprintConfig,
    base_url: String,
    http: reqwest::Client,
    health: Arc<UpstreamHealth>,
}

impl PaysprintProvider {
    /// A connector for `config`; fails on a base URL that is not https
    /// (http only to a loopback host, for tests).
    pub fn new(config: PaysprintConfig) -> anyhow::Result<Self> {
        check_base_url(&config.base_url)?;
        anyhow::ensure!(
            TRANSACT_PATHS.contains(&config.transact_path.as_str()),
            "Paysprint transact path {:?} is not one of {}",
            config.transact_path,
            TRANSACT_PATHS.join(", ")
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("payrail/", env!("CARGO_PKG_VERSION")))
            // Half the shorter timeout, so that a connection that cannot be
            // made leaves time for the retry.
            .connect_timeout(config.submit_timeout.min(config.status_timeout) / 2)
            // An upstream that redirects a payment is not followed: the
            // request could be replayed elsewhere or lose its body.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("Failed to build the Paysprint HTTP client")?;
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        Ok(PaysprintProvider { config, base_url, http, health: Arc::default() })
    }

    /// A fresh token: stamped now, with a new `reqid`.
    fn token(&self) -> String {
        sign_token(self.config.jwt_key.expose_secret().as_bytes(), &TokenClaims::now(&self.config.partner_id))
    }

    /// One POST, with its own token; the answer's status and body (at most
    /// [`MAX_ANSWER_BYTES`], whatever the status).
    async fn attempt(&self, path: &str, body: &impl Serialize, timeout: Duration) -> Result<Answer, Failure> {
        let mut request = self
            .http
            .post(format!("{}/{path}", self.base_url))
            .timeout(timeout)
            .header("Token", self.token())
            .json(body);
        if let Some(key) = &self.config.authorised_key {
            request = request.header("Authorisedkey", key.expose_secret());
        }
        let response = request.send().await?;
        read_capped(response).await
    }

    /// [`PaysprintProvider::attempt`], timed, counted and logged; an
    /// authentication refusal opens the circuit.
    async fn attempt_counted(&self, path: &str, body: &impl Serialize, timeout: Duration) -> Result<Answer, Failure> {
        let started = Instant::now();
        let result = self.attempt(path, body, timeout).await;
        let latency = started.elapsed();
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let outcome = match &result {
            Ok((status, body)) => match auth_refusal(*status, body) {
                Some(reason) => {
                    self.health.open_circuit(Timestamp::now(), path, &reason);
                    "auth_refused"
                }
                None if status.is_success() => "answered",
                None if status.is_client_error() => "http_4xx",
                None => "http_5xx",
            },
            Err(Failure::TooLarge(_)) => "too_large",
            Err(Failure::Http(e)) if e.is_timeout() => "timeout",
            Err(Failure::Http(_)) => "unreachable",
        };
        self.health.record(path, outcome, latency);
        match &result {
            Ok((status, _)) if outcome == "answered" => {
                tracing::info!(operation = path, outcome, http_status = status.as_u16(), latency_ms, "upstream call")
            }
            Ok((status, _)) => {
                tracing::warn!(operation = path, outcome, http_status = status.as_u16(), latency_ms, "upstream call")
            }
            Err(e) => tracing::warn!(operation = path, outcome, latency_ms, error = %e, "upstream call"),
        }
        result
    }

    /// Sends a submission once; again only if it never left.
    async fn submit<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ProviderError> {
        read_answer(path, self.send_once(path, body).await)
    }

    /// As [`PaysprintProvider::submit`], where a 4xx body is an answer too
    /// (Paysprint sends most refusals so): the answer with its HTTP status.
    async fn submit_coded<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(u16, T), ProviderError> {
        read_coded_answer(path, self.send_once(path, body).await)
    }

    /// One submission: sent again only if it never left.
    async fn send_once(&self, path: &str, body: &impl Serialize) -> Result<Answer, Failure> {
        let mut retries = 0;
        loop {
            match self.attempt_counted(path, body, self.config.submit_timeout).await {
                Err(Failure::Http(e)) if e.is_connect() && retries < SUBMIT_CONNECT_RETRIES => {
                    retries += 1;
                    tracing::warn!(path, retry = retries, error = %e, "Paysprint unreachable; trying again");
                    tokio::time::sleep(SUBMIT_CONNECT_PAUSE).await;
                }
                result => return result,
            }
        }
    }

    /// Asks a question as [`PaysprintProvider::ask_coded`] does, where only a
    /// 2xx body is an answer (the remitter and beneficiary calls, whose 4xx
    /// refusals are not documented).
    async fn ask<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ProviderError> {
        read_answer(path, self.ask_raw(path, body).await)
    }

    /// Asks a question, once more on a connection failure or timeout if
    /// the status timeout allows, where a 4xx body is an answer too.
    async fn ask_coded<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(u16, T), ProviderError> {
        read_coded_answer(path, self.ask_raw(path, body).await)
    }

    async fn ask_raw(&self, path: &str, body: &impl Serialize) -> Result<Answer, Failure> {
        let deadline = Instant::now() + self.config.status_timeout;
        let result = match self.attempt_counted(path, body, self.config.status_timeout).await {
            Err(Failure::Http(e)) if e.is_connect() || e.is_timeout() => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(Failure::Http(e))
                } else {
                    tracing::debug!(path, error = %e, "Paysprint did not answer; asking once more");
                    self.attempt_counted(path, body, left).await
                }
            }
            other => other,
        };
        result
    }

    /// A callback's `Token`: signed with our key, for our partner id, fresh.
    /// Returns its `reqid`, which `services::upstream::sync` refuses to see twice.
    fn verify_callback_token(&self, token: Option<&str>, now: Timestamp) -> Result<String, CallbackError> {
        let token = token.ok_or_else(|| CallbackError::Unauthenticated("no Token header".into()))?;
        let key = [TokenKey::new(self.config.jwt_key.expose_secret().as_bytes())];
        let claims = verify_token(token, &key, now, CALLBACK_MAX_SKEW_SECS)
            .map_err(|e| CallbackError::Unauthenticated(e.to_string()))?;
        if claims.partner_id != self.config.partner_id {
            return Err(CallbackError::Unauthenticated("token for another partner id".into()));
        }
        Ok(claims.reqid)
    }
}

/// An answer's HTTP status and body.
type Answer = (StatusCode, Vec<u8>);

/// Why a request brought no answer to read.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The request failed, or no answer came in time.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The answer was longer than [`MAX_ANSWER_BYTES`]; the rest was not read.
    #[error("answer over {MAX_ANSWER_BYTES} bytes refused ({0})")]
    TooLarge(String),
}

/// Reads an answer's body, refusing one over [`MAX_ANSWER_BYTES`]: by its
/// `Content-Length` before reading any of it, or, without one (chunked),
/// as soon as what came in passes the cap; the connection is then dropped.
async fn read_capped(mut response: reqwest::Response) -> Result<Answer, Failure> {
    let status = response.status();
    if let Some(length) = response.content_length().filter(|&n| n > MAX_ANSWER_BYTES as u64) {
        return Err(Failure::TooLarge(format!("Content-Length {length}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Failure::TooLarge(format!("more than {} bytes sent", body.len() + chunk.len())));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// The upstream's refusal of payrail's own credentials, which opens the
/// circuit: `response_code` 23, 24 or 25 (Paysprint's authentication
/// codes), or an HTTP 401 whose message names the JWT or the
/// authentication. Any other refusal is about the request, not the keys.
fn auth_refusal(status: StatusCode, body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        response_code: Option<serde_json::Value>,
        message: Option<String>,
    }
    let head: Head = serde_json::from_slice(body).ok()?;
    let message = head.message.unwrap_or_default();
    let code = head.response_code.as_ref().and_then(|c| match c {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    if let Some(code @ 23..=25) = code {
        return Some(format!("response_code {code}: {message}"));
    }
    let lower = message.to_ascii_lowercase();
    (status == StatusCode::UNAUTHORIZED && (lower.contains("jwt") || lower.contains("authenticat")))
        .then(|| format!("HTTP 401: {message}"))
}

/// Checks the upstream's base URL: `https`, or `http` to a loopback host
/// only (127.0.0.0/8, ::1, localhost), which the tests use. Anything else
/// would send the keys and the payments in cleartext.
fn check_base_url(base_url: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(base_url).with_context(|| format!("Paysprint base URL {base_url:?}"))?;
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    match url.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => anyhow::bail!(
            "Paysprint base URL {base_url:?} must be https:// (http:// is accepted only for a loopback host: \
             127.0.0.0/8, ::1 or localhost)"
        ),
        _ => anyhow::bail!("Paysprint base URL {base_url:?} must be an https:// URL with a host"),
    }
}

/// Turns what came back into an answer of type `T` or the reason there is none.
fn read_answer<T: DeserializeOwned>(path: &str, result: Result<Answer, Failure>) -> Result<T, ProviderError> {
    let (status, body) = result.map_err(transport_error)?;
    if status.is_server_error() {
        return Err(ProviderError::Unavailable(format!("{path}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(ProviderError::Garbage(format!("{path}: HTTP {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| ProviderError::Garbage(format!("{path}: {e}")))
}

/// Turns what came back into an answer of type `T` with its HTTP status:
/// a 2xx or 4xx body is read alike (Paysprint sends refusals as 401, 406,
/// 412 with a code); a 5xx, a redirect, or a body that cannot be read is no
/// answer at all (the transaction stays pending and is asked about later).
fn read_coded_answer<T: DeserializeOwned>(
    path: &str,
    result: Result<Answer, Failure>,
) -> Result<(u16, T), ProviderError> {
    let (status, body) = result.map_err(transport_error)?;
    if status.is_server_error() {
        return Err(ProviderError::Unavailable(format!("{path}: HTTP {status}")));
    }
    if !(status.is_success() || status.is_client_error()) {
        return Err(ProviderError::Garbage(format!("{path}: HTTP {status}")));
    }
    let answer =
        serde_json::from_slice(&body).map_err(|e| ProviderError::Garbage(format!("{path}: HTTP {status}: {e}")))?;
    Ok((status.as_u16(), answer))
}

/// What a failed request means: no answer in time, or no answer at all.
fn transport_error(failure: Failure) -> ProviderError {
    match failure {
        Failure::Http(error) if error.is_timeout() => ProviderError::Timeout,
        Failure::Http(error) => ProviderError::Unavailable(error.to_string()),
        Failure::TooLarge(why) => ProviderError::Garbage(format!("answer too large: {why}")),
    }
}

#[async_trait]
impl Provider for PaysprintProvider {
    fn name(&self) -> &'static str {
        "paysprint"
    }

    fn settles(&self) -> bool {
        true
    }

    fn health(&self) -> Option<Arc<UpstreamHealth>> {
        Some(self.health.clone())
    }

    async fn submit_transfer(&self, order: &TransferOrder) -> Result<DmtUpstream, ProviderError> {
        Ok(self.submit_transfer_acked(order).await?.report)
    }

    fn claims_refunds(&self) -> bool {
        true
    }

    async fn submit_transfer_acked(&self, order: &TransferOrder) -> Result<DmtSubmitted, ProviderError> {
        let request = TransactRequest {
            mobile: &order.mobile,
            referenceid: &order.upstream_ref,
            pipe: format!("bank{}", order.pipe),
            // The upstream's id, never payrail's: the service registers the
            // beneficiary upstream before any transfer to it.
            bene_id: order.upstream_bene_id.clone().unwrap_or_default(),
            txntype: &order.mode,
            amount: order.transfer.amount.to_amount_string(),
            benename: &order.beneficiary_name,
            accno: &order.transfer.account,
            ifsccode: &order.ifsc,
            pincode: order.details.pincode.as_ref().map(|p| p.as_str()),
            address: order.details.address.as_deref(),
            dob: order.details.dob.as_ref().map(|d| d.to_dd_mm_yyyy()),
            gst_state: order.details.gst_state.as_ref().map(|g| g.as_str()),
        };
        let expected = Expected {
            reference: &order.upstream_ref,
            amount: order.transfer.amount,
            account: &order.transfer.account,
        };
        let (http, answer) = self.submit_coded::<TransactAnswer>(&self.config.transact_path, &request).await?;
        let upstream_ackno = answer.upstream_ackno();
        Ok(DmtSubmitted { report: answer.report(http, &expected), upstream_ackno })
    }

    async fn query_transfer(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtQueried, ProviderError> {
        let request = ReferenceQuery { referenceid: upstream_ref };
        let expected = Expected { reference: upstream_ref, amount: transfer.amount, account: &transfer.account };
        let (http, top) = self.ask_coded::<serde_json::Value>(QUERY_TRANSACT, &request).await?;
        let answer: TransactQueryAnswer = serde_json::from_value(top.clone())
            .map_err(|e| ProviderError::Garbage(format!("{QUERY_TRANSACT}: HTTP {http}: {e}")))?;
        let (upstream_ackno, refunded) = answer.refund_facts(&top);
        Ok(DmtQueried { report: answer.report(http, &expected)?, upstream_ackno, refunded })
    }

    /// Sent once, as a submission (a resend is harmless, but a second text is not wanted).
    async fn refund_otp(&self, order: &RefundOtpOrder<'_>) -> Result<RefundOtpOutcome, ProviderError> {
        let request = wire::RefundOtpRequest { referenceid: order.upstream_ref, ackno: order.upstream_ackno };
        let (http, answer) = self.submit_coded::<wire::RefundAnswer>(REFUND_OTP, &request).await?;
        answer.otp_outcome(http)
    }

    /// Sent once: an error leaves it unknown whether the upstream refunded.
    async fn claim_refund(&self, order: &RefundClaimOrder<'_>) -> Result<RefundClaimOutcome, ProviderError> {
        let request =
            wire::RefundRequest { referenceid: order.upstream_ref, ackno: order.upstream_ackno, otp: order.otp };
        let (http, answer) = self.submit_coded::<wire::RefundAnswer>(REFUND, &request).await?;
        Ok(answer.claim_outcome(http))
    }

    async fn submit_bill(&self, order: &BillOrder) -> Result<BillUpstream, ProviderError> {
        let payment = &order.payment;
        let request = PayBillRequest {
            operator: order.biller_id,
            canumber: &payment.ca_number,
            amount: payment.amount.to_amount_string(),
            referenceid: &order.upstream_ref,
            ad1: payment.ad1.as_deref(),
            ad2: payment.ad2.as_deref(),
            ad3: payment.ad3.as_deref(),
            latitude: order.location.as_ref().map(|l| l.latitude.as_str()),
            longitude: order.location.as_ref().map(|l| l.longitude.as_str()),
            mode: order.mode.as_str(),
            bill_fetch: order.bill.as_ref().map(BillFetchEcho::from),
        };
        let (http, answer) = self.submit_coded::<PayBillAnswer>(PAY_BILL, &request).await?;
        Ok(answer.report(http))
    }

    async fn fetch_bill(&self, query: &BillQuery<'_>) -> Result<FetchedBill, ProviderError> {
        let [ad1, ad2, ad3] = query.extra.each_ref().map(Option::as_deref);
        let request = FetchBillRequest {
            operator: query.biller.id,
            canumber: query.account,
            mode: query.mode.as_str(),
            ad1,
            ad2,
            ad3,
        };
        let (_, answer) = self.ask_coded::<FetchBillAnswer>(FETCH_BILL, &request).await?;
        answer.bill()
    }

    /// [`Provider::query_transfer`]'s report: one reading of the query answer.
    async fn dmt_status(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtUpstream, ProviderError> {
        Ok(self.query_transfer(upstream_ref, transfer).await?.report)
    }

    async fn bill_status(&self, upstream_ref: &str, payment: &BillPayment) -> Result<BillUpstream, ProviderError> {
        let request = ReferenceQuery { referenceid: upstream_ref };
        let expected = Expected { reference: upstream_ref, amount: payment.amount, account: &payment.ca_number };
        let (http, answer) = self.ask_coded::<BillStatusAnswer>(BILL_STATUS, &request).await?;
        answer.report(http, &expected)
    }

    async fn verify_account(&self, check: &AccountCheck) -> Result<AccountHolder, ProviderError> {
        let details = &check.details;
        let request = BeneNameVerifyRequest {
            mobile: &check.mobile,
            accno: &check.account,
            bankid: check.bank_id.to_string(),
            benename: &check.name,
            referenceid: &check.upstream_ref,
            pincode: details.pincode.as_ref().map(|p| p.as_str()),
            address: details.address.as_deref(),
            dob: details.dob.as_ref().map(|d| d.to_dd_mm_yyyy()),
            gst_state: details.gst_state.as_ref().map(|g| g.as_str()),
            // The upstream's id, never payrail's own.
            bene_id: check.upstream_bene_id.clone(),
        };
        self.submit::<BeneNameVerifyAnswer>(BENE_NAME_VERIFY, &request).await?.holder()
    }

    fn read_callback(
        &self,
        token: Option<&str>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<UpstreamCallback, CallbackError> {
        // Paysprint sends no header: a `Token`, if one comes, must verify,
        // but the signed copy of `param` is what authenticates a callback.
        let reqid = token.map(|token| self.verify_callback_token(Some(token), now)).transpose()?;
        let body = wire::parse_callback_body(body)?;
        let key = self.config.jwt_key.expose_secret().as_bytes();
        let claims = signed_param::check(&body.param, body.param_inc.as_deref(), key)?;
        let dedupe = signed_param::digest(body.param_inc.as_deref().unwrap_or_default());
        let (upstream_ref, report) = body.report_from_claims(claims)?;
        Ok(UpstreamCallback { upstream_ref, report, reqid, dedupe })
    }

    async fn query_remitter(&self, mobile: &MobileNumber) -> Result<RemitterStatus, ProviderError> {
        let body = enrolment::QueryRemitterRequest { mobile: mobile.as_str(), bank3_flag: enrolment::BANK3_FLAG };
        self.ask::<enrolment::EnrolmentAnswer>(QUERY_REMITTER, &body).await?.remitter_status(mobile.as_str())
    }

    async fn register_remitter(&self, signup: &RemitterSignup) -> Result<Enrolment, ProviderError> {
        let body = enrolment::RegisterRemitterRequest {
            mobile: signup.mobile.as_str(),
            otp: &signup.otp,
            stateresp: &signup.stateresp,
            ekyc_id: &signup.ekyc_id,
            bank3_flag: enrolment::BANK3_FLAG,
        };
        self.submit::<enrolment::EnrolmentAnswer>(REGISTER_REMITTER, &body).await?.remitter(signup.mobile.as_str())
    }

    async fn fetch_beneficiaries(&self, mobile: &str) -> Result<Vec<UpstreamBeneficiary>, ProviderError> {
        let body = enrolment::FetchBeneficiaryRequest { mobile };
        self.ask::<enrolment::EnrolmentAnswer>(FETCH_BENEFICIARY, &body).await?.beneficiaries()
    }

    async fn register_beneficiary(&self, signup: &BeneficiarySignup) -> Result<Enrolment, ProviderError> {
        let details = &signup.details;
        let body = enrolment::RegisterBeneficiaryRequest {
            mobile: &signup.mobile,
            benename: &signup.name,
            bankid: signup.bank_id.map(|id| id.to_string()).unwrap_or_default(),
            accno: &signup.account,
            ifsccode: &signup.ifsc,
            verified: if signup.verified { "1" } else { "0" },
            gst_state: details.gst_state.as_ref().map(|g| g.as_str()),
            dob: details.dob.as_ref().map(|d| d.as_iso()),
            address: details.address.as_deref(),
            pincode: details.pincode.as_ref().map(|p| p.as_str()),
        };
        self.submit::<enrolment::EnrolmentAnswer>(REGISTER_BENEFICIARY, &body).await?.beneficiary()
    }

    async fn delete_beneficiary(&self, mobile: &str, bene_id: &str) -> Result<Enrolment, ProviderError> {
        let body = enrolment::DeleteBeneficiaryRequest { mobile, bene_id };
        self.submit::<enrolment::EnrolmentAnswer>(DELETE_BENEFICIARY, &body).await?.deletion()
    }

    /// Sent once, as a submission: a second try could spend the remitter's attempt twice.
    async fn remitter_ekyc(&self, request: &EkycRequest) -> Result<EkycOutcome, ProviderError> {
        let body = wire::RemitterEkycRequest {
            mobile: request.mobile.as_str(),
            lat: &request.latitude,
            long: &request.longitude,
            aadhaar_number: request.aadhaar.as_str(),
            data: request.fingerprint.expose_secret(),
            is_iris: 2,
        };
        self.submit::<wire::RemitterEkycAnswer>(REMITTER_EKYC, &body).await?.outcome()
    }
}

#[cfg(test)]
mod tests {
    use payrail_client::token::{sign_token, TokenClaims};
    use serde_json::json;

    use super::*;
    use crate::domain::upstream::DmtUpstream;
    use crate::services::upstream::provider::UpstreamReport;

    const NOW: i64 = 1_800_000_000;

    fn provider() -> PaysprintProvider {
        let config = PaysprintConfig::new("http://127.0.0.1:9/api/v1/service", "PS-77", SecretString::from("k3y"));
        PaysprintProvider::new(config).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn token(key: &str, partner_id: &str, timestamp: i64) -> String {
        sign_token(key.as_bytes(), &TokenClaims { timestamp, partner_id: partner_id.into(), reqid: "r1".into() })
    }

    fn body() -> Vec<u8> {
        let param = json!({"referenceid": "PRD5", "txn_status": 3, "utr": null});
        let signed = payrail_client::token::sign_raw(b"k3y", br#"{"alg":"HS256"}"#, param.to_string().as_bytes());
        json!({"event": "DMT", "param": param, "param_inc": signed}).to_string().into_bytes()
    }

    fn read(token: Option<&str>, body: &[u8]) -> Result<UpstreamCallback, CallbackError> {
        provider().read_callback(token, body, Timestamp::from_unix(NOW))
    }

    #[test]
    fn a_callback_with_a_good_token_is_read() {
        let callback = read(Some(&token("k3y", "PS-77", NOW - 299)), &body()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(callback.upstream_ref, "PRD5");
        assert_eq!(callback.report, UpstreamReport::Dmt(DmtUpstream::SentToBank));
        assert_eq!(callback.reqid.as_deref(), Some("r1"));
        assert!(callback.dedupe.starts_with("param-sha256:"), "{}", callback.dedupe);
    }

    #[test]
    fn a_callback_without_a_token_is_read_from_its_signed_param_and_keyed_by_it() {
        let callback = read(None, &body()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((callback.upstream_ref.as_str(), callback.reqid), ("PRD5", None));
        assert_eq!(callback.dedupe, read(None, &body()).unwrap_or_else(|e| panic!("{e}")).dedupe, "the same key twice");
        // Unsigned, or signed with another key: refused.
        let unsigned = json!({"event": "DMT", "param": {"referenceid": "PRD5", "txn_status": 1}}).to_string();
        assert!(matches!(read(None, unsigned.as_bytes()), Err(CallbackError::Unauthenticated(_))));
        let param = json!({"referenceid": "PRD5", "txn_status": 1, "utr": "U1"});
        let forged = payrail_client::token::sign_raw(b"guess", br#"{"alg":"HS256"}"#, param.to_string().as_bytes());
        let forged = json!({"event": "DMT", "param": param, "param_inc": forged}).to_string();
        assert!(matches!(read(None, forged.as_bytes()), Err(CallbackError::Unauthenticated(_))));
    }

    #[test]
    fn a_callback_token_with_the_wrong_key_partner_or_clock_is_refused() {
        for bad in [
            token("other", "PS-77", NOW),
            token("k3y", "PS-78", NOW),
            token("k3y", "PS-77", NOW - 301),
            token("k3y", "PS-77", NOW + 301),
            "not.a.token".to_owned(),
        ] {
            assert!(matches!(read(Some(&bad), &body()), Err(CallbackError::Unauthenticated(_))), "{bad}");
        }
    }

    #[test]
    fn a_callback_with_a_good_token_and_a_garbage_body_is_malformed() {
        let good = token("k3y", "PS-77", NOW);
        assert!(matches!(read(Some(&good), b"<html>oops"), Err(CallbackError::Malformed(_))));
    }

    #[test]
    fn the_token_is_checked_before_the_body_is_read() {
        assert!(matches!(read(Some(&token("other", "PS-77", NOW)), b"<html>"), Err(CallbackError::Unauthenticated(_))));
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused_at_start_up() {
        for bad in ["ftp://example.com", "not a url", "", "http://example.com/api", "http://10.1.2.3/", "http://[::2]/"]
        {
            let config = PaysprintConfig::new(bad, "PS-1", SecretString::from("k"));
            assert!(PaysprintProvider::new(config).is_err(), "{bad}");
        }
        for good in [
            "https://api.paysprint.in/api/v1/service",
            "http://127.0.0.1:9/x",
            "http://127.8.0.1/x",
            "http://[::1]:8080/x",
            "http://localhost:3000/x",
            "http://LOCALHOST/x",
        ] {
            let config = PaysprintConfig::new(good, "PS-1", SecretString::from("k"));
            assert!(PaysprintProvider::new(config).is_ok(), "{good}");
        }
    }

    #[test]
    fn authentication_refusals_are_told_from_other_refusals() {
        let refusal = |status: u16, body: serde_json::Value| {
            auth_refusal(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body.to_string().as_bytes())
        };
        for code in [23, 24, 25] {
            assert!(refusal(200, json!({"status": false, "response_code": code, "message": "x"})).is_some());
            assert!(refusal(401, json!({"status": false, "response_code": code.to_string(), "message": "x"})).is_some());
        }
        assert!(refusal(401, json!({"status": false, "response_code": 10, "message": "Invalid JWT token"})).is_some());
        assert!(refusal(401, json!({"message": "Authentication failed"})).is_some());
        // Other refusals (a 401 about the request, a 200 naming the JWT) leave the circuit closed.
        assert!(refusal(401, json!({"status": false, "response_code": 7, "message": "Insufficient fund"})).is_none());
        assert!(refusal(200, json!({"status": false, "response_code": 0, "message": "JWT ok"})).is_none());
        assert!(refusal(401, json!("not an object")).is_none());
        assert!(auth_refusal(StatusCode::UNAUTHORIZED, b"<html>").is_none());
    }
}
