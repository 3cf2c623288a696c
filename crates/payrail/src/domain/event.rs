//! Partner callbacks: the events a state change produces, their delivery
//! attempts, and how a callback is signed.
//!
//! An event is written in the same database transaction as the state change
//! it reports (an outbox), for partners that have a callback URL. Its payload
//! is fixed when it is written, so every attempt sends the same bytes; the
//! delivered body is the payload with `"event_id"` first (see
//! [`PartnerEvent::body`]), and partners recognise a repeated delivery by it.
//!
//! The callback format is payrail's own (AOPay documents none), in the
//! spelling of the status API where the two share a field.

use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::Sha256;

use super::{BillPayment, DmtTransfer, Timestamp, TxnKind};

/// How long payrail keeps trying to deliver an event: 24 hours from the
/// change (or from an operator's redelivery).
pub const DELIVERY_WINDOW_SECS: i64 = 24 * 3600;

/// What an attempt leads to: delivered on a 2xx, else a retry after the
/// schedule's delay for this many attempts, unless that falls after
/// `deliver_until`.
pub fn outcome_of(
    delivered: bool,
    attempts_made: u32,
    now: Timestamp,
    deliver_until: Timestamp,
    retry: &super::upstream::Backoff,
) -> EventOutcome {
    if delivered {
        return EventOutcome::Delivered;
    }
    let delay = retry.after_repeating(attempts_made.saturating_sub(1));
    let next = now.plus_secs(delay.as_secs() as i64);
    if next > deliver_until {
        EventOutcome::GiveUp
    } else {
        EventOutcome::RetryAt(next)
    }
}

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventState {
    /// Waiting for its (next) attempt.
    Pending,
    /// The partner answered 2xx.
    Delivered,
    /// Every attempt failed until the retry window closed.
    Failed,
    /// Its partner's callback URL was cleared while it waited: never sent
    /// (an operator can still redeliver it).
    Cancelled,
}

impl EventState {
    /// Every state.
    pub const ALL: [EventState; 4] =
        [EventState::Pending, EventState::Delivered, EventState::Failed, EventState::Cancelled];

    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Delivered => "delivered",
            EventState::Failed => "failed",
            EventState::Cancelled => "cancelled",
        }
    }

    /// Reads a state from its stored name.
    pub fn parse(text: &str) -> Option<EventState> {
        Self::ALL.into_iter().find(|s| s.name() == text)
    }
}

/// A state change to be told to a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerEvent {
    /// Unique, increasing; the partner's key for recognising a repeat.
    pub id: i64,
    /// Whose transaction.
    pub partner: super::RegistrationId,
    /// Which kind of transaction.
    pub kind: TxnKind,
    /// Its ackno or txnid.
    pub txn_id: i64,
    /// The state it moved to (the stored state name).
    pub status: String,
    /// The JSON object sent, without `event_id` (see [`PartnerEvent::body`]).
    pub payload: String,
    /// When the change was made.
    pub created_at: Timestamp,
    /// Where delivery stands.
    pub state: EventState,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the next attempt is due (pending events only).
    pub next_attempt_at: Option<Timestamp>,
    /// Attempts stop after this (24 h after the change, or after a redelivery).
    pub deliver_until: Timestamp,
    /// When the partner accepted it.
    pub delivered_at: Option<Timestamp>,
    /// When an operator last asked for it to be delivered again.
    pub redelivered_at: Option<Timestamp>,
}

impl PartnerEvent {
    /// The exact bytes delivered: `{"event_id":"<id>",` then, for an event
    /// an operator redelivered, `"redelivery":true,` (it repeats a state
    /// that may be older than one the partner already has), then the
    /// payload's fields.
    pub fn body(&self) -> String {
        let fields = self.payload.strip_prefix('{').unwrap_or(&self.payload);
        let separator = if fields.trim_start().starts_with('}') { "" } else { "," };
        let redelivery = if self.redelivered_at.is_some() { ",\"redelivery\":true" } else { "" };
        format!("{{\"event_id\":\"{}\"{redelivery}{separator}{fields}", self.id)
    }

    /// When the next attempt is due, as operators are shown it at `now`:
    /// only for a pending event, and never in the past (a due event that
    /// waits for a worker, or behind an older event of its transaction, is
    /// due now).
    pub fn next_attempt_shown(&self, now: Timestamp) -> Option<Timestamp> {
        if self.state != EventState::Pending {
            return None;
        }
        self.next_attempt_at.map(|at| at.max(now))
    }
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The event.
    pub event_id: i64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The payrail process that made it.
    pub instance: String,
    /// Where it was sent.
    pub url: String,
    /// When it started.
    pub at: Timestamp,
    /// How long it took.
    pub duration_ms: i64,
    /// The partner's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// Why it failed (`None` when the partner answered 2xx).
    pub error: Option<String>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Accepted: no more attempts.
    Delivered,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// The retry window is closed: the event is failed (an operator can redeliver).
    GiveUp,
}

/// Which events to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this partner's.
    pub partner: Option<super::RegistrationId>,
    /// Only events in this state.
    pub state: Option<EventState>,
    /// Only events about this transaction.
    pub txn: Option<(TxnKind, i64)>,
    /// Only events with an id below this (paging).
    pub before_id: Option<i64>,
    /// At most this many (the store caps it at 1000).
    pub limit: u32,
}

/// A pending transaction the poller is to ask the upstream about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollJob {
    /// Which kind of transaction.
    pub kind: TxnKind,
    /// Its ackno or txnid.
    pub txn_id: i64,
    /// How many polls were made.
    pub attempts: u32,
    /// When this poll was due.
    pub due_at: Timestamp,
}

/// What happens to a poll job after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollNext {
    /// Ask again at this time (the attempt count goes up by one).
    Again(Timestamp),
    /// Nothing more to ask: the job is removed.
    Done,
    /// The schedule ran out on an undecided transaction: the job is kept,
    /// never due again, for review (`payrail upstream held`).
    Held,
}

/// The callback body of a transfer's state, fields in this order.
#[derive(Serialize)]
struct DmtEventBody<'a> {
    event: &'static str,
    registrationid: String,
    referenceid: &'a str,
    ackno: String,
    txn_status: String,
    state: &'static str,
    message: &'static str,
    amount: String,
    utr: Option<&'a str>,
    account: &'a str,
    refundtxnid: Option<&'a str>,
    daterefunded: Option<String>,
    occurred_at: String,
}

/// The callback body of a bill payment's state, fields in this order.
#[derive(Serialize)]
struct BillEventBody<'a> {
    event: &'static str,
    registrationid: String,
    referenceid: &'a str,
    txnid: String,
    status: &'static str,
    state: &'static str,
    message: &'static str,
    amount: String,
    operatorid: Option<&'a str>,
    refunded: &'static str,
    refundtxnid: Option<&'a str>,
    daterefunded: Option<String>,
    occurred_at: String,
}

/// The payload of an event reporting `transfer`'s state, changed at `at`.
pub fn dmt_payload(transfer: &DmtTransfer, at: Timestamp) -> String {
    let body = DmtEventBody {
        event: "dmt.status",
        registrationid: transfer.partner.to_string(),
        referenceid: transfer.reference.as_str(),
        ackno: transfer.ackno.to_string(),
        txn_status: transfer.status.code().to_string(),
        state: transfer.status.name(),
        message: transfer.status.message(),
        amount: transfer.amount.to_amount_string(),
        utr: transfer.utr.as_deref(),
        account: &transfer.account,
        refundtxnid: transfer.refund_txn_id.as_deref(),
        daterefunded: transfer.refunded_at.map(Timestamp::to_ist_string),
        occurred_at: at.to_ist_string(),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// The payload of an event reporting `payment`'s state, changed at `at`.
pub fn bill_payload(payment: &BillPayment, at: Timestamp) -> String {
    let refunded = payment.status == super::BillStatus::Refunded;
    let body = BillEventBody {
        event: "bbps.status",
        registrationid: payment.partner.to_string(),
        referenceid: payment.reference.as_str(),
        txnid: payment.txnid.to_string(),
        status: payment.status.wire_code(),
        state: payment.status.name(),
        message: payment.status.message(),
        amount: payment.amount.to_amount_string(),
        operatorid: payment.operator_ref.as_deref(),
        refunded: if refunded { "1" } else { "0" },
        refundtxnid: payment.refund_txn_id.as_deref(),
        daterefunded: payment.refunded_at.map(Timestamp::to_ist_string),
        occurred_at: at.to_ist_string(),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// A partner's callback signing secrets, sealed as the store keeps them:
/// its own, never its API token secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSecrets {
    /// The secret that signs every callback.
    pub current: super::partner::SealedSecret,
    /// The one it replaced, which also signs until the time given (a
    /// rotation's overlap).
    pub previous: Option<(super::partner::SealedSecret, Timestamp)>,
}

/// The `X-Payrail-Signature` value under each of `secrets` (the current one
/// first): [`signature`]s joined by `,`. One secret gives one signature; during
/// a rotation's overlap there are two, and a partner accepts the callback if
/// either verifies with the secret it holds.
pub fn signature_header(secrets: &[Vec<u8>], timestamp: i64, body: &str) -> String {
    secrets.iter().map(|secret| signature(secret, timestamp, body)).collect::<Vec<_>>().join(",")
}

/// Whether any of the `sha256=` signatures in a `X-Payrail-Signature` value
/// is `secret`'s, for `<timestamp>.<body>` (constant-time comparison).
pub fn signature_verifies(header: &str, secret: &[u8], timestamp: i64, body: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    let expected = signature(secret, timestamp, body);
    header.split(',').any(|sent| bool::from(sent.trim().as_bytes().ct_eq(expected.as_bytes())))
}

/// One callback signature: `sha256=` and the hex HMAC-SHA256, under a
/// callback secret, of `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BillStatus, Paise, ReferenceId, RegistrationId};

    fn event(payload: &str) -> PartnerEvent {
        PartnerEvent {
            id: 42,
            partner: RegistrationId::new(554),
            kind: TxnKind::Bbps,
            txn_id: 9,
            status: "success".into(),
            payload: payload.into(),
            created_at: Timestamp::from_unix(1_700_000_000),
            state: EventState::Pending,
            attempts: 0,
            next_attempt_at: None,
            deliver_until: Timestamp::from_unix(1_700_086_400),
            delivered_at: None,
            redelivered_at: None,
        }
    }

    #[test]
    fn the_body_leads_with_the_event_id_and_stays_valid_json() {
        let payment = BillPayment {
            txnid: 9,
            partner: RegistrationId::new(554),
            reference: ReferenceId::parse("B-1").unwrap_or_else(|e| panic!("{e}")),
            operator_name: "BSES".into(),
            ca_number: "1".into(),
            amount: Paise::new(12_345),
            ad1: None,
            ad2: None,
            ad3: None,
            commission: Paise::ZERO,
            tds: Paise::ZERO,
            status: BillStatus::Success,
            operator_ref: Some("OP1".into()),
            created_at: Timestamp::from_unix(1_700_000_000),
            refund_txn_id: None,
            refunded_at: None,
        };
        let body = event(&bill_payload(&payment, Timestamp::from_unix(1_700_000_060))).body();
        assert!(body.starts_with(r#"{"event_id":"42","event":"bbps.status","registrationid":"AOP-554""#), "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(value["status"], "1");
        assert_eq!(value["amount"], "123.45");
        assert_eq!(value["refundtxnid"], serde_json::Value::Null);
        assert_eq!(event("{}").body(), r#"{"event_id":"42"}"#);
        let redelivered = PartnerEvent { redelivered_at: Some(Timestamp::from_unix(1_700_000_100)), ..event("{}") };
        assert_eq!(redelivered.body(), r#"{"event_id":"42","redelivery":true}"#);
        let redelivered = PartnerEvent { payload: r#"{"a":1}"#.into(), ..redelivered };
        assert_eq!(redelivered.body(), r#"{"event_id":"42","redelivery":true,"a":1}"#);
    }

    #[test]
    fn a_pending_event_never_shows_a_next_attempt_in_the_past() {
        let now = Timestamp::from_unix(1_700_000_500);
        let due = PartnerEvent { next_attempt_at: Some(Timestamp::from_unix(1_700_000_000)), ..event("{}") };
        assert_eq!(due.next_attempt_shown(now), Some(now));
        let later = PartnerEvent { next_attempt_at: Some(Timestamp::from_unix(1_700_000_900)), ..event("{}") };
        assert_eq!(later.next_attempt_shown(now), later.next_attempt_at);
        let cancelled = PartnerEvent { state: EventState::Cancelled, ..due };
        assert_eq!(cancelled.next_attempt_shown(now), None);
    }

    #[test]
    fn attempts_back_off_and_stop_at_the_window() {
        let retry = crate::domain::upstream::Backoff::parse("10s,1m").unwrap_or_else(|e| panic!("{e}"));
        let now = Timestamp::from_unix(1_000);
        let until = Timestamp::from_unix(1_100);
        assert_eq!(outcome_of(true, 1, now, until, &retry), EventOutcome::Delivered);
        assert_eq!(outcome_of(false, 1, now, until, &retry), EventOutcome::RetryAt(Timestamp::from_unix(1_010)));
        assert_eq!(outcome_of(false, 2, now, until, &retry), EventOutcome::RetryAt(Timestamp::from_unix(1_060)));
        assert_eq!(outcome_of(false, 7, now, until, &retry), EventOutcome::RetryAt(Timestamp::from_unix(1_060)));
        assert_eq!(outcome_of(false, 2, Timestamp::from_unix(1_050), until, &retry), EventOutcome::GiveUp);
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let signed = signature(b"secret", 1_700_000_000, "{}");
        assert!(signed.starts_with("sha256=") && signed.len() == 7 + 64, "{signed}");
        assert_ne!(signed, signature(b"secret", 1_700_000_001, "{}"));
        assert_ne!(signed, signature(b"secret", 1_700_000_000, "{ }"));
        assert_ne!(signed, signature(b"other", 1_700_000_000, "{}"));
        // RFC 4231-style check against an independently computed value:
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap_or_else(|e| panic!("{e}"));
        mac.update(b"The quick brown fox jumps over the lazy dog");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    }

    #[test]
    fn during_an_overlap_the_header_carries_both_signatures_and_either_verifies() {
        let secrets = [b"new".to_vec(), b"old".to_vec()];
        let header = signature_header(&secrets, 1_700_000_000, "{}");
        assert_eq!(
            header,
            format!("{},{}", signature(b"new", 1_700_000_000, "{}"), signature(b"old", 1_700_000_000, "{}"))
        );
        assert!(signature_verifies(&header, b"old", 1_700_000_000, "{}"));
        assert!(signature_verifies(&header, b"new", 1_700_000_000, "{}"));
        assert!(!signature_verifies(&header, b"other", 1_700_000_000, "{}"));
        assert!(!signature_verifies(&header, b"new", 1_700_000_001, "{}"));
        assert_eq!(signature_header(&secrets[..1], 1, "{}"), signature(b"new", 1, "{}"));
    }
}
