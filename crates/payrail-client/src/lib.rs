//! A typed client for payrail's partner API, which is wire-compatible with
//! the AOPay partner API.
//!
//! # Layout
//!
//! - [`token`]: signs the HS256 `Token` header (`timestamp`, `partnerId`, `reqid`).
//! - [`wire`]: the request and response bodies of the two status endpoints,
//!   field for field and in wire order.
//! - [`Client`]: sends status queries and reads back typed outcomes.
//!
//! ```no_run
//! # async fn run() -> Result<(), payrail_client::ClientError> {
//! let client = payrail_client::Client::new("http://127.0.0.1:8080", "AOP-1001")
//!     .with_secret(b"the partner secret".to_vec());
//! let outcome = client.dmt_status("12345678927").await?;
//! println!("{outcome:?}");
//! # Ok(()) }
//! ```

pub mod token;
pub mod wire;

pub use token::{sign_token, TokenClaims};
pub use wire::{BillStatusData, DmtStatusBody, ErrorBody, Outcome};

/// What can go wrong talking to the server (a refusal by the server is an
/// [`Outcome::Refused`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an HTTP answer.
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The answer was not one of the documented bodies.
    #[error("unexpected answer (HTTP {status}): {body}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The body as received.
        body: String,
    },
}

/// A connection to one payrail (or AOPay) host, as one partner.
#[derive(Debug, Clone)]
pub struct Client {
    base_url: String,
    registration_id: String,
    secret: Option<Vec<u8>>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8080`) as partner `registration_id`.
    pub fn new(base_url: &str, registration_id: &str) -> Self {
        Client {
            base_url: base_url.trim_end_matches('/').to_owned(),
            registration_id: registration_id.to_owned(),
            secret: None,
            http: reqwest::Client::new(),
        }
    }

    /// Signs every request with a fresh token under `secret`.
    pub fn with_secret(mut self, secret: Vec<u8>) -> Self {
        self.secret = Some(secret);
        self
    }

    /// `POST /api/AOP/DMTV1/TransactionStatus` for `reference`.
    pub async fn dmt_status(&self, reference: &str) -> Result<Outcome<DmtStatusBody>, ClientError> {
        let body = wire::DmtStatusRequest { referance_id: reference, registration_id: &self.registration_id };
        self.post("/api/AOP/DMTV1/TransactionStatus", &body).await
    }

    /// `POST /api/AOP/BillPaymentStatus` for `reference`.
    pub async fn bill_status(&self, reference: &str) -> Result<Outcome<BillStatusData>, ClientError> {
        let body = wire::BillStatusRequest { referenceid: reference, registration_id: &self.registration_id };
        self.post("/api/AOP/BillPaymentStatus", &body).await
    }

    async fn post<T: serde::de::DeserializeOwned + wire::FoundShape>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<Outcome<T>, ClientError> {
        let mut request = self.http.post(format!("{}{path}", self.base_url)).json(body);
        if let Some(secret) = &self.secret {
            request = request.header("Token", sign_token(secret, &TokenClaims::now(&self.registration_id)));
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        wire::read_outcome(status, &text).ok_or(ClientError::Unexpected { status, body: text })
    }
}
