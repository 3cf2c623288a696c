//! A fake SMS gateway: a real HTTP server that keeps the OTP texts payrail
//! posts to it, across server restarts.

use std::sync::{Arc, Mutex};

/// The gateway's URL and the messages it received.
#[derive(Clone, Default)]
pub struct SmsInbox {
    pub url: String,
    messages: Arc<Mutex<Vec<(String, String)>>>,
}

impl SmsInbox {
    /// Starts the gateway on a free loopback port.
    pub async fn start() -> SmsInbox {
        let mut inbox = SmsInbox::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        inbox.url = format!("http://{}/sms", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let kept = inbox.clone();
        let route = axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let field = |name: &str| json[name].as_str().unwrap_or_default().to_owned();
                kept.messages.lock().unwrap_or_else(|e| e.into_inner()).push((field("to"), field("message")));
                axum::http::StatusCode::OK
            }
        });
        let app = axum::Router::new().route("/sms", route);
        tokio::spawn(async move { axum::serve(listener, app).await });
        inbox
    }

    /// The OTP in the latest message to `mobile` (the server sends it before answering).
    pub fn last_otp(&self, mobile: &str) -> Option<String> {
        let messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        let (_, text) = messages.iter().rev().find(|(to, _)| to == mobile)?;
        let otp: String = text.chars().take(6).collect();
        (otp.len() == 6 && otp.chars().all(|c| c.is_ascii_digit())).then_some(otp)
    }
}
