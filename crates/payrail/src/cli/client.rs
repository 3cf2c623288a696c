//! The partner-side commands: `payrail token` and `payrail status`, both
//! through the `payrail-client` crate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use clap::{Args, ValueEnum};
use payrail_client::{sign_token, Client, ClientError, Outcome, TokenClaims};
use secrecy::{ExposeSecret as _, SecretString};

use super::secret_input;

/// `token` options.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The partner, e.g. AOP-1001.
    #[arg(long, env = "PAYRAIL_REGISTRATION_ID")]
    registration_id: String,
    /// The partner's secret (better: PAYRAIL_PARTNER_SECRET or --secret-file, which `ps` does not show).
    #[arg(long, env = "PAYRAIL_PARTNER_SECRET", hide_env_values = true, required_unless_present = "secret_file")]
    secret: Option<SecretString>,
    /// Read the partner's secret from this file, or from standard input if `-`.
    #[arg(long, value_name = "PATH", conflicts_with = "secret")]
    secret_file: Option<PathBuf>,
}

/// Prints a fresh token (new `reqid`, current `timestamp`).
pub fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let secret = secret_input::read(args.secret.as_ref(), args.secret_file.as_deref())?
        .context("no partner secret: give PAYRAIL_PARTNER_SECRET, --secret-file or --secret")?;
    let claims = TokenClaims::now(&args.registration_id);
    println!("{}", sign_token(secret.expose_secret().as_bytes(), &claims));
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
    /// The partner's secret; without it no Token header is sent (better:
    /// PAYRAIL_PARTNER_SECRET or --secret-file, which `ps` does not show).
    #[arg(long, env = "PAYRAIL_PARTNER_SECRET", hide_env_values = true)]
    secret: Option<SecretString>,
    /// Read the partner's secret from this file, or from standard input if `-`.
    #[arg(long, value_name = "PATH", conflicts_with = "secret")]
    secret_file: Option<PathBuf>,
}

/// `status` exit code: the server could not be reached, or answered with
/// something that is not the API's (a proxy's error page, say).
const EXIT_NO_ANSWER: u8 = 3;
/// `status` exit code: the query was not sent (its secret file could not be
/// read, say); kept apart from 1 so that no script reads it as "not found".
const EXIT_NOT_ASKED: u8 = 4;

/// Queries and prints the outcome; exit 0 found, 1 not found, 2 refused by
/// the server (its code is printed), 3 no answer from the API, 4 not asked.
pub async fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let mut client = Client::new(&args.url, &args.registration_id);
    match secret_input::read(args.secret.as_ref(), args.secret_file.as_deref()) {
        Ok(Some(secret)) => client = client.with_secret(secret.expose_secret().as_bytes().to_vec()),
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(EXIT_NOT_ASKED));
        }
    }
    let outcome = match args.kind {
        Kind::Dmt => client.dmt_status(&args.reference).await.map(report),
        Kind::Bbps => client.bill_status(&args.reference).await.map(report),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: no answer from the payrail API at {}: {}", args.url, no_answer(&e));
            Ok(ExitCode::from(EXIT_NO_ANSWER))
        }
    }
}

/// One line for a failed exchange: the error with its causes, as reqwest
/// nests the reason (connection refused, …) several sources deep.
fn no_answer(error: &ClientError) -> String {
    if let ClientError::Unexpected { status, body } = error {
        let excerpt: String = body.chars().take(200).collect();
        return format!("an answer that is not the API's (HTTP {status}): {excerpt:?}");
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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
