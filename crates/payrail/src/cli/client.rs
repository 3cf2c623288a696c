//! The partner-side commands: `payrail token` and `payrail status`, both
//! through the `payrail-client` crate.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use payrail_client::{sign_token, Client, Outcome, TokenClaims};
use secrecy::{ExposeSecret as _, SecretString};

/// `token` options.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The partner, e.g. AOP-1001.
    #[arg(long, env = "PAYRAIL_REGISTRATION_ID")]
    registration_id: String,
    /// The partner's secret.
    #[arg(long, env = "PAYRAIL_PARTNER_SECRET", hide_env_values = true)]
    secret: SecretString,
}

/// Prints a fresh token (new `reqid`, current `timestamp`).
pub fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let claims = TokenClaims::now(&args.registration_id);
    println!("{}", sign_token(args.secret.expose_secret().as_bytes(), &claims));
    Ok(())
}

/// Which status endpoint.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// `/api/AOP/DMTV1/TransactionStatus`.
    Dmt,
    /// `/api/AOP/BillPaymentStatus`.
    Bbps,
}

/// `status` options.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Which endpoint.
    kind: Kind,
    /// The partner's reference id.
    reference: String,
    /// The server.
    #[arg(long, env = "PAYRAIL_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The partner.
    #[arg(long, env = "PAYRAIL_REGISTRATION_ID")]
    registration_id: String,
    /// The partner's secret; without it no Token header is sent.
    #[arg(long, env = "PAYRAIL_PARTNER_SECRET", hide_env_values = true)]
    secret: Option<SecretString>,
}

/// Queries and prints the outcome; exit 0 found, 1 not found, 2 refused.
pub async fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let mut client = Client::new(&args.url, &args.registration_id);
    if let Some(secret) = &args.secret {
        client = client.with_secret(secret.expose_secret().as_bytes().to_vec());
    }
    match args.kind {
        Kind::Dmt => report(client.dmt_status(&args.reference).await?),
        Kind::Bbps => report(client.bill_status(&args.reference).await?),
    }
}

fn report<T: serde::Serialize>(outcome: Outcome<T>) -> anyhow::Result<ExitCode> {
    match outcome {
        Outcome::Found(body) => {
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(ExitCode::SUCCESS)
        }
        Outcome::NotFound(body) => {
            println!("not found: {}", body.message);
            Ok(ExitCode::from(1))
        }
        Outcome::Refused { http_status, body } => {
            eprintln!("refused (HTTP {http_status}, code {}): {}", body.response_code, body.message);
            Ok(ExitCode::from(2))
        }
    }
}
