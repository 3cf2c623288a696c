//! OTP texts are limited per mobile, all partners together (issue 9 item 9):
//! the count lives in the store, so it holds across partners, instances and
//! restarts, and concurrent requests cannot all pass the check.

use payrail::domain::otp::TextLimits;
use serde_json::json;

use crate::both_engines;
use crate::helpers::{
    eventually, free_port, fresh_postgres_database, postgres_url, skip_postgres, spawn_app_on, spawn_app_with, Answer,
    AppOptions, Engine, Running, SmsInbox, TestApp, TestPartner,
};
use crate::journey::{add_beneficiary, assert_refused, register_remitter, transfer_fields, transfer_otp};

both_engines!(
    the_sixth_otp_text_in_ten_minutes_is_refused_with_code_15_and_nothing_is_sent,
    two_partners_share_a_mobiles_count,
    the_daily_limit_counts_the_last_twenty_four_hours,
    fifty_concurrent_otp_requests_for_one_mobile_send_at_most_five,
);

const MOBILE: &str = "9811122233";

/// An app whose OTP texts are limited as given.
async fn limited_app(engine: Engine, limits: TextLimits) -> TestApp {
    spawn_app_with(engine, AppOptions { text_limits: Some(limits), ..AppOptions::default() }).await
}

async fn query(app: &TestApp, partner: &TestPartner, mobile: &str) -> Answer {
    app.call("/api/AOP/DMTV1/QueryRemitter", partner, json!({"MobileNo": mobile})).await
}

fn texts_to(inbox: &SmsInbox, mobile: &str) -> usize {
    inbox.messages().iter().filter(|(to, _)| to == mobile).count()
}

/// The seconds the refusal says to wait.
fn wait_secs(answer: &Answer) -> i64 {
    let message = answer.json()["message"].as_str().expect("message is a string").to_owned();
    let (_, after) = message.split_once("(in ").unwrap_or_else(|| panic!("no wait in {message:?}"));
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|e| panic!("{e}: {message:?}"))
}

async fn the_sixth_otp_text_in_ten_minutes_is_refused_with_code_15_and_nothing_is_sent(engine: Engine) {
    let app = limited_app(engine, TextLimits::default()).await;
    let partner = app.add_partner(true, &[]).await;
    // Every OTP flow counts: one registration text, then four transfer texts.
    register_remitter(&app, &partner, MOBILE).await;
    let bene = add_beneficiary(&app, &partner, MOBILE).await;
    for _ in 2..=5 {
        transfer_otp(&app, &partner, MOBILE, &bene, "100").await;
    }
    let send_otp =
        |amount: &str| app.call("/api/AOP/DMTV1/TransactionSendOtp", &partner, transfer_fields(MOBILE, &bene, amount));
    let sixth = send_otp("100").await;
    assert_refused(&sixth, 422, 15, "try again after");
    let wait = wait_secs(&sixth);
    assert!((1..=600).contains(&wait), "the first text leaves the window within 10 minutes: {wait}");
    assert!(sixth.json().get("stateresp").is_none(), "no OTP was issued: {}", sixth.body);
    assert_eq!(texts_to(&app.sms, MOBILE), 5, "the refused request sent nothing");
    assert_refused(&send_otp("200").await, 422, 15, "too many otps");
    assert_eq!(texts_to(&app.sms, MOBILE), 5);
    // Other mobiles are not affected.
    assert_eq!(query(&app, &partner, "9811122244").await.status, 202);
    assert_eq!(texts_to(&app.sms, "9811122244"), 1);
}

async fn two_partners_share_a_mobiles_count(engine: Engine) {
    let app = limited_app(engine, TextLimits::default()).await;
    let (first, second) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    for n in 1..=5 {
        let partner = if n % 2 == 0 { &second } else { &first };
        assert_eq!(query(&app, partner, MOBILE).await.status, 202, "text {n}");
    }
    assert_refused(&query(&app, &second, MOBILE).await, 422, 15, "too many otps");
    assert_refused(&query(&app, &first, MOBILE).await, 422, 15, "too many otps");
    assert_eq!(texts_to(&app.sms, MOBILE), 5);
}

async fn the_daily_limit_counts_the_last_twenty_four_hours(engine: Engine) {
    let app = limited_app(engine, TextLimits { per_ten_minutes: 10, per_day: 3 }).await;
    let partner = app.add_partner(true, &[]).await;
    for n in 1..=3 {
        assert_eq!(query(&app, &partner, MOBILE).await.status, 202, "text {n}");
    }
    let fourth = query(&app, &partner, MOBILE).await;
    assert_refused(&fourth, 422, 15, "try again after");
    let wait = wait_secs(&fourth);
    assert!((86_400 - 120..=86_400).contains(&wait), "a day after the first text: {wait}");
    assert_eq!(texts_to(&app.sms, MOBILE), 3);
}

async fn fifty_concurrent_otp_requests_for_one_mobile_send_at_most_five(engine: Engine) {
    let app = std::sync::Arc::new(limited_app(engine, TextLimits::default()).await);
    let partners = std::sync::Arc::new([app.add_partner(true, &[]).await, app.add_partner(true, &[]).await]);
    let mut racing = tokio::task::JoinSet::new();
    for n in 0..50 {
        let (app, partners) = (app.clone(), partners.clone());
        racing.spawn(async move { query(&app, &partners[n % 2], MOBILE).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = racing.join_next().await {
        answers.push(answer.unwrap_or_else(|e| panic!("{e}")));
    }
    let sent = answers.iter().filter(|a| a.status == 202).count();
    let refused = answers.iter().filter(|a| a.status == 422 && a.json()["response_code"] == 15).count();
    assert_eq!((sent, refused), (5, 45), "{:?}", answers.iter().map(|a| &a.body).collect::<Vec<_>>());
    assert_eq!(texts_to(&app.sms, MOBILE), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_flags_set_the_limit_and_another_instance_shares_the_count() {
    let Some(base_url) = postgres_url() else {
        skip_postgres("the_serve_flags_set_the_limit_and_another_instance_shares_the_count");
        return;
    };
    let database = fresh_postgres_database(&base_url).await;
    let limits = TextLimits { per_ten_minutes: 2, per_day: 20 };
    let app = spawn_app_on(&database.url, AppOptions { text_limits: Some(limits), ..AppOptions::default() }).await;
    let partner = app.add_partner(true, &[]).await;
    assert_eq!(query(&app, &partner, MOBILE).await.status, 202);

    // A second instance, the real binary, allowing 2 texts in 10 minutes.
    let inbox = SmsInbox::start().await;
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--otp-texts-per-10-min", "2"])
        .env("PAYRAIL_DATABASE_URL", &database.url)
        .env("PAYRAIL_MASTER_KEY", &app.master_key_hex)
        .env("PAYRAIL_DATA_DIR", app.data_dir.path().join("second"))
        .env("PAYRAIL_SMS_GATEWAY_URL", &inbox.url)
        .env("PAYRAIL_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn payrail: {e}"));
    let _second = Running(child);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/AOP/DMTV1/QueryRemitter");
    let post = |mobile: &str| {
        let body = json!({"MobileNo": mobile, "RegistrationID": partner.name()}).to_string();
        http.post(&url).header("Token", partner.token()).body(body).send()
    };
    eventually(20, "the second instance listens", || async { post("9811122299").await.ok().map(|_| ()) }).await;

    // The first instance's text counts there: one more fits under its limit of 2.
    let second = post(MOBILE).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.status(), 202);
    let third = post(MOBILE).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(third.status(), 422);
    let body: serde_json::Value = third.json().await.expect("a JSON body");
    assert_eq!(body["response_code"], 15, "{body}");
    // And the binary's text counts here: the first instance, at 2, is full too.
    assert_refused(&query(&app, &partner, MOBILE).await, 422, 15, "try again after");
    assert_eq!((texts_to(&app.sms, MOBILE), texts_to(&inbox, MOBILE)), (1, 1));
}

/// `payrail serve` on a SQLite data directory, texting through `inbox`.
fn serve_sqlite(dir: &std::path::Path, key: &str, inbox: &SmsInbox, port: u16) -> Running {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--otp-texts-per-10-min", "3"])
        .env("PAYRAIL_MASTER_KEY", key)
        .env_remove("PAYRAIL_DATABASE_URL")
        .env("PAYRAIL_SMS_GATEWAY_URL", &inbox.url)
        .env("PAYRAIL_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn payrail: {e}"));
    Running(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_count_survives_a_restart_on_sqlite() {
    let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = parent.path().join("data");
    let key = "22".repeat(32);
    let added = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["partner", "add", "--name", "Restarts", "--json"])
        .env("PAYRAIL_MASTER_KEY", &key)
        .env_remove("PAYRAIL_DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("run payrail: {e}"));
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let created: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap_or_else(|e| panic!("{e}"));
    let id = created["registration_id"].as_str().expect("registration_id is a string").to_owned();
    let secret = created["secret"].as_str().expect("secret is a string").to_owned();

    let inbox = SmsInbox::start().await;
    let http = reqwest::Client::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/api/AOP/DMTV1/QueryRemitter");
    let post = |mobile: &str| {
        let token = payrail_client::sign_token(secret.as_bytes(), &payrail_client::TokenClaims::now(&id));
        let body = json!({"MobileNo": mobile, "RegistrationID": id}).to_string();
        http.post(&url).header("Token", token).body(body).send()
    };
    let statuses = |count: usize| async move {
        let mut statuses = Vec::new();
        for _ in 0..count {
            statuses.push(post(MOBILE).await.unwrap_or_else(|e| panic!("{e}")).status().as_u16());
        }
        statuses
    };

    let server = serve_sqlite(&dir, &key, &inbox, port);
    eventually(20, "the server listens", || async { post("9811122299").await.ok().map(|_| ()) }).await;
    assert_eq!(statuses(2).await, [202, 202]);
    drop(server);

    let _restarted = serve_sqlite(&dir, &key, &inbox, port);
    eventually(20, "the restarted server listens", || async { post("9811122288").await.ok().map(|_| ()) }).await;
    assert_eq!(statuses(2).await, [202, 422], "the two texts before the restart still count");
    assert_eq!(texts_to(&inbox, MOBILE), 3);
}
