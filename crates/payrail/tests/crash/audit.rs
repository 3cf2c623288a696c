//! What must hold after the crashes, checked through the partner API, the
//! operator API and `payrail verify` on a server left running: every
//! acknowledged write is there as acknowledged, no failed bill payment is
//! left unrefunded, the wallet holds exactly what the records say it should,
//! and the ledger verifies. Each check returns its findings (empty: it holds).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::load::{id_text, Api, Kind, Records};
use crate::server::{text, Installation, FUNDING_RUPEES};

/// How long the sandbox may take to settle what the crashes left undecided.
const SETTLE_SECS: u64 = 120;

/// A payment as a status lookup shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    kind: Kind,
    /// `ackno` or `txnid`.
    id: String,
    amount: i64,
    /// `txn_status` or `data.status`.
    status: String,
    /// Bills: `refunded`.
    refunded: bool,
    /// Transfers: `customercharge`, in paise.
    charge: i64,
}

impl Seen {
    /// Paise the wallet is down by for this payment.
    fn debited(&self) -> i64 {
        match self.kind {
            Kind::Bill if self.refunded => 0,
            Kind::Bill => self.amount,
            Kind::Transfer if self.status == "0" => 0,
            Kind::Transfer => self.amount + self.charge,
        }
    }

    /// Still waiting for the sandbox: a bill pending, a transfer not past the bank.
    fn undecided(&self) -> bool {
        match self.kind {
            Kind::Bill => self.status == "2",
            Kind::Transfer => matches!(self.status.as_str(), "2" | "3"),
        }
    }

    /// A bill that failed and whose money is still out of the wallet.
    fn failed_unrefunded(&self) -> bool {
        self.kind == Kind::Bill && self.status == "0" && !self.refunded
    }
}

/// Every payment the clients sent that the server has, by reference.
pub type Snapshot = BTreeMap<String, Seen>;

/// Rupees as payrail renders them (`"100"`, `"1234.50"`) in paise.
fn paise(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a money string: {value}"));
    let (rupees, fraction) = text.split_once('.').unwrap_or((text, "00"));
    let parse = |s: &str| s.parse::<i64>().unwrap_or_else(|e| panic!("money {text:?}: {e}"));
    parse(rupees) * 100 + parse(&format!("{fraction:0<2}"))
}

async fn look_up(api: &Api, kind: Kind, reference: &str) -> Option<Seen> {
    let (path, fields) = match kind {
        Kind::Bill => ("/api/AOP/BillPaymentStatus", json!({"referenceid": reference})),
        Kind::Transfer => ("/api/AOP/DMTV1/TransactionStatus", json!({"ReferanceID": reference})),
    };
    let (status, body) = api.post(path, fields).await.unwrap_or_else(|e| panic!("{path} {reference}: {e}"));
    assert_eq!(status, 200, "{path} {reference}: {body}");
    if body["response_code"] != 1 {
        return None;
    }
    Some(match kind {
        Kind::Bill => {
            let data = &body["data"];
            Seen {
                kind,
                id: id_text(&data["txnid"]),
                amount: paise(&data["amount"]),
                status: id_text(&data["status"]),
                refunded: data["refunded"] == "1",
                charge: 0,
            }
        }
        Kind::Transfer => Seen {
            kind,
            id: id_text(&body["ackno"]),
            amount: paise(&body["amount"]),
            status: id_text(&body["txn_status"]),
            refunded: body["txn_status"] == "0",
            charge: paise(&body["customercharge"]),
        },
    })
}

/// Lookups in flight at once while taking a snapshot.
const LOOKUPS_IN_FLIGHT: usize = 8;

/// Looks up every payment sent, acknowledged or not.
pub async fn snapshot(api: &Api, records: &Records) -> Snapshot {
    let mut lookups = tokio::task::JoinSet::new();
    let per_task = records.payments.len().div_ceil(LOOKUPS_IN_FLIGHT).max(1);
    for chunk in records.payments.chunks(per_task) {
        let (api, chunk) = (api.clone(), chunk.to_vec());
        lookups.spawn(async move {
            let mut seen = Vec::new();
            for sent in chunk {
                if let Some(found) = look_up(&api, sent.kind, &sent.reference).await {
                    seen.push((sent.reference, found));
                }
            }
            seen
        });
    }
    let mut seen = Snapshot::new();
    while let Some(chunk) = lookups.join_next().await {
        seen.extend(chunk.unwrap_or_else(|e| panic!("a lookup failed: {e}")));
    }
    seen
}

/// Every acknowledged payment is there with its id and amount, and every
/// acknowledged refund claim has refunded its transfer; an unacknowledged
/// payment that is there has its amount too.
pub fn acknowledged_payments_are_there(records: &Records, seen: &Snapshot) -> Vec<String> {
    let mut findings = Vec::new();
    for reference in &records.refunds {
        if seen.get(reference).map(|s| s.status.as_str()) != Some("0") {
            findings.push(format!("acknowledged refund of {reference} is gone: {:?}", seen.get(reference)));
        }
    }
    for sent in &records.payments {
        let found = seen.get(&sent.reference);
        match (&sent.ackno, found) {
            (Some(ackno), None) => findings.push(format!("acknowledged {} (id {ackno}) is gone", sent.reference)),
            (Some(ackno), Some(f)) if &f.id != ackno => {
                findings.push(format!("{} was acknowledged as {ackno}, is now {}", sent.reference, f.id))
            }
            (_, Some(f)) if f.amount != sent.rupees * 100 => {
                findings.push(format!("{} sent for Rs {}, stored as {} paise", sent.reference, sent.rupees, f.amount))
            }
            _ => {}
        }
    }
    findings
}

/// Acknowledged remitters answer as registered, with their acknowledged beneficiaries.
pub async fn remitters_are_there(api: &Api, records: &Records) -> Vec<String> {
    let mut findings = Vec::new();
    for mobile in &records.remitters {
        let (status, body) = api
            .post("/api/AOP/DMTV1/QueryRemitter", json!({"MobileNo": mobile}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if status != 200 {
            findings.push(format!("acknowledged remitter {mobile} answers HTTP {status} {body}"));
        }
    }
    let mut by_mobile: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (mobile, account) in &records.beneficiaries {
        by_mobile.entry(mobile).or_default().insert(account);
    }
    for (mobile, accounts) in by_mobile {
        let (_, body) = api
            .post("/api/AOP/DMTV1/FetchBeneficiary", json!({"MobileNo": mobile}))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let listed: BTreeSet<&str> =
            body["data"].as_array().into_iter().flatten().filter_map(|b| b["accno"].as_str()).collect();
        for missing in accounts.difference(&listed) {
            findings.push(format!("acknowledged beneficiary {missing} of {mobile} is gone"));
        }
    }
    findings
}

/// Waits until the sandbox has decided every payment (no bill pending, no
/// transfer in process or at the bank: status lookups ask the sandbox, so
/// this takes seconds), then finds every failed bill not refunded. Failing a
/// bill and refunding it are one transaction, so none may show. Returns the
/// findings and a line on how settling went.
pub async fn settled(api: &Api, records: &Records) -> (Vec<String>, String) {
    let started = Instant::now();
    loop {
        let seen = snapshot(api, records).await;
        let undecided: Vec<String> = seen.iter().filter(|(_, s)| s.undecided()).map(describe).collect();
        if undecided.is_empty() || started.elapsed() > Duration::from_secs(SETTLE_SECS) {
            let unrefunded: Vec<String> = seen
                .iter()
                .filter(|(_, s)| s.failed_unrefunded())
                .map(|found| format!("failed bill not refunded: {}", describe(found)))
                .collect();
            let how = format!(
                "{} undecided after {:.0?}, {} failed bills not refunded",
                undecided.len(),
                started.elapsed(),
                unrefunded.len()
            );
            let undecided = undecided.into_iter().map(|u| format!("undecided after {SETTLE_SECS} s: {u}"));
            return (undecided.chain(unrefunded).collect(), how);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn describe((reference, s): (&String, &Seen)) -> String {
    let refunded = if s.kind == Kind::Bill { format!(" refunded {}", u8::from(s.refunded)) } else { String::new() };
    format!("{reference} (id {}) status {}{refunded}", s.id, s.status)
}

/// The wallet holds the funding less every payment not given back, read
/// between two identical snapshots (a bank return may land meanwhile).
pub async fn wallet_matches_the_records(api: &Api, partner: &str, records: &Records) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(SETTLE_SECS);
    loop {
        let before = snapshot(api, records).await;
        let path = format!("/admin/v1/partners/{partner}/wallet");
        let (status, body) = api.admin_get(&path).await.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(status, 200, "{path}: {body}");
        let after = snapshot(api, records).await;
        if before == after {
            let expected = FUNDING_RUPEES * 100 - after.values().map(Seen::debited).sum::<i64>();
            let balance = paise(&body["balance"]);
            if balance == expected {
                return Vec::new();
            }
            return vec![format!("wallet holds {balance} paise; the records say {expected}")];
        }
        assert!(Instant::now() < deadline, "the payments never stood still for a wallet reading");
    }
}

/// `payrail verify` exits 0.
pub fn verify_is_clean(install: &Installation) -> Vec<String> {
    let out = install.cli(&["verify"]);
    if out.status.success() {
        return Vec::new();
    }
    vec![format!("payrail verify exited {}: {}{}", out.status, text(&out.stdout), text(&out.stderr))]
}

/// A line on what the run did, for the test's output.
pub fn summary(records: &Records, seen: &Snapshot) -> String {
    let count = |kind: Kind, acked: bool| {
        records.payments.iter().filter(|p| p.kind == kind && p.ackno.is_some() == acked).count()
    };
    let unacked_kept = records.payments.iter().filter(|p| p.ackno.is_none() && seen.contains_key(&p.reference)).count();
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for s in seen.values() {
        let kind = if s.kind == Kind::Bill { "bill" } else { "dmt" };
        *states.entry(format!("{kind}:{}{}", s.status, if s.refunded { "r" } else { "" })).or_default() += 1;
    }
    format!(
        "acknowledged {} bills and {} transfers; {} bills and {} transfers sent without an answer, {unacked_kept} of them kept; \
         {} remitters, {} beneficiaries, {} refund claims; final states {states:?}",
        count(Kind::Bill, true),
        count(Kind::Transfer, true),
        count(Kind::Bill, false),
        count(Kind::Transfer, false),
        records.remitters.len(),
        records.beneficiaries.len(),
        records.refunds.len(),
    )
}
