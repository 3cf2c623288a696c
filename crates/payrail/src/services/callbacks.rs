//! Delivering partner callbacks from the outbox.
//!
//! A delivery is a `POST` of [`PartnerEvent::body`] to the partner's callback
//! URL with these headers:
//!
//! - `Content-Type: application/json; charset=utf-8`
//! - `X-Payrail-Event-Id`: the event id (also the body's `event_id`); the
//!   same on every attempt, so a partner recognises a repeat;
//! - `X-Payrail-Timestamp`: unix seconds when the attempt was signed;
//! - `X-Payrail-Signature`: `sha256=` and the hex HMAC-SHA256, under the
//!   partner's callback secret (its own, see `callback_secrets`; never its
//!   API token secret), of `<timestamp>.<body>`. During a rotation's overlap
//!   two signatures, comma-separated, the new secret's first;
//! - `X-Payrail-Redelivery: true` on an event an operator redelivered (its
//!   body then says `"redelivery":true` too): it repeats a state that may be
//!   older than one the partner already received, and must not replace it.
//!
//! Any 2xx answer delivers the event. Anything else (another status, a
//! timeout, a refused connection, no URL configured) is recorded as a failed
//! attempt and retried on the retry schedule until the event's window (24 h)
//! closes; then the event is failed, and an operator can redeliver it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::callback_secrets::signing_keys;
use super::secrets::MasterKey;
use crate::domain::event::{self, DeliveryAttempt, EventOutcome, PartnerEvent};
use crate::domain::upstream::Backoff;
use crate::domain::{Clock, Timestamp};
use crate::store::{Store, StoreError};

/// How callbacks are delivered.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// When to try again after a failed attempt.
    pub retry: Backoff,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings { retry: Backoff::default_callback_retry(), timeout: Duration::from_secs(10) }
    }
}

/// Sends events to partners.
pub struct Deliverer {
    store: Arc<dyn Store>,
    key: Arc<MasterKey>,
    client: reqwest::Client,
    settings: DeliverySettings,
    /// Stamps and signs attempts, and schedules the next one.
    clock: Arc<dyn Clock>,
    /// Where recorded attempts are counted.
    metrics: Arc<crate::observe::Metrics>,
}

impl Deliverer {
    /// A deliverer over this store, opening partner secrets with `key` and
    /// reading the time from `clock`.
    pub fn new(
        store: Arc<dyn Store>,
        key: Arc<MasterKey>,
        settings: DeliverySettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("payrail/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let metrics = Arc::new(crate::observe::Metrics::new(false));
        Ok(Deliverer { store, key, client, settings, clock, metrics })
    }

    /// Counts the attempts it records into `metrics` (the server's).
    pub fn with_metrics(mut self, metrics: Arc<crate::observe::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Makes one attempt at a leased event and records it; `false` if the
    /// lease was lost meanwhile (the attempt is then not recorded).
    #[tracing::instrument(name = "deliver_callback", skip_all, fields(
        event = event.id,
        partner = %event.partner,
        kind = event.kind.as_str(),
        ackno = tracing::field::Empty,
        txnid = tracing::field::Empty,
        attempt = event.attempts + 1,
    ))]
    pub async fn attempt(&self, event: &PartnerEvent, owner: &str) -> Result<bool, StoreError> {
        let field = match event.kind {
            crate::domain::TxnKind::Dmt => "ackno",
            crate::domain::TxnKind::Bbps => "txnid",
        };
        tracing::Span::current().record(field, event.txn_id);
        let started = Instant::now();
        let at = self.clock.now();
        let url = self.store.callback_url(event.partner).await?;
        let (http_status, error) = match &url {
            Some(url) => self.post(event, url, at).await?,
            None => (None, Some("the partner has no callback URL".to_owned())),
        };
        let delivered = error.is_none();
        let attempt = DeliveryAttempt {
            event_id: event.id,
            attempt: event.attempts + 1,
            instance: owner.to_owned(),
            url: url.unwrap_or_default(),
            at,
            duration_ms: started.elapsed().as_millis() as i64,
            http_status,
            error,
        };
        let outcome =
            event::outcome_of(delivered, attempt.attempt, self.clock.now(), event.deliver_until, &self.settings.retry);
        match (&attempt.error, attempt.http_status) {
            (None, status) => tracing::info!(status, duration_ms = attempt.duration_ms, "callback delivered"),
            (Some(error), status) => {
                tracing::warn!(status, duration_ms = attempt.duration_ms, %error, "callback not delivered")
            }
        }
        if outcome == EventOutcome::GiveUp {
            tracing::warn!(event = event.id, partner = %event.partner, "callback undeliverable for 24 h; event failed");
        }
        let recorded = self.store.record_attempt(attempt, owner, outcome).await?;
        if recorded {
            match outcome {
                EventOutcome::Delivered => {
                    self.metrics.delivery("delivered", Some(self.clock.now().unix() - event.created_at.unix()))
                }
                EventOutcome::RetryAt(_) => self.metrics.delivery("retry", None),
                EventOutcome::GiveUp => self.metrics.delivery("failed", None),
            }
        }
        Ok(recorded)
    }

    /// POSTs the signed event; the partner's status and what went wrong, if anything.
    async fn post(
        &self,
        event: &PartnerEvent,
        url: &str,
        at: Timestamp,
    ) -> Result<(Option<u16>, Option<String>), StoreError> {
        let Some(secrets) = self.store.callback_secrets(event.partner).await? else {
            let why = format!(
                "the partner has no callback secret: `payrail callback rotate-secret {}` makes one",
                event.partner
            );
            return Ok((None, Some(why)));
        };
        let keys = match signing_keys(&self.key, event.partner, &secrets, at) {
            Ok(keys) => keys,
            Err(e) => return Ok((None, Some(format!("cannot open the partner's callback secret: {e}")))),
        };
        let body = event.body();
        let signature = event::signature_header(&keys, at.unix(), &body);
        let sent = self
            .client
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Payrail-Event-Id", event.id.to_string())
            .header("X-Payrail-Timestamp", at.unix().to_string())
            .header("X-Payrail-Signature", signature)
            .header("X-Payrail-Redelivery", if event.redelivered_at.is_some() { "true" } else { "false" })
            .body(body)
            .send()
            .await;
        Ok(match sent {
            Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
            Ok(response) => {
                let status = response.status().as_u16();
                (Some(status), Some(format!("the partner answered HTTP {status}")))
            }
            Err(e) if e.is_timeout() => (None, Some("no answer in time".into())),
            Err(e) if e.is_connect() => (None, Some("connection failed".into())),
            Err(e) => (None, Some(format!("request failed: {}", e.without_url()))),
        })
    }
}
