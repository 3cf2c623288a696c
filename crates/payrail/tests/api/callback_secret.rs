//! Partner callbacks are signed with a callback secret of the partner's own:
//! shown once when its URL is first set, rotatable with an overlap (both
//! signatures sent meanwhile), never the API token secret, and checked by
//! `payrail callback listen --secret`.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use payrail_client::{sign_token, TokenClaims};
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::free_port;
use crate::helpers::{
    eventually, fresh_postgres_database, payrail, postgres_url, spawn_app, text, CallbackReceiver, Delivery, Engine,
    TestApp,
};

both_engines!(
    a_partner_has_a_callback_secret_of_its_own_shown_once_and_rotatable_with_an_overlap,
    the_demo_prints_the_callback_secret_that_signs_aop_554s_callbacks,
);

async fn put_url(app: &TestApp, partner: &str, url: &str) -> Value {
    let path = format!("/admin/v1/partners/{partner}/callback");
    let set = app.admin_with(reqwest::Method::PUT, &path, Some(json!({"url": url}))).await;
    assert_eq!(set.status, 200, "{}", set.body);
    set.json()
}

/// Makes the operator transfer `ackno` change state and waits for its
/// callback to be the `n`-th delivery.
async fn next_delivery(app: &TestApp, receiver: &CallbackReceiver, ackno: &str, to: Value, n: usize) -> Delivery {
    let moved = app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(to)).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    eventually(15, &format!("delivery {n}"), || async { receiver.deliveries().get(n - 1).cloned() }).await
}

async fn a_partner_has_a_callback_secret_of_its_own_shown_once_and_rotatable_with_an_overlap(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let receiver = CallbackReceiver::start().await;

    // Shown once: when the URL is first set.
    let set = put_url(&app, &partner.name(), &receiver.url).await;
    let first = set["callback_secret"].as_str().unwrap_or_else(|| panic!("no callback secret: {set}")).to_owned();
    assert_eq!(first.len(), 43, "{set}");
    assert_ne!(first, partner.secret, "not the API token secret");
    assert_eq!(put_url(&app, &partner.name(), &receiver.url).await.get("callback_secret"), None);
    let shown = app.admin(&format!("/admin/v1/partners/{}/callback", partner.name()), None).await;
    assert!(!shown.body.contains(&first), "{}", shown.body);
    let cli = payrail(&app, &["callback", "set", &partner.name(), &receiver.url, "--json"]);
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&cli.stdout)));
    assert_eq!(cli["callback_secret"], Value::Null, "{cli}");
    // The callback secret signs nothing on the partner API.
    let forged = sign_token(first.as_bytes(), &TokenClaims::now(&partner.name()));
    assert_eq!(app.dmt_status(&partner.name(), "X", Some(&forged)).await.status, 401);

    let create = json!({"registration_id": partner.name(), "reference_id": "SIG-1", "amount": "5000",
                        "account": "50100200300"});
    let ackno = app.admin("/admin/v1/dmt", Some(create)).await.json()["ackno"].to_string();
    let one = next_delivery(&app, &receiver, &ackno, json!({"to": "sent_to_bank"}), 1).await;
    assert!(one.signed_by(&first) && !one.signed_by(&partner.secret), "{one:?}");
    assert!(!one.signature.contains(','), "one signature: {one:?}");

    // Rotated with an overlap: both signatures, the new one first.
    let path = format!("/admin/v1/partners/{}/callback/secret", partner.name());
    let rotated = app.admin(&path, Some(json!({"overlap_hours": 1}))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.json()["callback_secret"].as_str().expect("callback_secret is a string").to_owned();
    assert!(second.len() == 43 && second != first, "{}", rotated.body);
    assert!(rotated.json()["previous_valid_until"].is_string(), "{}", rotated.body);

    // `payrail callback listen` holding the old secret still verifies.
    let port = free_port();
    let mut listener = Killed(
        Command::new(env!("CARGO_BIN_EXE_payrail"))
            .args(["callback", "listen", "--listen", &format!("127.0.0.1:{port}"), "--secret", &first])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stdout = listener.0.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    eventually(15, "the listener listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
    })
    .await;
    put_url(&app, &partner.name(), &format!("http://127.0.0.1:{port}/")).await;
    let moved = app
        .admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(json!({"to": "success", "utr": "412345678901"})))
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let heard = eventually(15, "the listener's verdict", || async {
        lines.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|l| l.starts_with("event ")).cloned()
    })
    .await;
    drop(listener);
    assert!(heard.contains("(signature ok)"), "{heard}");

    put_url(&app, &partner.name(), &receiver.url).await;
    let two = next_delivery(&app, &receiver, &ackno, json!({"to": "failed"}), 2).await;
    let signatures: Vec<&str> = two.signature.split(',').collect();
    assert_eq!(signatures.len(), 2, "{two:?}");
    assert!(two.signed_by(&second) && two.signed_by(&first), "{two:?}");
    let only_new = Delivery { signature: signatures[0].to_owned(), ..two.clone() };
    assert!(only_new.signed_by(&second), "the new secret's signature comes first");

    // Rotated with no overlap (CLI): the old one stops at once.
    let cli = payrail(&app, &["callback", "rotate-secret", &partner.name(), "--overlap-hours", "0"]);
    assert!(cli.status.success(), "{}", text(&cli.stderr));
    let out = text(&cli.stdout);
    let third = out.lines().find_map(|l| l.split_once("callback secret: ")).map(|(_, s)| s.trim().to_owned());
    let third = third.unwrap_or_else(|| panic!("no secret in {out}"));
    let three = next_delivery(&app, &receiver, &ackno, json!({"to": "refunded"}), 3).await;
    assert!(three.signed_by(&third) && !three.signed_by(&second) && !three.signed_by(&first), "{three:?}");
}

/// A child process killed when dropped, so that a failing test leaves none behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The text between `after` and the next `'` in the first line holding `after`.
fn quoted_after(lines: &[String], after: &str) -> Option<String> {
    let line = lines.iter().find(|l| l.contains(after))?;
    let rest = &line[line.find(after)? + after.len()..];
    rest.split('\'').next().map(str::to_owned)
}

async fn the_demo_prints_the_callback_secret_that_signs_aop_554s_callbacks(engine: Engine) {
    let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let database = match engine {
        Engine::Postgres => {
            Some(fresh_postgres_database(&postgres_url().expect("PAYRAIL_TEST_DATABASE_URL is set")).await)
        }
        Engine::Sqlite => None,
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir.path());
    command.env_remove("PAYRAIL_MASTER_KEY").env_remove("PAYRAIL_DATABASE_URL").env("PAYRAIL_LOG", "warn");
    if let Some(database) = &database {
        command.arg("--database-url").arg(&database.url);
    }
    let mut server =
        Killed(command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{e}")));
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stdout = server.0.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let listen = "callback listen --listen 127.0.0.1:9000 --secret '";
    let guide = eventually(60, "the demo's guide", || async {
        let lines = lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lines.iter().any(|l| l.contains(listen)).then_some(lines)
    })
    .await;
    let secret = quoted_after(&guide, listen).expect("the guide shows the secret");
    let admin = quoted_after(&guide, "Authorization: Bearer ").expect("the guide shows the token");
    let base = guide
        .iter()
        .find_map(|l| l.strip_prefix("payrail demo is ready at "))
        .expect("the guide shows the address")
        .to_owned();
    assert_eq!(secret.len(), 43, "{guide:?}");

    // Pointing AOP-554 at a receiver shows no new secret: the printed one is in force.
    let receiver = CallbackReceiver::start().await;
    let http = reqwest::Client::new();
    let set = http
        .put(format!("{base}/admin/v1/partners/AOP-554/callback"))
        .bearer_auth(&admin)
        .body(json!({"url": receiver.url}).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let set: Value = set.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((set["url"].as_str(), set.get("callback_secret")), (Some(receiver.url.as_str()), None), "{set}");
    let bill = json!({"RegistrationID": "AOP-554", "operator": 1, "canumber": "150012345678", "amount": "500",
                      "referenceid": "WATCH-1"});
    let paid = http.post(format!("{base}/api/AOP/BillPaymentPaybill")).body(bill.to_string()).send().await;
    assert_eq!(paid.map(|r| r.status().as_u16()).expect("the payment was answered"), 200);
    let delivery = eventually(30, "AOP-554's callback", || async { receiver.deliveries().first().cloned() }).await;
    assert!(delivery.signed_by(&secret), "signed with the printed callback secret: {delivery:?}");
}
