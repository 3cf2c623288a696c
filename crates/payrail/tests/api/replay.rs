//! Replays: an upstream callback cannot be replayed or altered, and a
//! partner token cannot be used twice, not even across a server restart
//! (graceful or `kill -9`), nor against a store restored from a backup
//! taken after it was used.

use std::process::{Child, Command, Stdio};

use payrail_client::{sign_token, TokenClaims};
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::free_port;
use crate::helpers::{
    eventually, fresh_postgres_database, postgres_url, spawn_app_beside, text, AppOptions, Engine, TempDatabase,
    TestApp, TestUpstream,
};
use crate::journey::{assert_refused, balance};
use crate::mock_upstream::{MockUpstream, Reply, Script};
use crate::upstream_paysprint::{app_with_mock, connector};
use crate::upstream_sandbox::{bill, funded_partner, pay};

both_engines!(
    a_captured_upstream_callback_cannot_be_replayed_or_altered,
    an_upstream_callback_replayed_to_a_restarted_server_is_refused,
    a_partner_token_used_before_a_restart_is_refused_after_it,
);

/// A pending bill payment made through the connector; its upstream reference.
async fn pending_bill(app: &TestApp, partner: &crate::helpers::TestPartner, reference: &str) -> String {
    let paid = pay(app, partner, "150012345678", reference).await;
    assert_eq!(bill(app, partner, reference).await["data"]["status"], "2", "the upstream left it pending");
    let txnid = paid["ackno"].as_str().map(str::to_owned).unwrap_or_else(|| paid["ackno"].to_string());
    crate::upstream_paysprint::upstream_ref(app, "bbps", &txnid).await
}

async fn a_captured_upstream_callback_cannot_be_replayed_or_altered(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1h").await;
    let (partner, _receiver) = funded_partner(&app).await;
    let base = app.url("");
    let upstream_ref = pending_bill(&app, &partner, "RP-1").await;
    let paid = balance(&app, &partner).await;

    // The upstream says "still pending"; someone captures the request.
    let token = mock.token();
    let captured = mock.signed(&MockUpstream::bill_callback(&upstream_ref, 2, None));
    assert_eq!(mock.post_exactly(&base, Some(&token), &captured).await.0, 200);

    // Its param turned into "failed" (which would refund the bill), under a
    // fresh valid token: refused, because param no longer matches its signed copy.
    let mut altered = captured.clone();
    altered["param"]["status"] = json!("0");
    let answer = mock.post_exactly(&base, Some(&mock.token()), &altered).await;
    assert_eq!(answer.0, 401, "param altered: {}", answer.1);
    // Replayed byte for byte: refused.
    let replayed = mock.post_exactly(&base, Some(&token), &captured).await;
    assert_eq!(replayed.0, 401, "a repeated token reqid: {}", replayed.1);
    // And without the signed copy at all.
    let mut unsigned = altered.clone();
    unsigned.as_object_mut().map(|o| o.remove("param_inc"));
    let answer = mock.post_exactly(&base, Some(&mock.token()), &unsigned).await;
    assert_eq!(answer.0, 401, "no param_inc: {}", answer.1);

    // Nothing changed: still pending, nothing refunded.
    assert_eq!(bill(&app, &partner, "RP-1").await["data"]["status"], "2");
    assert_eq!(balance(&app, &partner).await, paid);

    // A genuine failure, signed copy under Paysprint's other spelling
    // `param_enc`, which the status query it triggers confirms: applied, refunded once.
    mock.script(&upstream_ref, Script::new().status(Reply::bill(0, None)));
    let mut genuine = mock.signed(&MockUpstream::bill_callback(&upstream_ref, 0, None));
    let signed = genuine.as_object_mut().and_then(|o| o.remove("param_inc")).unwrap_or(Value::Null);
    genuine["param_enc"] = signed;
    assert_eq!(mock.post_exactly(&base, Some(&mock.token()), &genuine).await.0, 200);
    assert_eq!(bill(&app, &partner, "RP-1").await["data"]["refunded"], "1");
}

async fn an_upstream_callback_replayed_to_a_restarted_server_is_refused(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1h").await;
    let (partner, _receiver) = funded_partner(&app).await;
    let upstream_ref = pending_bill(&app, &partner, "RP-2").await;
    let paid = balance(&app, &partner).await;
    let token = mock.token();
    let captured = mock.signed(&MockUpstream::bill_callback(&upstream_ref, 2, None));
    assert_eq!(mock.post_exactly(&app.url(""), Some(&token), &captured).await.0, 200);

    // A server started afresh on the same store knows the reqid from the store alone.
    let options = AppOptions {
        upstream: TestUpstream::Provider(connector(&mock)),
        poll_schedule: Some("1h"),
        ..AppOptions::default()
    };
    let restarted = spawn_app_beside(&app, options).await;
    let replayed = mock.post_exactly(&restarted.url(""), Some(&token), &captured).await;
    assert_eq!(replayed.0, 401, "replayed after a restart: {}", replayed.1);
    let mut failed = mock.signed(&MockUpstream::bill_callback(&upstream_ref, 0, None));
    failed["param_inc"] = captured["param_inc"].clone();
    assert_eq!(mock.post_exactly(&restarted.url(""), Some(&token), &failed).await.0, 401);
    assert_eq!(bill(&restarted, &partner, "RP-2").await["data"]["status"], "2");
    assert_eq!(balance(&restarted, &partner).await, paid);
}

/// A `payrail serve` process on a data directory (and a database), killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the servers of one test keep their store.
struct Place {
    dir: tempfile::TempDir,
    database: Option<TempDatabase>,
    key: String,
}

impl Place {
    async fn new(engine: Engine) -> Place {
        let database = match engine {
            Engine::Postgres => {
                Some(fresh_postgres_database(&postgres_url().expect("PAYRAIL_TEST_DATABASE_URL is set")).await)
            }
            Engine::Sqlite => None,
        };
        Place { dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")), database, key: "42".repeat(32) }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
        command.arg("--data-dir").arg(self.dir.path()).args(args);
        command.env("PAYRAIL_MASTER_KEY", &self.key).env_remove("PAYRAIL_DATABASE_URL").env("PAYRAIL_LOG", "warn");
        if let Some(database) = &self.database {
            command.env("PAYRAIL_DATABASE_URL", &database.url);
        }
        command
    }

    async fn serve(&self) -> Server {
        let port = free_port();
        let child = self
            .command(&["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn payrail: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        eventually(30, "the server listens", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        Server { child, base }
    }

    /// Whether the store holds the partner's `reqid` (on SQLite, its
    /// fingerprint in a batch, in the file of `reqid` batches beside the
    /// database) in its table of seen reqids.
    async fn stored(&self, partner: i64, reqid: &str) -> bool {
        match &self.database {
            None => {
                let path = payrail::store::sqlite::reqid_file_path(&self.dir.path().join("payrail.db"));
                let conn = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{e}"));
                let fingerprint = payrail::store::sqlite::reqid_fingerprint(partner, reqid).to_le_bytes();
                let mut batches =
                    conn.prepare("SELECT fingerprints FROM seen_reqid_batches").unwrap_or_else(|e| panic!("{e}"));
                let blobs = batches.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap_or_else(|e| panic!("{e}"));
                let found = blobs.flatten().any(|blob| blob.chunks_exact(16).any(|entry| entry[..8] == fingerprint));
                found
            }
            Some(database) => {
                let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                tokio::spawn(connection);
                let sql = "SELECT COUNT(*) FROM seen_reqids WHERE reqid = $1";
                let row = client.query_one(sql, &[&reqid]).await.unwrap_or_else(|e| panic!("{e}"));
                row.get::<_, i64>(0) == 1
            }
        }
    }
}

/// A DMT status lookup with a token of this `reqid`.
async fn lookup(server: &Server, partner: &str, secret: &str, reqid: &str) -> crate::helpers::Answer {
    let timestamp = now_unix();
    let token =
        sign_token(secret.as_bytes(), &TokenClaims { timestamp, partner_id: partner.into(), reqid: reqid.into() });
    let body = json!({"ReferanceID": "R-1", "RegistrationID": partner}).to_string();
    let response = reqwest::Client::new()
        .post(format!("{}/api/AOP/DMTV1/TransactionStatus", server.base))
        .header("Token", token)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    let body = response.text().await.expect("a readable body");
    crate::helpers::Answer { status, content_type: String::new(), retry_after: None, body }
}

fn now_unix() -> i64 {
    payrail::domain::Timestamp::now().unix()
}

async fn a_partner_token_used_before_a_restart_is_refused_after_it(engine: Engine) {
    let place = Place::new(engine).await;
    let (id, number, secret) = add_partner(&place);
    let (id, secret) = (id.as_str(), secret.as_str());

    // A graceful stop (SIGTERM) writes what was seen.
    let mut server = place.serve().await;
    assert_eq!(lookup(&server, id, secret, "before-term").await.status, 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success()));
    let exited = server.child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(exited.success(), "a graceful stop: {exited}");
    drop(server);
    let server = place.serve().await;
    assert_refused(&lookup(&server, id, secret, "before-term").await, 401, 10, "Invalid JWT");
    assert_eq!(lookup(&server, id, secret, "after-term").await.status, 200, "a fresh reqid works");

    // SIGKILL once the reqid is in the store: still refused after the restart.
    assert_eq!(lookup(&server, id, secret, "before-kill").await.status, 200);
    eventually(30, "the reqid written to the store", || async {
        place.stored(number, "before-kill").await.then_some(())
    })
    .await;
    drop(server);
    let server = place.serve().await;
    assert_refused(&lookup(&server, id, secret, "before-kill").await, 401, 10, "Invalid JWT");
    assert_eq!(lookup(&server, id, secret, "after-kill").await.status, 200, "a fresh reqid works");
}

/// The partner made by `payrail partner add` in `place`: its id, number and secret.
fn add_partner(place: &Place) -> (String, i64, String) {
    let added =
        place.command(&["partner", "add", "--name", "Replay Ltd", "--json"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let created: Value = serde_json::from_slice(&added.stdout).unwrap_or_else(|e| panic!("{e}"));
    let id = created["registration_id"].as_str().expect("registration_id is a string").to_owned();
    let number: i64 = id.trim_start_matches("AOP-").parse().unwrap_or_else(|e| panic!("{id}: {e}"));
    (id, number, created["secret"].as_str().expect("secret is a string").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_token_used_before_a_backup_is_refused_by_the_restored_store() {
    let place = Place::new(Engine::Sqlite).await;
    let (id, number, secret) = add_partner(&place);
    let server = place.serve().await;
    assert_eq!(lookup(&server, &id, &secret, "before-backup").await.status, 200);
    eventually(30, "the reqid written to the store", || async {
        place.stored(number, "before-backup").await.then_some(())
    })
    .await;

    // Backed up while the server runs, restored into a new data directory
    // (same master key), served from there.
    let snapshot = place.dir.path().join("payrail.snapshot");
    let backup = place.command(&["backup", "--out"]).arg(&snapshot).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    drop(server);
    let restored =
        Place { dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")), database: None, key: place.key.clone() };
    let restore = restored.command(&["restore"]).arg(&snapshot).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(restore.status.success(), "{}", text(&restore.stderr));
    assert!(restored.stored(number, "before-backup").await, "the restored store holds the reqid");
    let server = restored.serve().await;
    assert_refused(&lookup(&server, &id, &secret, "before-backup").await, 401, 10, "Invalid JWT");
    assert_eq!(lookup(&server, &id, &secret, "after-restore").await.status, 200, "a fresh reqid works");
}
