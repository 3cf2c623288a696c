//! Delivering OTPs to remitters' mobiles.
//!
//! Two notifiers: [`LogNotifier`] writes the message to the log (the demo, and
//! any installation without an SMS gateway: the server says so at start-up),
//! and [`SmsGateway`] posts it as JSON to a gateway URL:
//!
//! ```text
//! POST <PAYRAIL_SMS_GATEWAY_URL>
//! Content-Type: application/json
//! {"to":"9876543210","message":"123456 is your OTP to ... It is valid for 90 seconds."}
//! ```
//!
//! Any 2xx answer is delivery; anything else, or no answer within 5 s, is a
//! failure the partner hears about (the OTP is then useless and not stored).

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::otp::TextLimits;
use crate::domain::remitter::MobileNumber;

/// Why a message was not handed over.
#[derive(Debug, thiserror::Error)]
#[error("the SMS gateway did not take the message: {0}")]
pub struct NotifyError(pub String);

/// Sends a text message to a mobile.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Hands `message` over for delivery to `to`.
    async fn send(&self, to: &MobileNumber, message: &str) -> Result<(), NotifyError>;
    /// For logs at start-up.
    fn describe(&self) -> String;
}

/// Where OTP texts go, and how many one mobile may receive.
#[derive(Clone, Copy)]
pub struct Texts<'a> {
    /// Hands the texts over.
    pub notifier: &'a dyn Notifier,
    /// Texts per mobile, counted in the store across partners and instances.
    pub limits: TextLimits,
    /// Where texts sent and refused are counted (`None`: not counted, as
    /// the demo's own set-up texts are not).
    pub metrics: Option<&'a crate::observe::Metrics>,
}

impl Texts<'_> {
    /// Counts a text: `sent`, `refused` (over the limit) or `not_delivered`.
    pub fn count(&self, outcome: &'static str) {
        if let Some(metrics) = self.metrics {
            metrics.otp(outcome);
        }
    }
}

/// Writes messages to the log. For the demo and development.
#[derive(Debug, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn send(&self, to: &MobileNumber, message: &str) -> Result<(), NotifyError> {
        tracing::info!(to = to.as_str(), message, "SMS (log notifier; set PAYRAIL_SMS_GATEWAY_URL to send for real)");
        Ok(())
    }

    fn describe(&self) -> String {
        "OTPs are written to the log (no PAYRAIL_SMS_GATEWAY_URL set)".into()
    }
}

/// Posts messages to an SMS gateway.
#[derive(Debug, Clone)]
pub struct SmsGateway {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl SmsGateway {
    /// A gateway at `url`.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("PAYRAIL_SMS_GATEWAY_URL {url:?}: {e}"))?;
        anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "PAYRAIL_SMS_GATEWAY_URL must be http(s)");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(SmsGateway { url, client })
    }
}

#[derive(serde::Serialize)]
struct Sms<'a> {
    to: &'a str,
    message: &'a str,
}

#[async_trait]
impl Notifier for SmsGateway {
    async fn send(&self, to: &MobileNumber, message: &str) -> Result<(), NotifyError> {
        let sent = self.client.post(self.url.clone()).json(&Sms { to: to.as_str(), message }).send().await;
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(NotifyError(format!("HTTP {}", response.status()))),
            Err(e) => Err(NotifyError(e.without_url().to_string())),
        }
    }

    fn describe(&self) -> String {
        format!("OTPs are posted to the SMS gateway at {}", self.url.origin().ascii_serialization())
    }
}
