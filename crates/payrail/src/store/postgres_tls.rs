//! PostgreSQL over TLS: `sslmode` and `sslrootcert` read from the URL, as
//! libpq reads them, and a rustls connector for tokio-postgres.
//!
//! | `sslmode`     | TLS                         | certificate checked                        |
//! |---------------|-----------------------------|--------------------------------------------|
//! | `disable`     | never                       | —                                          |
//! | `prefer` (default) | if the server offers it | no (against `sslrootcert` if given)        |
//! | `require`     | always                      | no (against `sslrootcert` if given)        |
//! | `verify-ca`   | always                      | chain up to a trusted root                 |
//! | `verify-full` | always                      | chain, and the host name or address        |
//!
//! The trusted roots are `sslrootcert=PATH` (PEM, one or more CAs) or, without
//! it (or with `sslrootcert=system`), the Mozilla roots bundled by
//! `webpki-roots`, which do not depend on what the host has installed.
//!
//! Why this connector and not `tokio-postgres-rustls`: the ~100 lines here
//! use only crates payrail already builds for reqwest (rustls with ring,
//! tokio-rustls, webpki-roots), while that crate adds an X.509 parser
//! (`x509-cert`, `der`, `spki`, …) for one feature, SCRAM channel binding,
//! which `verify-full` already makes unnecessary. So the stream reports no
//! channel binding and SCRAM-SHA-256 runs without it.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{bail, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// The `sslmode` values payrail understands, as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, certificate unchecked.
    #[default]
    Prefer,
    /// TLS always, certificate unchecked.
    Require,
    /// TLS always, certificate chain checked.
    VerifyCa,
    /// TLS always, chain and host name checked.
    VerifyFull,
}

impl TlsMode {
    fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => bail!("sslmode={other:?}: use disable, prefer, require, verify-ca or verify-full"),
        })
    }

    /// What tokio-postgres is told: it decides whether to ask for TLS.
    fn driver_mode(self) -> SslMode {
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }
}

/// Reads a `postgres://` URL: the driver's configuration (without the TLS
/// parameters, which the driver does not know) and the TLS connector.
pub fn from_url(url: &str) -> anyhow::Result<(tokio_postgres::Config, RustlsConnect)> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root_cert) = (TlsMode::default(), None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = TlsMode::parse(&percent_decode(value)?)?,
            Some(("sslrootcert", value)) => root_cert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    let driver_url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    // The URL carries the password: keep it out of the error message.
    let mut config = driver_url.parse::<tokio_postgres::Config>().context("Failed to parse the PostgreSQL URL")?;
    config.ssl_mode(mode.driver_mode());
    let roots = root_cert.filter(|r| r != "system").map(PathBuf::from);
    Ok((config, RustlsConnect::new(mode, roots.as_ref())?))
}

fn percent_decode(text: &str) -> anyhow::Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).context("a URL parameter has a broken %-escape")?;
            out.push(u8::from_str_radix(hex, 16).context("a URL parameter has a broken %-escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("a URL parameter is not UTF-8")
}

/// Makes rustls connections for tokio-postgres, one per pooled connection.
#[derive(Clone)]
pub struct RustlsConnect(Arc<ClientConfig>);

impl RustlsConnect {
    /// A connector for `mode`, trusting the CAs in `root_cert` (PEM) or the
    /// bundled Mozilla roots.
    pub fn new(mode: TlsMode, root_cert: Option<&PathBuf>) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(trusted_roots(root_cert)?);
        // libpq: with a root certificate given, require (and prefer) check the chain.
        let check = match (mode, root_cert) {
            (TlsMode::VerifyFull, _) => Check::Full,
            (TlsMode::VerifyCa, _) | (TlsMode::Require | TlsMode::Prefer, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        };
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .context("Failed to set up PostgreSQL certificate checks")?;
        let verifier = Verifier { webpki, check };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("Failed to set up TLS for PostgreSQL")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(RustlsConnect(Arc::new(config)))
    }
}

fn trusted_roots(root_cert: Option<&PathBuf>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let Some(path) = root_cert else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let what = || format!("sslrootcert: Failed to read {}", path.display());
    for cert in CertificateDer::pem_file_iter(path).with_context(what)? {
        roots.add(cert.with_context(what)?).with_context(what)?;
    }
    if roots.is_empty() {
        bail!("sslrootcert: {} holds no PEM certificate", path.display());
    }
    Ok(roots)
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    Full,
}

/// Checks the server certificate as its [`Check`] says. The handshake's
/// signatures are always verified (by `webpki`, with the provider's
/// algorithms), so a session is with the key holder of the certificate
/// presented, whatever is believed about that certificate.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    check: Check,
}

/// The [`ServerCertVerifier`] methods that check a handshake signature, one
/// per TLS version and alike but for the name: each is webpki's own.
macro_rules! signatures_checked_by_webpki {
    ($($method:ident),+) => {
        $(
            fn $method(
                &self,
                message: &[u8],
                cert: &CertificateDer<'_>,
                dss: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, rustls::Error> {
                self.webpki.$method(message, cert, dss)
            }
        )+
    };
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            // The chain is checked before the name: a name error means a good chain.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    signatures_checked_by_webpki!(verify_tls12_signature, verify_tls13_signature);

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnector, Self::Error> {
        let name = ServerName::try_from(host.to_owned())?;
        Ok(RustlsConnector { config: self.0.clone(), name })
    }
}

/// One connection's TLS handshake, to the server named.
pub struct RustlsConnector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(RustlsStream) })
    }
}

/// A TLS stream to the server.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url_and_the_rest_kept() {
        let (config, _) = from_url("postgres://u:p@db.example/app?sslmode=require&application_name=pr")
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert_eq!(config.get_application_name(), Some("pr"));
        let (config, _) = from_url("postgres://u:p@db.example/app").unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer, "libpq's default");
        let (config, _) = from_url("postgres://db.example/app?sslmode=verify-full").unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert!(from_url("postgres://db.example/app?sslmode=allow").is_err());
        let missing = from_url("postgres://db.example/app?sslmode=verify-ca&sslrootcert=%2Fno%2Fsuch.pem");
        let error = missing.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(error.contains("/no/such.pem"), "{error}");
    }
}
