//! `/healthz` and `/readyz`: the process answers; the store answers in time
//! with the schema this binary expects, and the workers run. A PostgreSQL
//! outage (made by cutting a TCP forwarder between payrail and the shared
//! server, which itself stays up) gives 503 with the reason, and the same
//! server is ready again once the database can be reached.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::helpers::{
    eventually, fresh_postgres_database, postgres_url, skip_postgres, spawn_app_on, spawn_app_with, Answer, AppOptions,
    CallbackReceiver, Engine, TestApp, TestPartner, TestUpstream,
};
use crate::journey::operator_moves;

/// GET `path` on the app: status and JSON body.
pub async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let cache = response.headers().get("cache-control").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(cache.as_deref(), Some("no-store"), "{path} is never cached");
    let body = response.text().await.unwrap_or_else(|e| panic!("{e}"));
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {body}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_on_sqlite_and_a_stopped_worker_is_not_ready() {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() };
    let mut app = spawn_app_with(Engine::Sqlite, options).await;
    assert_eq!(get_json(&app, "/healthz").await, (200, json!({"status": "ok"})));

    let (status, ready) = get_json(&app, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let version = ready["store"]["expected_schema_version"].as_i64().expect("a version");
    assert!(version >= 16, "{ready}");
    assert_eq!(
        ready,
        json!({"status": "ready", "reasons": [],
               "store": {"engine": "sqlite", "answered": true, "schema_version": version,
                         "expected_schema_version": version},
               "workers": [{"name": "poller", "running": true}, {"name": "deliverer", "running": true}]})
    );

    // The worker tasks end (as a panic or an abort would end them): not ready, saying which.
    app.stop_workers().await;
    let (status, stopped) = get_json(&app, "/readyz").await;
    assert_eq!(status, 503, "{stopped}");
    assert_eq!(stopped["status"], "not ready");
    assert_eq!(
        stopped["reasons"],
        json!(["workers: the poller is not running", "workers: the deliverer is not running"])
    );
    assert_eq!(stopped["store"]["answered"], true, "the store itself is fine: {stopped}");
    assert_eq!(get_json(&app, "/healthz").await.0, 200, "the process still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stuck_on_a_batch_past_its_lease_is_not_ready_until_the_batch_ends() {
    // A callback the partner never answers (held by the test), a 1 s lease,
    // and a delivery time limit far beyond it: the deliverer's batch hangs.
    let options = AppOptions {
        worker_lease: Some(std::time::Duration::from_secs(1)),
        callback_timeout: Some(std::time::Duration::from_secs(120)),
        ..AppOptions::default()
    };
    let app = spawn_app_with(Engine::Sqlite, options).await;
    assert_eq!(get_json(&app, "/readyz").await.0, 200);
    let partner = app.add_partner(true, &[]).await.name();
    let receiver = CallbackReceiver::start().await;
    let set = app
        .admin_with(
            reqwest::Method::PUT,
            &format!("/admin/v1/partners/{partner}/callback"),
            Some(json!({"url": receiver.url})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let held = receiver.hold().await;
    let create = json!({"registration_id": partner, "reference_id": "STUCK-1", "amount": "5000",
                        "account": "50100200300"});
    let created = app.admin("/admin/v1/dmt", Some(create)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    operator_moves(&app, "dmt", &created.json()["ackno"].to_string(), "sent_to_bank").await;
    eventually(15, "the callback in flight", || async { receiver.arrivals().first().cloned() }).await;

    let stuck = eventually(15, "/readyz to see the stuck deliverer", || async {
        let (status, body) = get_json(&app, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(stuck["status"], "not ready", "{stuck}");
    let reasons = stuck["reasons"].as_array().unwrap_or_else(|| panic!("no reasons: {stuck}"));
    assert_eq!(reasons.len(), 1, "{stuck}");
    let reason = reasons[0].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("workers: the deliverer has worked on one batch for ")
            && reason.ends_with(" s, longer than its 1 s lease"),
        "{stuck}"
    );
    let deliverer = stuck["workers"].as_array().and_then(|w| w.iter().find(|w| w["name"] == "deliverer").cloned());
    assert_eq!(deliverer, Some(json!({"name": "deliverer", "running": true})), "its task still runs: {stuck}");
    assert_eq!(stuck["store"]["answered"], true, "{stuck}");

    // The partner answers: the batch ends, and the server is ready again.
    drop(held);
    let ready = eventually(15, "/readyz ready again", || async {
        let (status, body) = get_json(&app, "/readyz").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(ready["reasons"], json!([]), "{ready}");
    assert!(!receiver.deliveries().is_empty(), "the held callback was answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_at_another_schema_version_is_not_ready() {
    let app = spawn_app_with(Engine::Sqlite, AppOptions::default()).await;
    let (status, ready) = get_json(&app, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let expected = ready["store"]["expected_schema_version"].as_i64().expect("a version");
    // As if a newer payrail had migrated the store further.
    let conn = rusqlite::Connection::open(app.data_dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e}"));
    conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [expected + 1]).unwrap_or_else(|e| panic!("{e}"));
    let (status, newer) = get_json(&app, "/readyz").await;
    assert_eq!(status, 503, "{newer}");
    let reason = format!("migrations: the store is at schema version {}, this binary expects {expected}", expected + 1);
    assert_eq!(newer["reasons"], json!([reason]));
    assert_eq!((&newer["store"]["answered"], &newer["store"]["schema_version"]), (&json!(true), &json!(expected + 1)));
}

/// A TCP forwarder from a local port to `target` that a test can cut
/// (every open connection dropped, new ones closed at once) and resume.
struct Forwarder {
    addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Forwarder {
    async fn start(target: String) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let refusing = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (cut, connections) = (refusing.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections.lock().unwrap_or_else(|e| e.into_inner()).push(task.abort_handle());
            }
        });
        Forwarder { addr, refusing, open }
    }

    /// Drops every forwarded connection and refuses new ones.
    fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        for task in self.open.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
    }

    /// Forwards new connections again.
    fn resume(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

/// `url` with its `host:port` replaced by `addr`, and the host and port it had.
fn through(url: &str, addr: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or_else(|| panic!("not a URL: {url}"));
    let (credentials, rest) = rest.rsplit_once('@').map_or(("", rest), |(c, r)| (c, r));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:5432") };
    let at = if credentials.is_empty() { String::new() } else { format!("{credentials}@") };
    (format!("{scheme}://{at}{addr}{tail}"), host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_while_postgresql_is_unreachable_and_200_once_it_is_back() {
    let Some(base) = postgres_url() else {
        skip_postgres("readyz_answers_503_while_postgresql_is_unreachable_and_200_once_it_is_back");
        return;
    };
    let database = fresh_postgres_database(&base).await;
    let (_, server) = through(&database.url, "127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")));
    let forwarder = Forwarder::start(server).await;
    let (proxied, _) = through(&database.url, forwarder.addr);
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() };
    let app = spawn_app_on(&proxied, options).await;
    let partner = app.add_partner(true, &[]).await;
    assert_eq!(lookup(&app, &partner).await.status, 200, "the store answers through the forwarder");
    let (status, ready) = get_json(&app, "/readyz").await;
    assert_eq!((status, &ready["status"], &ready["store"]["engine"]), (200, &json!("ready"), &json!("postgres")));

    // The database is unreachable: every pooled connection is broken, new ones are refused.
    forwarder.cut();
    let started = std::time::Instant::now();
    let (status, down) = get_json(&app, "/readyz").await;
    assert_eq!(status, 503, "{down}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "answered within the store's time limit");
    assert_eq!(down["status"], "not ready");
    let reasons = down["reasons"].as_array().cloned().unwrap_or_default();
    assert!(
        reasons.iter().any(|r| r.as_str().is_some_and(|r| r.starts_with("store: "))),
        "the store is named as the reason: {down}"
    );
    assert_eq!((&down["store"]["answered"], &down["store"]["schema_version"]), (&json!(false), &Value::Null));
    let refused = lookup(&app, &partner).await;
    assert_eq!((refused.status, refused.json()["response_code"].clone()), (503, json!(9)), "{}", refused.body);

    // Back: the same server is ready again, its pool having replaced the broken connections.
    forwarder.resume();
    let back = eventually(10, "readyz 200 after the database is back", || async {
        let (status, body) = get_json(&app, "/readyz").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(back["reasons"], json!([]));
    assert_eq!(lookup(&app, &partner).await.status, 200, "partner requests are served again");
    let counted = crate::metrics::scrape(&app).await;
    let unavailable = counted.get("payrail_store_errors_total", &[("kind", "unavailable")]);
    assert!(
        unavailable >= 1.0,
        "the refused lookup's store failure is counted: {:?}",
        counted.all("payrail_store_errors_total")
    );
    drop(app);
    drop(database);
}

/// A status lookup of a reference the partner does not have.
async fn lookup(app: &TestApp, partner: &TestPartner) -> Answer {
    let token = partner.token();
    app.dmt_status(&partner.name(), "NO-SUCH-REF", Some(&token)).await
}

#[test]
fn through_rewrites_only_the_host_and_port() {
    let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        through("postgres://u:p@127.0.0.1:5432/db_1?sslmode=disable", addr),
        ("postgres://u:p@127.0.0.1:4000/db_1?sslmode=disable".to_owned(), "127.0.0.1:5432".to_owned())
    );
    assert_eq!(through("postgres://localhost/db", addr).1, "localhost:5432");
}
