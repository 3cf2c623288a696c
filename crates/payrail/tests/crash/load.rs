//! The partners' side: concurrent clients paying bills and sending DMT
//! transfers through the partner API, and the journal of what they sent and
//! what the server acknowledged.
//!
//! Scenarios come round in turn (the sandbox chooses by the last three
//! digits): `111` fails at once, `222` fails after two steps, `333` succeeds
//! and is returned (a bill reversed, a transfer returned by the bank) after
//! three, anything else succeeds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use payrail_client::{sign_token, TokenClaims};
use serde_json::{json, Value};

use crate::server::{Partner, Server};
use crate::sms::SmsInbox;

/// The scenario suffixes, taken in turn.
const SCENARIOS: [&str; 4] = ["111", "222", "333", "012"];

/// Transfers per remitter mobile: with its registration OTP and a refund
/// claim's that is at most 4 texts, under the limit of 5 a mobile may
/// receive in 10 minutes.
const TRANSFERS_PER_REMITTER: u64 = 2;

const DMT_CLIENTS: usize = 3;
const BILL_CLIENTS: usize = 3;

/// A payment kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bill,
    Transfer,
}

/// A payment request as sent; `ackno` once the server acknowledged it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub kind: Kind,
    pub reference: String,
    pub rupees: i64,
    pub ackno: Option<String>,
}

/// Everything the clients sent and were told.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// Every payment request, acknowledged or not.
    pub payments: Vec<Sent>,
    /// Remitter mobiles whose registration was acknowledged.
    pub remitters: Vec<String>,
    /// References of transfers whose refund claim was acknowledged.
    pub refunds: Vec<String>,
    /// (mobile, account) of acknowledged beneficiaries.
    pub beneficiaries: Vec<(String, String)>,
    /// Answers a live server should not have given.
    pub surprises: Vec<String>,
}

impl Records {
    /// Acknowledged payments of `kind`.
    pub fn acked(&self, kind: Kind) -> usize {
        self.payments.iter().filter(|p| p.kind == kind && p.ackno.is_some()).count()
    }
}

/// The shared journal.
#[derive(Default)]
pub struct Journal(Mutex<Records>);

impl Journal {
    fn with<T>(&self, f: impl FnOnce(&mut Records) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of the records.
    pub fn records(&self) -> Records {
        self.with(|r| r.clone())
    }

    fn sent(&self, kind: Kind, reference: &str, rupees: i64) -> usize {
        self.with(|r| {
            r.payments.push(Sent { kind, reference: reference.to_owned(), rupees, ackno: None });
            r.payments.len() - 1
        })
    }

    fn acked(&self, index: usize, ackno: String) {
        self.with(|r| r.payments[index].ackno = Some(ackno));
    }
}

/// Numbers handed out across loops, so nothing is ever reused.
#[derive(Default)]
pub struct Counters {
    mobiles: AtomicU64,
    transfers: AtomicU64,
    bills: AtomicU64,
}

impl Counters {
    fn next(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::SeqCst)
    }
}

/// Signed partner API calls to one server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    partner: Partner,
}

impl Api {
    /// A client of `server` as `partner`.
    pub fn new(server: &Server, partner: &Partner) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| panic!("http client: {e}"));
        Api { http, base: server.base.clone(), partner: partner.clone() }
    }

    /// POSTs `fields` plus the partner's `RegistrationID` with a fresh token.
    pub async fn post(&self, path: &str, mut fields: Value) -> Result<(u16, Value), reqwest::Error> {
        fields["RegistrationID"] = json!(self.partner.id);
        let token = sign_token(self.partner.secret.as_bytes(), &TokenClaims::now(&self.partner.id));
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Token", token)
            .body(fields.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::String(body))))
    }

    /// An operator API GET.
    pub async fn admin_get(&self, path: &str) -> Result<(u16, Value), reqwest::Error> {
        let response =
            self.http.get(format!("{}{path}", self.base)).bearer_auth(crate::server::ADMIN_TOKEN).send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::String(body))))
    }
}

/// Why a client stopped.
struct Halt;

/// One client: the API, the journal, and the flag that says the server is being killed.
#[derive(Clone)]
struct Client {
    api: Api,
    sms: SmsInbox,
    journal: Arc<Journal>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl Client {
    /// Sends and expects `status`; any other answer from a live server is a surprise.
    async fn expect(&self, path: &str, fields: Value, status: u16) -> Result<Value, Halt> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(Halt);
        }
        let problem = match self.api.post(path, fields).await {
            Ok((got, body)) if got == status => return Ok(body),
            Ok((got, body)) => format!("{path}: HTTP {got} {body}"),
            Err(_) if self.stop.load(Ordering::SeqCst) => return Err(Halt),
            Err(e) => format!("{path}: {e}"),
        };
        self.journal.with(|r| r.surprises.push(problem));
        Err(Halt)
    }

    fn otp(&self, mobile: &str) -> Result<String, Halt> {
        self.sms.last_otp(mobile).ok_or_else(|| {
            self.journal.with(|r| r.surprises.push(format!("no OTP text reached {mobile}")));
            Halt
        })
    }

    async fn pay_bills(self) {
        while self.pay_one_bill().await.is_ok() {}
    }

    async fn pay_one_bill(&self) -> Result<(), Halt> {
        let n = Counters::next(&self.counters.bills);
        let (reference, rupees) = (format!("CRASH-B-{n}"), 100 + (n % 7) as i64 * 50);
        let canumber = format!("15{n:07}{}", SCENARIOS[(n % 4) as usize]);
        let fields =
            json!({"operator": 1, "canumber": canumber, "amount": rupees.to_string(), "referenceid": reference});
        let index = self.journal.sent(Kind::Bill, &reference, rupees);
        let paid = self.expect("/api/AOP/BillPaymentPaybill", fields, 200).await?;
        self.journal.acked(index, id_text(&paid["ackno"]));
        Ok(())
    }

    async fn send_transfers(self) {
        while self.serve_one_remitter().await.is_ok() {}
    }

    /// A new remitter, its beneficiaries, and a few transfers.
    async fn serve_one_remitter(&self) -> Result<(), Halt> {
        let mobile = format!("9{:09}", 100_000_000 + Counters::next(&self.counters.mobiles));
        self.register_remitter(&mobile).await?;
        let mut beneficiaries = Vec::new();
        for suffix in SCENARIOS {
            beneficiaries.push(self.add_beneficiary(&mobile, &format!("123456789{suffix}")).await?);
        }
        for _ in 0..TRANSFERS_PER_REMITTER {
            let n = Counters::next(&self.counters.transfers);
            self.transfer(&mobile, &beneficiaries[(n % 4) as usize], n).await?;
        }
        Ok(())
    }

    async fn register_remitter(&self, mobile: &str) -> Result<(), Halt> {
        // The e-KYC (UIDAI's test Aadhaar number, which the sandbox verifies); its stateresp is the KycId.
        let ekyc = json!({"MobileNumber": mobile, "Lattitude": "28.61", "Longitude": "77.20",
                          "AadhaarNumber": "999999990019", "FingerPrintData": "<PidData>crash</PidData>"});
        let verified = self.expect("/api/AOP/DMTV1/RemitterEKyc", ekyc, 202).await?;
        let fields = json!({"MobileNo": mobile, "OTP": self.otp(mobile)?, "Stateresp": verified["stateresp"],
                            "KycId": verified["stateresp"], "FirstName": "Asha", "LastName": "Verma"});
        self.expect("/api/AOP/DMTV1/RegisterRemitter", fields, 200).await?;
        self.journal.with(|r| r.remitters.push(mobile.to_owned()));
        Ok(())
    }

    async fn add_beneficiary(&self, mobile: &str, account: &str) -> Result<String, Halt> {
        let fields = json!({"MobileNo": mobile, "BeneName": "Ravi Verma", "AccountNo": account,
                            "IFSC": "SBIN0001234", "BankName": "State Bank of India"});
        let added = self.expect("/api/AOP/DMTV1/RegisterBeneficiary", fields, 200).await?;
        self.journal.with(|r| r.beneficiaries.push((mobile.to_owned(), account.to_owned())));
        Ok(id_text(&added["beneid"]))
    }

    async fn transfer(&self, mobile: &str, bene: &str, n: u64) -> Result<(), Halt> {
        let (reference, rupees) = (format!("CRASH-D-{n}"), 100 + (n % 5) as i64 * 100);
        let mut fields =
            json!({"MobileNumber": mobile, "BeneID": bene, "Txntype": "IMPS", "Amount": rupees.to_string()});
        let sent = self.expect("/api/AOP/DMTV1/TransactionSendOtp", fields.clone(), 202).await?;
        fields["referenceid"] = json!(reference);
        fields["Stateresp"] = sent["stateresp"].clone();
        fields["OTP"] = json!(self.otp(mobile)?);
        let index = self.journal.sent(Kind::Transfer, &reference, rupees);
        let done = self.expect("/api/AOP/DMTV1/Transaction", fields, 200).await?;
        self.journal.acked(index, id_text(&done["ackno"]));
        if done["txn_status"] == "5" {
            self.claim_refund(mobile, &reference, &done["ackno"]).await?;
        }
        Ok(())
    }

    /// `RefundOtp` then `ClaimRefund` for a transfer that failed at once.
    async fn claim_refund(&self, mobile: &str, reference: &str, ackno: &Value) -> Result<(), Halt> {
        let fields = json!({"referenceid": reference, "ackno": ackno});
        let sent = self.expect("/api/AOP/DMTV1/RefundOtp", fields.clone(), 200).await?;
        let mut claim = fields;
        claim["OTP"] = json!(self.otp(mobile)?);
        claim["Stateresp"] = sent["stateresp"].clone();
        self.expect("/api/AOP/DMTV1/ClaimRefund", claim, 200).await?;
        self.journal.with(|r| r.refunds.push(reference.to_owned()));
        Ok(())
    }
}

/// An id the server sent as a string or a JSON number, as text.
pub fn id_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The clients running against one server.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the bill and transfer clients against `server`.
    pub fn start(
        server: &Server,
        partner: &Partner,
        sms: &SmsInbox,
        journal: &Arc<Journal>,
        counters: &Arc<Counters>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let client = Client {
            api: Api::new(server, partner),
            sms: sms.clone(),
            journal: journal.clone(),
            counters: counters.clone(),
            stop: stop.clone(),
        };
        let mut tasks = Vec::new();
        for _ in 0..BILL_CLIENTS {
            tasks.push(tokio::spawn(client.clone().pay_bills()));
        }
        for _ in 0..DMT_CLIENTS {
            tasks.push(tokio::spawn(client.clone().send_transfers()));
        }
        Load { stop, tasks }
    }

    /// Tells the clients the server is about to die: their failures from now on are expected.
    pub fn stopping(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for every client to notice.
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
