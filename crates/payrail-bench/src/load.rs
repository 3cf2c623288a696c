//! The load generator and the bare hyper server it is compared with.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use payrail::domain::RegistrationId;
use payrail_client::{sign_token, TokenClaims};
use rand::Rng as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What to drive.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub name: &'static str,
    pub partner: RegistrationId,
    pub secret: Vec<u8>,
    pub records: usize,
    pub workload: Workload,
}

/// What each request asks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A status lookup of a random loaded record.
    Status,
    /// A ₹100 bill payment under a new reference, from the wallet.
    Paybill,
    /// A `TransactionStatusBulk` of this many random loaded references.
    Bulk(usize),
}

/// Numbers paybill references, unique within the process.
static NEXT_REFERENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a run measured.
pub struct Report {
    pub name: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_micros: u64,
    pub p99_micros: u64,
}

/// A server that answers every request with a fixed JSON body of `len` bytes.
pub async fn start_bare_server(len: usize) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let body = Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(len.saturating_sub(10))));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let body = body.clone();
                    async move {
                        let response = hyper::Response::builder()
                            .header("content-type", "application/json; charset=utf-8")
                            .body(Full::new(body))
                            .unwrap_or_default();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(addr)
}

/// Drives `target` with `connections` keep-alive connections for `duration`.
pub async fn drive(target: Target, connections: usize, duration: Duration) -> anyhow::Result<Report> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections).map(|_| tokio::spawn(connection(target.clone(), deadline))).collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (mut l, e) = task.await??;
        latencies.append(&mut l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(Report {
        name: target.name,
        requests: latencies.len() as u64,
        errors,
        per_second: latencies.len() as f64 / elapsed,
        p50_micros: at(0.50),
        p99_micros: at(0.99),
    })
}

/// One keep-alive connection: request, read the whole answer, repeat.
async fn connection(target: Target, deadline: Instant) -> anyhow::Result<(Vec<u64>, u64)> {
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let (mut latencies, mut errors) = (Vec::with_capacity(100_000), 0u64);
    let mut line = String::new();
    let mut body = Vec::new();
    let partner = target.partner.to_string();
    while Instant::now() < deadline {
        let request = request(&target, &partner);
        let sent = Instant::now();
        write.write_all(request.as_bytes()).await?;
        let (status, length) = read_head(&mut read, &mut line).await?;
        body.resize(length, 0);
        read.read_exact(&mut body).await?;
        latencies.push(sent.elapsed().as_micros() as u64);
        if status != 200 || body.starts_with(b"{\"status\":false") || body.starts_with(b"{\"response_code\":0") {
            errors += 1;
        }
    }
    Ok((latencies, errors))
}

/// A status request for a random loaded reference, half DMT, half BBPS,
/// each with a freshly signed token.
fn request(target: &Target, partner: &str) -> String {
    let mut rng = rand::thread_rng();
    let reference = format!("B{:07}", rng.gen_range(0..target.records));
    let (path, body) = if target.workload == Workload::Paybill {
        let n = NEXT_REFERENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = format!(
            r#"{{"RegistrationID":"{partner}","operator":1,"canumber":"{:09}","amount":"100","referenceid":"P{n}"}}"#,
            n % 1_000_000_000
        );
        ("/api/AOP/BillPaymentPaybill", body)
    } else if let Workload::Bulk(n) = target.workload {
        let references: Vec<String> = (0..n).map(|_| format!("\"B{:07}\"", rng.gen_range(0..target.records))).collect();
        let body = format!(r#"{{"RegistrationID":"{partner}","references":[{}]}}"#, references.join(","));
        ("/api/AOP/DMTV1/TransactionStatusBulk", body)
    } else if rng.gen_bool(0.5) {
        ("/api/AOP/DMTV1/TransactionStatus", format!(r#"{{"ReferanceID":"{reference}","RegistrationID":"{partner}"}}"#))
    } else {
        ("/api/AOP/BillPaymentStatus", format!(r#"{{"referenceid":"{reference}","RegistrationID":"{partner}"}}"#))
    };
    let token = sign_token(&target.secret, &TokenClaims::now(partner));
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nToken: {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads a response head; returns the status and Content-Length.
async fn read_head(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut String,
) -> anyhow::Result<(u16, usize)> {
    line.clear();
    read.read_line(line).await?;
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        line.clear();
        if read.read_line(line).await? == 0 {
            anyhow::bail!("connection closed");
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok((status, length));
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
}
