//! `payrail backup` and `payrail restore`, through the binary: a snapshot of
//! a SQLite store taken while a `payrail serve` process takes payments
//! restores to a store that `payrail verify` calls clean and that holds every
//! payment acknowledged before the backup began; a restore refuses a
//! non-empty directory and a snapshot that is damaged or fails `verify`,
//! leaving nothing behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::helpers::{eventually, free_port, spawn_app_in, text, AppOptions, Running};

const KEY: &str = "5151515151515151515151515151515151515151515151515151515151515151";

/// `payrail ARGS…` with the test key and none of the caller's PAYRAIL_ variables.
fn payrail_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("PAYRAIL_")) {
        command.env_remove(name);
    }
    command.env("PAYRAIL_MASTER_KEY", KEY).env("PAYRAIL_LOG", "warn");
    command
}

fn run(args: &[&str]) -> Output {
    payrail_command(args).output().unwrap_or_else(|e| panic!("run payrail: {e}"))
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A partner that needs no token from loopback, with a funded wallet, in `data`.
fn funded_partner(data: &Path) -> String {
    let added = run(&[
        "--data-dir",
        utf8(data),
        "partner",
        "add",
        "--name",
        "Backup Ltd",
        "--no-token",
        "--allow-ip",
        "127.0.0.1/32",
        "--json",
    ]);
    assert!(added.status.success(), "{}", text(&added.stderr));
    let added: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap_or_else(|e| panic!("{e}"));
    let id = added["registration_id"].as_str().expect("registration_id is a string").to_owned();
    let topup = run(&["--data-dir", utf8(data), "wallet", "topup", &id, "100000"]);
    assert!(topup.status.success(), "{}", text(&topup.stderr));
    id
}

/// Pays bills of Rs 10 as `partner` until `stop`, keeping each reference the server acknowledged.
async fn pay_bills(base: String, partner: String, task: usize, stop: Arc<AtomicBool>, paid: Arc<Mutex<Vec<String>>>) {
    let http = reqwest::Client::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let reference = format!("BK{task}-{n}");
        let body = json!({"RegistrationID": partner, "operator": 1, "canumber": "150012345678",
                          "amount": "10", "referenceid": reference});
        let Ok(answer) = http.post(format!("{base}/api/AOP/BillPaymentPaybill")).json(&body).send().await else {
            continue;
        };
        let ok = answer.status() == 200;
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        if ok && body["status"] == json!(true) {
            paid.lock().unwrap_or_else(|e| e.into_inner()).push(reference);
        }
    }
}

fn acknowledged(paid: &Mutex<Vec<String>>) -> Vec<String> {
    paid.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_eight_tasks_pay_bills_restores_every_payment_acknowledged_before_it() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = tmp.path().join("data");
    let partner = funded_partner(&data);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve = ["--data-dir", utf8(&data), "serve", "--listen", &listen, "--rate-limit", "0"];
    let mut command = payrail_command(&serve);
    let _server =
        Running(command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{e}")));
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    eventually(30, "the server answers", || async {
        http.post(format!("{base}/api/AOP/BillPaymentStatus")).body("{}").send().await.ok().map(drop)
    })
    .await;

    let (stop, paid) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let payers: Vec<_> = (0..8)
        .map(|task| tokio::spawn(pay_bills(base.clone(), partner.clone(), task, stop.clone(), paid.clone())))
        .collect();
    eventually(60, "40 payments acknowledged", || async { (acknowledged(&paid).len() >= 40).then_some(()) }).await;

    let before = acknowledged(&paid);
    let snapshot = tmp.path().join("payrail.snapshot");
    let backup = ["--data-dir", utf8(&data), "backup", "--out", utf8(&snapshot)].map(str::to_owned);
    let out = tokio::task::spawn_blocking(move || run(&backup.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let during = acknowledged(&paid).len() - before.len();
    stop.store(true, Ordering::SeqCst);
    for payer in payers {
        payer.await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("snapshot of "), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("does not hold the master key (given in PAYRAIL_MASTER_KEY)"),
        "the note names where this key came from: {}",
        text(&out.stderr)
    );
    eprintln!("{} payments acknowledged before the backup, {during} while it ran", before.len());

    // A second backup to the same file is refused, and the first is kept.
    let size = std::fs::metadata(&snapshot).map(|m| m.len()).unwrap_or_else(|e| panic!("{e}"));
    let again = run(&["--data-dir", utf8(&data), "backup", "--out", utf8(&snapshot)]);
    assert!(!again.status.success() && text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
    assert_eq!(std::fs::metadata(&snapshot).map(|m| m.len()).ok(), Some(size));

    // Restore into a fresh (existing, empty) directory; verify calls it clean.
    let restored = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = run(&["--data-dir", utf8(restored.path()), "restore", utf8(&snapshot)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ledger sums to zero"), "{}", text(&out.stdout));
    let verify = run(&["--data-dir", utf8(restored.path()), "verify"]);
    assert!(verify.status.success() && text(&verify.stdout).starts_with("ok:"), "{}", text(&verify.stdout));

    // The restored store answers a status lookup for every acknowledged payment.
    let options = AppOptions { master_key_hex: Some(KEY.to_owned()), no_workers: true, ..AppOptions::default() };
    let app = spawn_app_in(restored, options).await;
    for reference in &before {
        let status = app.bill_status(&partner, reference, None).await;
        assert_eq!(status.status, 200, "{reference}: {}", status.body);
        let txnid = status.json()["data"]["txnid"].clone();
        assert!(txnid.as_str().is_some_and(|t| !t.is_empty()), "{reference} is in the snapshot: {}", status.body);
    }
}

/// Nothing called `.NAME.restoring-*` is left beside the target.
fn leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".restoring-") || name.contains(".partial-"))
        .collect()
}

#[test]
fn restore_refuses_a_non_empty_directory_a_damaged_snapshot_and_one_that_fails_verify() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = tmp.path().join("data");
    let partner = funded_partner(&data);
    let snapshot = tmp.path().join("good.snapshot");
    assert!(run(&["--data-dir", utf8(&data), "backup", "--out", utf8(&snapshot)]).status.success());

    let occupied = tmp.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(occupied.join("notes.txt"), "keep me").unwrap_or_else(|e| panic!("{e}"));
    let out = run(&["--data-dir", utf8(&occupied), "restore", utf8(&snapshot)]);
    assert!(!out.status.success() && text(&out.stderr).contains("is not empty"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(occupied.join("notes.txt")).ok().as_deref(), Some("keep me"));
    assert!(!occupied.join("payrail.db").exists());

    let good = std::fs::read(&snapshot).unwrap_or_else(|e| panic!("{e}"));
    let garbage = tmp.path().join("garbage.snapshot");
    std::fs::write(&garbage, b"this is not a database ".repeat(400)).unwrap_or_else(|e| panic!("{e}"));
    let truncated = tmp.path().join("truncated.snapshot");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
    // A store whose wallet no longer matches its postings.
    let unbalanced = tmp.path().join("unbalanced.snapshot");
    std::fs::write(&unbalanced, &good).unwrap_or_else(|e| panic!("{e}"));
    let conn = rusqlite::Connection::open(&unbalanced).unwrap_or_else(|e| panic!("{e}"));
    conn.execute_batch("UPDATE wallets SET balance = balance + 1").unwrap_or_else(|e| panic!("{e}"));
    drop(conn);

    for (bad, expected) in [
        (&garbage, "is not a usable snapshot"),
        (&truncated, "not a usable snapshot"),
        (&unbalanced, "fails payrail verify"),
    ] {
        let target = tmp.path().join("target");
        let out = run(&["--data-dir", utf8(&target), "restore", utf8(bad)]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{}: {stderr}", bad.display());
        assert!(!target.exists(), "{}: nothing restored", bad.display());
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new(), "{}", bad.display());
    }

    // A master key that is not the snapshot's is refused before anything is restored.
    let target = tmp.path().join("target");
    let out = payrail_command(&["--data-dir", utf8(&target), "restore", utf8(&snapshot)])
        .env("PAYRAIL_MASTER_KEY", "17".repeat(32))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = text(&out.stderr);
    assert!(!out.status.success() && stderr.contains("does not open this snapshot"), "{stderr}");
    assert!(!target.exists() && leftovers(tmp.path()).is_empty());

    // The good snapshot restores into a directory that does not exist yet.
    let target = tmp.path().join("new").join("data");
    let out = run(&["--data-dir", utf8(&target), "restore", utf8(&snapshot)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let balance = run(&["--data-dir", utf8(&target), "wallet", "balance", &partner]);
    assert_eq!(text(&balance.stdout).trim(), "100000.00", "{}", text(&balance.stderr));
}

#[test]
fn backup_and_restore_refuse_a_postgresql_store_and_point_at_pg_dump() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out_file = tmp.path().join("pg.snapshot");
    let url = "postgres://payrail:secret@127.0.0.1:1/payrail";
    let out = run(&["--database-url", url, "backup", "--out", utf8(&out_file)]);
    assert!(!out.status.success() && text(&out.stderr).contains("pg_dump"), "{}", text(&out.stderr));
    assert!(!out_file.exists());
    std::fs::write(&out_file, "x").unwrap_or_else(|e| panic!("{e}"));
    let out = run(&["--database-url", url, "--data-dir", utf8(&tmp.path().join("d")), "restore", utf8(&out_file)]);
    assert!(!out.status.success() && text(&out.stderr).contains("pg_restore"), "{}", text(&out.stderr));
    let missing = run(&["--data-dir", utf8(&tmp.path().join("none")), "backup", "--out", utf8(&tmp.path().join("b"))]);
    assert!(
        !missing.status.success() && text(&missing.stderr).contains("no SQLite store"),
        "{}",
        text(&missing.stderr)
    );
}
