//! `GET /metrics`: the exposition parses as the Prometheus text format
//! (checked by the strict parser below), and the counters move by exactly
//! the requests and transactions a test makes: each `TestApp` has its own
//! registry, so tests running side by side do not count each other.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::json;

use crate::both_engines;
use crate::helpers::{eventually, spawn_app_with, AppOptions, Engine, TestApp, TestUpstream};
use crate::journey::{balance, operator_moves, top_up};
use crate::upstream_sandbox::{funded_partner, pay, send};

both_engines!(counters_move_by_exactly_what_the_test_did, operator_changes_count_as_settlements,);

/// One scrape: every sample by its name and labels, and each family's type.
#[derive(Debug, Default)]
pub struct Exposition {
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
}

impl Exposition {
    /// The sample `name{labels}` (0 when absent: a counter not yet moved).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples.get(&key(name, labels.iter().map(|(k, v)| (k.to_string(), v.to_string())))).copied().unwrap_or(0.0)
    }

    /// Every sample of `name`, with its labels.
    pub fn all(&self, name: &str) -> Vec<(String, f64)> {
        let prefix = format!("{name}{{");
        let mut found: Vec<(String, f64)> = self
            .samples
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) || *k == name)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }
}

fn key(name: &str, labels: impl Iterator<Item = (String, String)>) -> String {
    let sorted: BTreeMap<String, String> = labels.collect();
    if sorted.is_empty() {
        return name.to_owned();
    }
    let inner: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the Prometheus text format (0.0.4) strictly: `# HELP` and
/// `# TYPE` lines before their samples, valid metric and label names,
/// quoted and escaped label values, float values; each histogram's
/// buckets cumulative, ending in `+Inf` equal to its `_count`.
pub fn parse(exposition: &str) -> Exposition {
    let mut parsed = Exposition::default();
    for (number, line) in exposition.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) => assert!(valid_name(name), "{}", at("bad HELP name")),
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(valid_name(name), "{}", at("bad TYPE name"));
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{}",
                        at("unknown type")
                    );
                    assert!(parsed.types.insert(name.to_owned(), kind.to_owned()).is_none(), "{}", at("TYPE twice"));
                }
                _ => panic!("{}", at("a comment that is neither HELP nor TYPE")),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("{}", at("no value")));
        let name = &line[..name_end];
        assert!(valid_name(name), "{}", at("bad metric name"));
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            loop {
                let start = chars.peek().map(|(i, _)| *i).unwrap_or_else(|| panic!("{}", at("open labels")));
                if inner[start..].starts_with('}') {
                    rest = &inner[start + 1..];
                    break;
                }
                let eq = inner[start..].find('=').unwrap_or_else(|| panic!("{}", at("label without =")));
                let label = &inner[start..start + eq];
                assert!(valid_name(label) && !label.starts_with("__"), "{}", at("bad label name"));
                assert!(inner[start + eq + 1..].starts_with('"'), "{}", at("unquoted label value"));
                let mut value = String::new();
                let mut index = start + eq + 2;
                let bytes: Vec<char> = inner[index..].chars().collect();
                let mut i = 0;
                loop {
                    let c = *bytes.get(i).unwrap_or_else(|| panic!("{}", at("unterminated label value")));
                    i += 1;
                    match c {
                        '\\' => {
                            let escaped = *bytes.get(i).unwrap_or_else(|| panic!("{}", at("dangling escape")));
                            i += 1;
                            value.push(match escaped {
                                '\\' => '\\',
                                '"' => '"',
                                'n' => '\n',
                                _ => panic!("{}", at("bad escape")),
                            });
                        }
                        '"' => break,
                        '\n' => panic!("{}", at("raw newline in a label value")),
                        c => value.push(c),
                    }
                }
                index += bytes[..i].iter().map(|c| c.len_utf8()).sum::<usize>();
                labels.push((label.to_owned(), value));
                while chars.peek().is_some_and(|(j, _)| *j < index) {
                    chars.next();
                }
                match inner[index..].chars().next() {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    _ => panic!("{}", at("labels not separated by commas")),
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{}", at("no space before the value")));
        let value = value.split(' ').next().unwrap_or_default();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("{}", at("a value that is not a number"))),
        };
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| parsed.types.contains_key(*f)))
            .unwrap_or(name);
        let declared = parsed.types.get(family).or_else(|| parsed.types.get(name));
        assert!(declared.is_some(), "{}", at("a sample before its TYPE"));
        let sample = key(name, labels.into_iter());
        assert!(parsed.samples.insert(sample, value).is_none(), "{}", at("the same sample twice"));
    }
    check_histograms(&parsed);
    parsed
}

fn check_histograms(parsed: &Exposition) {
    for (family, kind) in &parsed.types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (sample, value) in parsed.all(&format!("{family}_bucket")) {
            let le =
                sample.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_else(|| panic!("{sample}"));
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or_else(|_| panic!("{sample}")) };
            let others = sample.replace(&format!("le=\"{le}\""), "").replace("{,", "{").replace(",}", "}");
            series.entry(others).or_default().push((bound, value));
        }
        for (others, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{others}: buckets not cumulative");
            let last = buckets.last().unwrap_or_else(|| panic!("{others}: no buckets"));
            assert!(last.0.is_infinite(), "{others}: no +Inf bucket");
            let count_key = others.replacen("_bucket", "_count", 1).replace("{}", "");
            let count = parsed.samples.get(&count_key).unwrap_or_else(|| panic!("no {count_key}"));
            assert_eq!(*count, last.1, "{others}: +Inf bucket equals _count");
        }
    }
}

/// Scrapes the app's `/metrics` and parses it.
pub async fn scrape(app: &TestApp) -> Exposition {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    parse(&response.text().await.unwrap_or_else(|e| panic!("{e}")))
}

const REQUESTS: &str = "payrail_http_requests_total";
const STATUS_ROUTE: &str = "/api/aop/dmtv1/transactionstatus";

/// Paise in a "1234.50" amount.
fn paise(amount: &str) -> f64 {
    let rupees: f64 = amount.parse().unwrap_or_else(|e| panic!("{amount}: {e}"));
    (rupees * 100.0).round()
}

async fn counters_move_by_exactly_what_the_test_did(engine: Engine) {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() };
    let app = spawn_app_with(engine, options.on_manual_clock()).await;
    let (partner, receiver) = funded_partner(&app).await;
    let before = scrape(&app).await;
    let wallet_before = paise(&balance(&app, &partner).await);
    let wallet_label = [("partner", partner.name())];
    let wallet_label: Vec<(&str, &str)> = wallet_label.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(before.get("payrail_wallet_balance_paise", &wallet_label), wallet_before, "the wallet gauge");

    // A transfer (its OTP, then the Transaction), two bill payments (one the
    // upstream fails at once, paid back), a status lookup, a failed
    // authentication, and a path no route matches.
    let sent = send(&app, &partner, "123456789012", "1000", "MET-1").await;
    assert_eq!(sent["txn_status"], "3", "{sent}");
    let ok = pay(&app, &partner, "150012345678", "MET-BILL-OK").await;
    assert_eq!(ok["message"], "Transaction Pending");
    let failed = pay(&app, &partner, "150012345111", "MET-BILL-FAIL").await;
    assert_eq!(failed["message"], "Transaction Refunded");
    let token = partner.token();
    assert_eq!(app.dmt_status(&partner.name(), "MET-1", Some(&token)).await.status, 200);
    assert_eq!(app.dmt_status(&partner.name(), "MET-1", Some("not-a-token")).await.status, 401);
    let probe = app.http.get(app.url("/wp-admin/setup.php?x=1")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(probe.status().as_u16(), 404);

    let after = scrape(&app).await;
    let moved = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let http = |route: &str, status: &str| moved(REQUESTS, &[("route", route), ("status", status)]);
    assert_eq!(http(STATUS_ROUTE, "200"), 1.0);
    assert_eq!(http(STATUS_ROUTE, "401"), 1.0, "the failed authentication");
    assert_eq!(http("/api/aop/dmtv1/transactionsendotp", "202"), 1.0);
    assert_eq!(http("/api/aop/dmtv1/transaction", "200"), 1.0);
    assert_eq!(http("/api/aop/billpaymentpaybill", "200"), 2.0);
    assert_eq!(http("unmatched", "404"), 1.0, "unknown paths share one label value");
    assert_eq!(http("/metrics", "200"), 1.0, "the scrape before");
    let duration = |status: &str| {
        moved("payrail_http_request_duration_seconds_count", &[("route", STATUS_ROUTE), ("status", status)])
    };
    assert_eq!((duration("200"), duration("401")), (1.0, 1.0));
    assert!(after.all(REQUESTS).iter().all(|(k, _)| !k.contains("wp-admin")), "never the raw path");

    let created =
        |kind: &str, state: &str| moved("payrail_transactions_created_total", &[("kind", kind), ("state", state)]);
    assert_eq!((created("dmt", "in_process"), created("bbps", "pending")), (1.0, 2.0));
    let settled =
        |kind: &str, state: &str| moved("payrail_transactions_settled_total", &[("kind", kind), ("state", state)]);
    assert_eq!(settled("dmt", "sent_to_bank"), 1.0, "the sandbox took the transfer");
    assert_eq!(settled("bbps", "refunded"), 1.0, "the bill failed at once, paid back");
    let debited = moved("payrail_money_debited_paise_total", &[]);
    let refunded = moved("payrail_money_refunded_paise_total", &[]);
    assert_eq!(refunded, 50_000.0, "the failed bill's Rs 500");
    let wallet_after = paise(&balance(&app, &partner).await);
    assert_eq!(debited - refunded, wallet_before - wallet_after, "debits less refunds are what left the wallet");
    assert!(debited >= 100_000.0 + 2.0 * 50_000.0, "the transfer and both bills: {debited}");
    assert_eq!(moved("payrail_otps_total", &[("outcome", "sent")]), 1.0, "the transfer's OTP");
    let calls =
        |operation: &str| moved("payrail_upstream_calls_total", &[("operation", operation), ("outcome", "answered")]);
    assert_eq!((calls("submit_transfer"), calls("submit_bill")), (1.0, 2.0));
    assert_eq!(
        moved("payrail_upstream_call_duration_seconds_count", &[("operation", "submit_bill")]),
        2.0,
        "each call timed"
    );
    let wallet_gauge = after.get("payrail_wallet_balance_paise", &wallet_label);
    assert_eq!(wallet_gauge, wallet_after, "the wallet gauge follows the wallet");
    assert_eq!(after.types.get("payrail_poll_jobs").map(String::as_str), Some("gauge"));
    assert_eq!(after.types.get("payrail_partner_events").map(String::as_str), Some("gauge"));
    assert!(after.get("payrail_poll_jobs", &[("state", "due")]) >= 0.0);
    assert_eq!(after.get("payrail_poll_jobs", &[("state", "held")]), 0.0);

    // One step on: the poller settles the transfer and the good bill, and
    // every event is delivered to the partner; the gauges say nothing waits.
    app.advance(Duration::from_secs(1)).await;
    let settled_now = eventually(15, "the poller settles both", || async {
        let now = scrape(&app).await;
        let done = |kind: &str| {
            now.get("payrail_transactions_settled_total", &[("kind", kind), ("state", "success")])
                - before.get("payrail_transactions_settled_total", &[("kind", kind), ("state", "success")])
        };
        (done("dmt") == 1.0 && done("bbps") == 1.0).then_some(now)
    })
    .await;
    assert!(
        settled_now.get("payrail_upstream_calls_total", &[("operation", "dmt_status"), ("outcome", "answered")]) >= 1.0
    );
    let delivered = eventually(15, "every event delivered and counted", || async {
        app.advance(Duration::ZERO).await;
        let now = scrape(&app).await;
        let counted = now.get("payrail_partner_event_deliveries_total", &[("outcome", "delivered")]);
        let pending = now.get("payrail_partner_events", &[("state", "pending")]);
        (pending == 0.0 && counted == receiver.deliveries().len() as f64 && counted >= 4.0).then_some(now)
    })
    .await;
    let latency_count = delivered.get("payrail_partner_event_delivery_seconds_count", &[]);
    assert_eq!(latency_count, delivered.get("payrail_partner_event_deliveries_total", &[("outcome", "delivered")]));
    assert_eq!(delivered.all("payrail_poll_jobs").len(), 2, "due and held: {:?}", delivered.all("payrail_poll_jobs"));
}

async fn operator_changes_count_as_settlements(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let partner = app.add_partner(true, &[]).await;
    top_up(&app, &partner, "1000").await;
    let paid = pay(&app, &partner, "150012345678", "MET-OP-1").await;
    assert_eq!(paid["message"], "Transaction Pending", "the manual provider leaves it to an operator: {paid}");
    let txnid = paid["ackno"].as_i64().expect("ackno is a JSON integer").to_string();
    let before = scrape(&app).await;
    operator_moves(&app, "bbps", &txnid, "failed").await;
    operator_moves(&app, "bbps", &txnid, "refunded").await;
    let after = scrape(&app).await;
    let settled = |state: &str| {
        let labels = [("kind", "bbps"), ("state", state)];
        after.get("payrail_transactions_settled_total", &labels)
            - before.get("payrail_transactions_settled_total", &labels)
    };
    assert_eq!((settled("failed"), settled("refunded")), (1.0, 1.0));
    let refunded =
        after.get("payrail_money_refunded_paise_total", &[]) - before.get("payrail_money_refunded_paise_total", &[]);
    assert_eq!(refunded, 50_000.0, "the bill's Rs 500 went back");
    assert_eq!(balance(&app, &partner).await, "1000.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otps_sent_and_refused_over_the_limit_are_counted() {
    let limits = payrail::domain::otp::TextLimits { per_ten_minutes: 1, per_day: 20 };
    let app = spawn_app_with(Engine::Sqlite, AppOptions { text_limits: Some(limits), ..AppOptions::default() }).await;
    let partner = app.add_partner(true, &[]).await;
    let query = |mobile: &'static str| {
        let partner = &partner;
        let app = &app;
        async move { app.call("/api/AOP/DMTV1/QueryRemitter", partner, json!({"MobileNo": mobile})).await }
    };
    let before = scrape(&app).await;
    assert_eq!(query("9811122233").await.status, 202);
    assert_eq!(query("9811122233").await.status, 422, "one text in 10 minutes");
    let after = scrape(&app).await;
    let otp = |outcome: &str| {
        after.get("payrail_otps_total", &[("outcome", outcome)])
            - before.get("payrail_otps_total", &[("outcome", outcome)])
    };
    assert_eq!((otp("sent"), otp("refused")), (1.0, 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_metrics_apart_and_no_metrics_turns_them_off() {
    let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key = "33".repeat(32);
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(&url).send().await.ok() }
    };

    let (main, apart) = (crate::helpers::free_port(), crate::helpers::free_port());
    let serve = |dir: &str, args: &[&str]| {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
            .arg("--data-dir")
            .arg(parent.path().join(dir))
            .arg("serve")
            .args(args)
            .env("PAYRAIL_MASTER_KEY", &key)
            .env_remove("PAYRAIL_DATABASE_URL")
            .env_remove("PAYRAIL_METRICS_LISTEN")
            .env_remove("PAYRAIL_NO_METRICS")
            .env("PAYRAIL_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn payrail: {e}"));
        crate::helpers::Running(child)
    };
    let main_listen = format!("127.0.0.1:{main}");
    let apart_listen = format!("127.0.0.1:{apart}");
    let server = serve("apart", &["--listen", &main_listen, "--metrics-listen", &apart_listen]);
    let metrics_url = format!("http://{apart_listen}/metrics");
    let scraped = eventually(20, "the metrics listener answers", || async {
        let response = get(metrics_url.clone()).await?;
        Some((response.status().as_u16(), response.text().await.ok()?))
    })
    .await;
    assert_eq!(scraped.0, 200);
    let parsed = parse(&scraped.1);
    assert_eq!(parsed.types.get("payrail_money_debited_paise_total").map(String::as_str), Some("counter"));
    let on_main = eventually(20, "the main listener answers", || get(format!("http://{main_listen}/metrics"))).await;
    assert_eq!(on_main.status().as_u16(), 404, "not on the main listener");
    let ready = get(format!("http://{main_listen}/readyz")).await.unwrap_or_else(|| panic!("readyz"));
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(
        get(format!("http://{apart_listen}/readyz")).await.map(|r| r.status().as_u16()),
        Some(404),
        "metrics only"
    );
    drop(server);

    let port = crate::helpers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let _off = serve("off", &["--listen", &listen, "--no-metrics"]);
    let health = eventually(20, "the server answers", || get(format!("http://{listen}/healthz"))).await;
    assert_eq!(health.status().as_u16(), 200);
    let off = get(format!("http://{listen}/metrics")).await.unwrap_or_else(|| panic!("metrics"));
    assert_eq!(off.status().as_u16(), 404, "no metrics under --no-metrics");
}
