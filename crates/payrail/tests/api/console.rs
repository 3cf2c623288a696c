//! The web console over plain HTTP: its headers, sessions (cookie,
//! idle expiry, logout, a disabled operator), CSRF, login limits and roles.
//! `console_browser.rs` drives the same pages in Chromium.

use std::time::Duration;

use payrail::domain::operator::{Actor, Email, Role};
use payrail::http::console::ConsoleSettings;
use payrail::services::operators;
use reqwest::redirect::Policy;
use serde_json::json;

use crate::both_engines;
use crate::helpers::{spawn_app_with, AppOptions, Engine, TestApp};

both_engines!(
    the_console_sends_strict_headers_and_asks_for_a_login,
    a_console_session_lives_until_it_idles_logs_out_or_its_operator_is_disabled,
    a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing,
    failed_logins_are_limited_per_account_and_per_address,
    a_viewer_may_read_a_transaction_but_not_move_it,
    the_console_can_be_turned_off,
    cookies_are_secure_behind_tls,
    the_search_page_filters_and_pages_like_the_search_api,
    a_partners_page_shows_its_wallet_and_events_and_an_operator_redelivers_one,
);

pub const PASSWORD: &str = "correct horse battery staple";

/// Adds an operator with [`PASSWORD`].
pub async fn add_operator(app: &TestApp, email: &str, role: Role) {
    let email = Email::parse(email).expect("an email");
    operators::add(&*app.store, &*app.time, email, role, PASSWORD, &Actor::Cli).await.expect("the operator is added");
}

/// A transfer made through the operator API and moved on hold; its ackno.
pub async fn held_transfer(app: &TestApp, partner: &str, reference: &str) -> i64 {
    let dmt =
        json!({"registration_id": partner, "reference_id": reference, "amount": "125000", "account": "50100200300"});
    let ackno = app.admin("/admin/v1/dmt", Some(dmt)).await.json()["ackno"].as_i64().expect("an ackno");
    let hold = json!({"to": "on_hold", "reason": "the bank has not answered"});
    let held = app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(hold)).await;
    assert_eq!(held.status, 200, "{}", held.body);
    ackno
}

/// A browser-less console client: keeps the session cookie by hand.
pub struct Console {
    http: reqwest::Client,
    base: String,
    pub session: Option<String>,
    pub set_cookie: Vec<String>,
}

/// One answer: status, headers of interest, body.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the page's first CSRF field.
    pub fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
        self.body[at..].split('"').next().unwrap_or_default().to_owned()
    }
}

fn cookie_value(set_cookie: &[String], name: &str) -> Option<String> {
    set_cookie.iter().find_map(|c| c.strip_prefix(&format!("{name}="))?.split(';').next().map(str::to_owned))
}

impl Console {
    pub fn new(app: &TestApp) -> Console {
        let http = reqwest::Client::builder().redirect(Policy::none()).build().expect("a client");
        Console { http, base: format!("http://{}", app.addr), session: None, set_cookie: Vec::new() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder, extra_cookie: Option<String>) -> Page {
        let mut cookies: Vec<String> = self.session.iter().map(|s| format!("payrail_console={s}")).collect();
        cookies.extend(extra_cookie);
        let request = if cookies.is_empty() { request } else { request.header("cookie", cookies.join("; ")) };
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.set_cookie =
            headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
        let location = headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        Page { status, location, headers, body: response.text().await.unwrap_or_default() }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request, None).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).expect("a form");
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request, None).await
    }

    /// Logs in; the answer to the form's POST.
    pub async fn login(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/console/login").await;
        let token = cookie_value(&self.set_cookie, "payrail_console_login").expect("a login cookie");
        assert_eq!(form.csrf(), token);
        let body = serde_urlencoded::to_string([("csrf", token.as_str()), ("email", email), ("password", password)])
            .expect("a form");
        let request = self
            .http
            .post(format!("{}/console/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let answer = self.send(request, Some(format!("payrail_console_login={token}"))).await;
        if let Some(session) = cookie_value(&self.set_cookie, "payrail_console") {
            self.session = Some(session);
        }
        answer
    }
}

fn manual(engine_options: AppOptions) -> AppOptions {
    engine_options.on_manual_clock()
}

async fn the_console_sends_strict_headers_and_asks_for_a_login(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let mut console = Console::new(&app);
    let home = console.get("/console/").await;
    assert_eq!((home.status, home.location.as_deref()), (303, Some("/console/login")));
    let login = console.get("/console/login").await;
    assert_eq!(login.status, 200);
    let header = |name: &str| login.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(
        header("content-security-policy").starts_with("default-src 'self'"),
        "{}",
        header("content-security-policy")
    );
    assert!(!header("content-security-policy").contains("unsafe-inline"));
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert!(!login.body.contains("<script") && !login.body.contains("style="), "no inline script or style");
    let css = console.get("/console/console.css").await;
    assert_eq!(
        (css.status, css.headers.get("content-type").and_then(|v| v.to_str().ok())),
        (200, Some("text/css; charset=utf-8"))
    );
}

async fn a_console_session_lives_until_it_idles_logs_out_or_its_operator_is_disabled(engine: Engine) {
    let app = spawn_app_with(engine, manual(AppOptions::default())).await;
    add_operator(&app, "asha@example.in", Role::Operator).await;
    let mut console = Console::new(&app);
    let signed_in = console.login("Asha@example.in", PASSWORD).await;
    assert_eq!((signed_in.status, signed_in.location.as_deref()), (303, Some("/console/")), "{}", signed_in.body);
    let cookie = console.set_cookie.iter().find(|c| c.starts_with("payrail_console=")).expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "no Secure over plain HTTP: {cookie}");
    let session = console.session.clone().expect("a session");
    // Only a hash of the id is stored.
    assert!(app.store.console_session(session.as_bytes()).await.expect("a lookup").is_none());
    let home = console.get("/console/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("asha@example.in"), "{}", home.body);

    // 29 minutes idle: still in (and the request counts as use); then 30 more: out.
    app.clock().advance(Duration::from_secs(29 * 60));
    assert_eq!(console.get("/console/transactions").await.status, 200);
    app.clock().advance(Duration::from_secs(30 * 60));
    assert_eq!(console.get("/console/").await.location.as_deref(), Some("/console/login"));

    // Logout ends the session at once, and is audited.
    console.login("asha@example.in", PASSWORD).await;
    let csrf = console.get("/console/").await.csrf();
    let out = console.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.location.as_deref(), Some("/console/login"));
    assert_eq!(console.get("/console/").await.location.as_deref(), Some("/console/login"));
    let audit = app.admin("/admin/v1/audit?operator=asha@example.in", None).await.json();
    let actions: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["console.logout", "console.login", "console.login"], "{audit}");

    // Disabling the operator ends its session on the next request.
    console.login("asha@example.in", PASSWORD).await;
    assert_eq!(console.get("/console/").await.status, 200);
    let email = Email::parse("asha@example.in").expect("an email");
    operators::change(
        &*app.store,
        &*app.time,
        &email,
        payrail::domain::operator::OperatorChange::SetDisabled(true),
        &Actor::Cli,
    )
    .await
    .expect("disabled");
    assert_eq!(console.get("/console/").await.location.as_deref(), Some("/console/login"));
    let refused = console.login("asha@example.in", PASSWORD).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("do not match an active operator"), "{}", refused.body);
    // Enabling the account again does not bring the old session back.
    let enable = payrail::domain::operator::OperatorChange::SetDisabled(false);
    operators::change(&*app.store, &*app.time, &email, enable, &Actor::Cli).await.expect("enabled");
    assert_eq!(console.get("/console/").await.location.as_deref(), Some("/console/login"));
}

async fn a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let partner = app.add_partner(false, &[]).await.name();
    let ackno = held_transfer(&app, &partner, "CSRF-1").await;
    add_operator(&app, "op@example.in", Role::Operator).await;
    let mut console = Console::new(&app);
    console.login("op@example.in", PASSWORD).await;
    let path = format!("/console/dmt/{ackno}/transition");
    let fields = [("to", "failed"), ("reason", "no answer from the bank")];
    let refused = console.post(&path, &fields).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("Reload the page and try again"));
    let wrong = console.post(&path, &[("to", "failed"), ("reason", "x"), ("csrf", &"0".repeat(64))]).await;
    assert_eq!(wrong.status, 403);
    let logout = console.post("/console/logout", &[]).await;
    assert_eq!(logout.status, 403);
    assert_eq!(app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json()["status"], "on_hold");
    assert_eq!(console.get("/console/").await.status, 200, "the session is still live");
    // A login form posted without the token matching its cookie is refused too.
    let login =
        console.post("/console/login", &[("email", "op@example.in"), ("password", PASSWORD), ("csrf", "x")]).await;
    assert_eq!(login.status, 403);
    let audit = app.admin(&format!("/admin/v1/audit?target=dmt:{ackno}"), None).await.json();
    assert!(audit["entries"].as_array().expect("entries").iter().all(|e| e["operator"] != "op@example.in"), "{audit}");
}

async fn failed_logins_are_limited_per_account_and_per_address(engine: Engine) {
    let app = spawn_app_with(engine, manual(AppOptions::default())).await;
    add_operator(&app, "asha@example.in", Role::Viewer).await;
    add_operator(&app, "ravi@example.in", Role::Viewer).await;
    let mut console = Console::new(&app);
    for _ in 0..5 {
        assert_eq!(console.login("asha@example.in", "wrong password!!").await.status, 400);
    }
    // The sixth is refused without a look at the password, right or wrong.
    let refused = console.login("asha@example.in", PASSWORD).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("Too many failed sign-ins"), "{}", refused.body);
    // The address has used its attempts too: another account from it waits as well.
    assert_eq!(console.login("ravi@example.in", PASSWORD).await.status, 429);
    app.clock().advance(Duration::from_secs(15 * 60));
    assert_eq!(console.login("asha@example.in", PASSWORD).await.status, 303);
}

async fn a_viewer_may_read_a_transaction_but_not_move_it(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let partner = app.add_partner(false, &[]).await.name();
    let ackno = held_transfer(&app, &partner, "VIEW-1").await;
    add_operator(&app, "viewer@example.in", Role::Viewer).await;
    let mut console = Console::new(&app);
    console.login("viewer@example.in", PASSWORD).await;
    let dashboard = console.get("/console/").await.body;
    // Today's and this month's totals: one transfer on hold, ₹1,25,000.00, none successful yet.
    for shown in ["Today", "This month", "On hold (code 4)", "₹1,25,000.00", "DMT 0.0% (0 of 1)"] {
        assert!(dashboard.contains(shown), "{shown}: {dashboard}");
    }
    let page = console.get(&format!("/console/dmt/{ackno}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("may read this transaction but not change it"), "{}", page.body);
    assert!(page.body.contains("₹1,25,000.00"), "money in rupees with Indian grouping");
    assert!(page.body.contains("On hold (code 4)"), "the state in words with its code");
    let csrf = page.csrf();
    let fields = [("csrf", csrf.as_str()), ("to", "success"), ("utr", "UTR0001"), ("reason", "the bank paid")];
    let refused = console.post(&format!("/console/dmt/{ackno}/transition"), &fields).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("this needs the operator role"), "{}", refused.body);
    assert_eq!(app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json()["status"], "on_hold");
}

async fn the_console_can_be_turned_off(engine: Engine) {
    let off = ConsoleSettings { enabled: false, ..ConsoleSettings::default() };
    let app = spawn_app_with(engine, AppOptions { console: Some(off), ..AppOptions::default() }).await;
    let mut console = Console::new(&app);
    assert_eq!(console.get("/console/").await.status, 404);
    assert_eq!(console.get("/console/login").await.status, 404);
}

async fn the_search_page_filters_and_pages_like_the_search_api(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let partner = app.add_partner(false, &[]).await.name();
    for reference in ["PAGE-1", "PAGE-2", "PAGE-3"] {
        held_transfer(&app, &partner, reference).await;
    }
    add_operator(&app, "viewer@example.in", Role::Viewer).await;
    let mut console = Console::new(&app);
    console.login("viewer@example.in", PASSWORD).await;
    let rows = |body: &str| ["PAGE-1", "PAGE-2", "PAGE-3"].into_iter().filter(|r| body.contains(r)).count();

    // Empty fields are filters not used; the rest are the search API's.
    let one = console.get("/console/transactions?reference=PAGE-2&utr=&kind=dmt&status=on_hold").await;
    assert_eq!((one.status, rows(&one.body)), (200, 1), "{}", one.body);
    assert!(one.body.contains("PAGE-2"));

    // Paging: two rows, then the rest through the next-page link (the filters kept).
    let first = console.get("/console/transactions?kind=dmt&limit=2").await;
    assert_eq!(rows(&first.body), 2);
    let at = first.body.find("id=\"next-page\" href=\"").expect("a next-page link") + "id=\"next-page\" href=\"".len();
    let next = first.body[at..].split('"').next().expect("an href").replace("&amp;", "&");
    assert!(next.contains("kind=dmt") && next.contains("limit=2") && next.contains("cursor="), "{next}");
    let second = console.get(&next).await;
    assert_eq!(rows(&second.body), 1, "{}", second.body);
    assert!(!second.body.contains("next-page"));

    // A bad filter says which field and what to do; nothing matching says so too.
    let bad = console.get("/console/transactions?mobile=12").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("mobile: must be a 10-digit mobile number. Fix the field and search again."),
        "{}",
        bad.body
    );
    let none = console.get("/console/transactions?reference=NOPE").await;
    assert!(none.body.contains("Nothing matches these filters"), "{}", none.body);
}

async fn a_partners_page_shows_its_wallet_and_events_and_an_operator_redelivers_one(engine: Engine) {
    // No workers: the event stays as the store made it (nobody is listening at the URL).
    let app = spawn_app_with(engine, AppOptions { no_workers: true, ..AppOptions::default() }).await;
    let partner = app.add_partner(false, &[]).await.name();
    let set = json!({"url": "https://partner.example/cb"});
    let path = format!("/admin/v1/partners/{partner}/callback");
    assert_eq!(app.admin_with(reqwest::Method::PUT, &path, Some(set)).await.status, 200);
    let topup =
        app.admin(&format!("/admin/v1/partners/{partner}/wallet/topup"), Some(json!({"amount": "250000"}))).await;
    assert_eq!(topup.status, 200, "{}", topup.body);
    let ackno = held_transfer(&app, &partner, "EVT-1").await;
    let failed = json!({"to": "failed", "reason": "the bank returned it"});
    assert_eq!(app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(failed)).await.status, 200);
    let events = app.admin(&format!("/admin/v1/events?partner={partner}"), None).await.json();
    let event = events["events"][0]["id"].as_i64().unwrap_or_else(|| panic!("an event: {events}"));
    add_operator(&app, "viewer@example.in", Role::Viewer).await;
    add_operator(&app, "op@example.in", Role::Operator).await;

    let mut viewer = Console::new(&app);
    viewer.login("viewer@example.in", PASSWORD).await;
    let list = viewer.get("/console/partners").await;
    assert!(list.body.contains(&partner) && list.body.contains("₹2,50,000.00"), "{}", list.body);
    assert!(list.body.contains("https://partner.example/cb"), "{}", list.body);
    let page = viewer.get(&format!("/console/partners/{partner}")).await;
    assert!(page.body.contains(&format!("/console/dmt/{ackno}")), "the event links its transaction: {}", page.body);
    assert!(!page.body.contains("Redeliver"), "a viewer is offered no redelivery");
    let today = app.time.now().to_ist_string()[..10].to_owned();
    let statement = viewer.get(&format!("/console/partners/{partner}/statement?from={today}&to={today}")).await;
    let kind = statement.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!((statement.status, kind.as_str()), (200, "text/csv; charset=utf-8"), "{}", statement.body);
    assert!(statement.body.contains("250000"), "the top-up is in the statement: {}", statement.body);
    let bad = viewer.get(&format!("/console/partners/{partner}/statement?from={today}")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("Pick both dates and download again"), "{}", bad.body);
    assert_eq!(viewer.get("/console/operators").await.status, 403, "operators are for admins");
    let csrf = page.csrf();
    let refused =
        viewer.post(&format!("/console/events/{event}/redeliver"), &[("csrf", &csrf), ("partner", &partner)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    let mut operator = Console::new(&app);
    operator.login("op@example.in", PASSWORD).await;
    let page = operator.get(&format!("/console/partners/{partner}")).await;
    assert!(page.body.contains("Redeliver"));
    let csrf = page.csrf();
    let done =
        operator.post(&format!("/console/events/{event}/redeliver"), &[("csrf", &csrf), ("partner", &partner)]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains(&format!("Event {event} will be delivered again")), "{}", done.body);
    let audit = app.admin(&format!("/admin/v1/audit?target=event:{event}"), None).await.json();
    let entry = &audit["entries"][0];
    assert_eq!(
        (entry["operator"].as_str(), entry["action"].as_str()),
        (Some("op@example.in"), Some("event.redeliver")),
        "{audit}"
    );
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(1), "the viewer's refusal left nothing: {audit}");
    add_operator(&app, "admin@example.in", Role::Admin).await;
    let mut admin = Console::new(&app);
    admin.login("admin@example.in", PASSWORD).await;
    let operators = admin.get("/console/operators").await;
    assert_eq!(operators.status, 200);
    assert!(operators.body.contains("viewer@example.in") && operators.body.contains("op@example.in"));
    let dashboard = operator.get("/console/").await;
    assert!(dashboard.body.contains("lowest-wallets") && dashboard.body.contains("₹2,50,000.00"), "{}", dashboard.body);
    // Its events wait for delivery (no workers run here): the outbox counts them.
    let waiting = events["events"].as_array().map(Vec::len).unwrap_or(0);
    assert!(events["events"].as_array().into_iter().flatten().all(|e| e["state"] == "pending"), "{events}");
    let outbox = format!("<span class=\"big\" id=\"outbox\">{waiting}</span>");
    assert!(dashboard.body.contains(&outbox), "{outbox}: {}", dashboard.body);
    assert!(dashboard.body.contains("(circuit closed)"), "{}", dashboard.body);
}

async fn cookies_are_secure_behind_tls(engine: Engine) {
    // Told so by the flag: every cookie is Secure.
    let secure = ConsoleSettings { secure_cookies: true, ..ConsoleSettings::default() };
    let app = spawn_app_with(engine, AppOptions { console: Some(secure), ..AppOptions::default() }).await;
    add_operator(&app, "asha@example.in", Role::Viewer).await;
    let mut console = Console::new(&app);
    console.login("asha@example.in", PASSWORD).await;
    let session = console.set_cookie.iter().find(|c| c.starts_with("payrail_console=")).expect("a session cookie");
    assert!(session.ends_with("; Secure"), "{session}");

    // Behind a trusted proxy that says the request came over TLS; not from anyone else.
    let proxy: ipnet::IpNet = "127.0.0.1/32".parse().expect("a network");
    let app = spawn_app_with(engine, AppOptions { trusted_proxies: vec![proxy], ..AppOptions::default() }).await;
    let login_cookie = |proto: Option<&'static str>| {
        let url = app.url("/console/login");
        let http = app.http.clone();
        async move {
            let mut request = http.get(url);
            if let Some(proto) = proto {
                request = request.header("x-forwarded-proto", proto);
            }
            let answer = request.send().await.expect("an answer");
            answer.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
        }
    };
    assert!(login_cookie(Some("https")).await.ends_with("; Secure"));
    assert!(!login_cookie(Some("http")).await.contains("Secure"));
    assert!(!login_cookie(None).await.contains("Secure"));
    let untrusted = spawn_app_with(engine, AppOptions::default()).await;
    let answer = untrusted.http.get(untrusted.url("/console/login")).header("x-forwarded-proto", "https").send().await;
    let cookie =
        answer.expect("an answer").headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(!cookie.contains("Secure"), "an untrusted client's header is ignored: {cookie}");
}
