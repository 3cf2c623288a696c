//! The web console in headless Chromium, driven over WebDriver
//! (chromedriver): log in, search by reference and by UTR, read a
//! timeline, resolve a held transfer as an operator and see it in the
//! history under the operator's name, the same page read-only for a
//! viewer, logout; every action in the audit log. Screenshots of the
//! dashboard, a search and a transaction page (laptop and phone width)
//! go to `target/console-screenshots/`.
//!
//! The WebDriver client is the few calls below over `reqwest` (already a
//! dependency): the protocol is plain JSON over HTTP, and a client crate
//! would add its own HTTP and TLS stack to the build for them.
//!
//! Without `chromium` and `chromedriver` (Debian's packages; `.ci/run`
//! installs them) the test prints `SKIPPED (no Chromium)` and passes.
//! It runs on SQLite: the pages read the store through the same calls on
//! both engines, and `console.rs` holds the HTTP behaviour to both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use payrail::domain::operator::Role;
use serde_json::{json, Value};

use crate::console::{add_operator, held_transfer, PASSWORD};
use crate::helpers::{free_port, spawn_app_with, AppOptions, Engine, TestApp};

const CHROMIUM: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const CHROMEDRIVER: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A chromedriver process and one browser session in it; both end on drop.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        // Wait (at most 20 s) for chromedriver to listen.
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true) {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready");
        let profile = tempfile::tempdir().expect("a profile directory");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("a session")
            .json()
            .await
            .expect("JSON");
        let id = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}"));
        Browser { http, session: format!("{base}/session/{id}"), driver, _profile: profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.expect("chromedriver answers").json().await.expect("JSON");
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// The element `css` selects, waiting (at most 10 s) for it to appear.
    async fn find(&self, css: &str) -> String {
        for _ in 0..100 {
            if let Some(id) = self.try_find(css).await {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.call(reqwest::Method::GET, "/source", None).await;
        panic!("no element {css} on {}: {page}", self.url().await)
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        // W3C: one key (the element reference), whatever its name; or an error.
        let found = found.as_object().filter(|o| !o.contains_key("error"))?;
        found.values().next()?.as_str().map(str::to_owned)
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    /// Waits (at most 10 s) for the page's address to contain `part`: a
    /// click that submits a form returns before the next page is there.
    async fn wait_for_url(&self, part: &str) {
        for _ in 0..100 {
            if self.url().await.contains(part) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page {} never became {part}", self.url().await)
    }

    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("a PNG");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("the screenshot is written");
    }

    async fn quit(&self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_uses_the_console_in_chromium() {
    let (Some(chromium), Some(chromedriver)) = (first_existing(&CHROMIUM), first_existing(&CHROMEDRIVER)) else {
        eprintln!(
            "\n*** SKIPPED (no Chromium): install Debian's chromium and chromium-driver to run the browser tests ***\n"
        );
        return;
    };
    let app = spawn_app_with(Engine::Sqlite, AppOptions::default()).await;
    let partner = app.add_partner(false, &[]).await.name();
    let held = held_transfer(&app, &partner, "HELD-7001").await;
    let other_held = held_transfer(&app, &partner, "HELD-7002").await;
    let paid = paid_transfer(&app, &partner, "PAID-7003", "UTR998877").await;
    let bill = json!({"registration_id": partner, "reference_id": "BILL-7004", "operator_name": "Bajaj Finance",
                      "ca_number": "12345", "amount": "1499.50"});
    assert_eq!(app.admin("/admin/v1/bbps", Some(bill)).await.status, 201);
    add_operator(&app, "ravi.operator@example.in", Role::Operator).await;
    add_operator(&app, "meera.viewer@example.in", Role::Viewer).await;

    let browser = Browser::start(&chromium, &chromedriver).await;
    let base = format!("http://{}", app.addr);

    // Log in: the console sends an anonymous visitor to the login form.
    browser.goto(&format!("{base}/console/")).await;
    assert!(browser.url().await.ends_with("/console/login"));
    log_in(&browser, "ravi.operator@example.in").await;
    assert_eq!(browser.text("#operator").await, "ravi.operator@example.in");
    assert_eq!(browser.text("#on-hold-count").await, "2");
    browser.screenshot("dashboard").await;

    // Search by reference, then by UTR.
    browser.goto(&format!("{base}/console/transactions")).await;
    browser.type_into("#reference", "PAID-7003").await;
    browser.click("#search-button").await;
    browser.wait_for_url("reference=PAID-7003").await;
    let results = browser.text("#results").await;
    assert!(results.contains("PAID-7003") && !results.contains("HELD-7001"), "{results}");
    assert!(results.contains("₹2,50,000.00") && results.contains("Success (code 1)"), "{results}");
    browser.screenshot("search").await;
    browser.goto(&format!("{base}/console/transactions")).await;
    browser.type_into("#utr", "UTR998877").await;
    browser.click("#search-button").await;
    browser.wait_for_url("utr=UTR998877").await;
    let results = browser.text("#results").await;
    assert!(results.contains("PAID-7003") && results.lines().count() == 2, "one header, one row: {results}");

    // Open it from the results and read its timeline.
    browser.click(&format!("#results a[href='/console/dmt/{paid}']")).await;
    browser.wait_for_url(&format!("/console/dmt/{paid}")).await;
    let timeline = browser.text("#timeline").await;
    assert!(timeline.contains("Created") && timeline.contains("UTR998877"), "{timeline}");
    assert!(browser.text("#record").await.contains("PAID-7003"));

    // Resolve the held transfer as a success with its UTR; the history names the operator.
    browser.goto(&format!("{base}/console/dmt/{held}")).await;
    browser.click("#to option[value='success']").await;
    browser.type_into("#utr", "UTR4455667788").await;
    browser.type_into("#reason", "the bank confirmed the credit by phone").await;
    browser.click("#apply").await;
    browser.wait_for_url(&format!("/console/dmt/{held}/transition")).await;
    let notice = browser.text("#notice").await;
    assert_eq!(notice, "Moved to Success by ravi.operator@example.in.");
    let timeline = browser.text("#timeline").await;
    assert!(timeline.contains("operator:ravi.operator@example.in"), "{timeline}");
    assert!(timeline.contains("the bank confirmed the credit by phone"), "{timeline}");
    assert_eq!(app.admin(&format!("/admin/v1/dmt/{held}"), None).await.json()["status"], "success");
    browser.screenshot("transaction").await;
    browser.resize(390, 844).await;
    browser.screenshot("transaction-phone").await;
    browser.resize(1280, 900).await;

    // The held queue: the other held transfer, with why; resume it from there.
    browser.goto(&format!("{base}/console/held")).await;
    let queue = browser.text("#held").await;
    assert!(queue.contains("HELD-7002") && queue.contains("the bank has not answered"), "{queue}");
    assert!(!queue.contains("HELD-7001"), "the resolved one left the queue: {queue}");
    let form = format!("#held-dmt-{other_held}");
    browser.click(&format!("{form} option[value='resume']")).await;
    browser.type_into(&format!("{form} input[name='reason']"), "the upstream is answering again").await;
    browser.click(&format!("{form} button")).await;
    browser.wait_for_url(&format!("/console/held/dmt/{other_held}")).await;
    let notice = browser.text("#notice").await;
    assert_eq!(
        notice,
        format!("DMT {other_held} resumed by ravi.operator@example.in: payrail asks the upstream again.")
    );
    browser.screenshot("held").await;
    browser.goto(&format!("{base}/console/events")).await;
    assert!(browser.text("h1").await.contains("Events"));
    browser.screenshot("events").await;
    browser.goto(&format!("{base}/console/reconcile")).await;
    browser.screenshot("reconcile").await;

    // Log out: the console is closed to this browser until it logs in again.
    browser.click("#logout").await;
    browser.wait_for_url("/console/login").await;
    browser.goto(&format!("{base}/console/dmt/{held}")).await;
    assert!(browser.url().await.ends_with("/console/login"));

    // A viewer reads the other held transfer but is offered no action on it.
    log_in(&browser, "meera.viewer@example.in").await;
    browser.goto(&format!("{base}/console/dmt/{other_held}")).await;
    assert!(browser.text("#read-only").await.contains("may read this transaction but not change it"));
    assert!(browser.try_find("#apply").await.is_none());
    browser.goto(&format!("{base}/console/held")).await;
    assert!(browser.text("#read-only").await.contains("may read the queue but not act on it"));
    assert!(browser.try_find(&format!("#held-dmt-{other_held}")).await.is_none());
    browser.click("#logout").await;
    browser.wait_for_url("/console/login").await;
    browser.quit().await;

    // Every action is in the audit log under its operator.
    let audit = app.admin("/admin/v1/audit?operator=ravi.operator@example.in", None).await.json();
    let entries: Vec<(String, String)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or("").to_owned(), e["target"].as_str().unwrap_or("").to_owned()))
        .collect();
    let me = "operator:ravi.operator@example.in".to_owned();
    assert_eq!(
        entries,
        [
            ("console.logout".into(), me.clone()),
            ("held.resume".into(), format!("dmt:{other_held}")),
            ("dmt.transition".into(), format!("dmt:{held}")),
            ("console.login".into(), me)
        ],
        "{audit}"
    );
    let viewer = app.admin("/admin/v1/audit?operator=meera.viewer@example.in", None).await.json();
    let actions: Vec<&str> =
        viewer["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["console.logout", "console.login"]);
}

async fn log_in(browser: &Browser, email: &str) {
    browser.type_into("#email", email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#sign-in").await;
    browser.find("#operator").await;
}

/// A transfer paid with `utr`; its ackno.
async fn paid_transfer(app: &TestApp, partner: &str, reference: &str, utr: &str) -> i64 {
    let dmt =
        json!({"registration_id": partner, "reference_id": reference, "amount": "250000", "account": "60100200300"});
    let ackno = app.admin("/admin/v1/dmt", Some(dmt)).await.json()["ackno"].as_i64().expect("an ackno");
    let paid =
        app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(json!({"to": "success", "utr": utr}))).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    ackno
}
