//! Every `payrail … --json` command prints exactly one JSON document: the
//! test runs each one (the list is checked against every command that has
//! a `--json` flag) and parses its whole standard output as one value.

use clap::CommandFactory as _;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{payrail, spawn_app_with, text, AppOptions, Engine, TestApp};

both_engines!(every_json_command_prints_one_json_document);

/// Every command path (`partner rotate-secret`, …) that takes `--json`.
fn commands_with_json() -> Vec<String> {
    fn walk(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        if command.get_arguments().any(|a| a.get_id() == "json") {
            found.push(path.trim().to_owned());
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }
    let mut found = Vec::new();
    walk(&payrail::cli::Cli::command(), "", &mut found);
    found.sort();
    found
}

/// Runs `payrail ARGS…` and parses everything it printed as one JSON value.
fn one_document(app: &TestApp, args: &[&str]) -> Value {
    let output = payrail(app, args);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{args:?}: {stdout}{}", text(&output.stderr));
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed other than exactly one JSON document ({e}): {stdout}"))
}

async fn every_json_command_prints_one_json_document(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let known = commands_with_json();
    let ran = std::cell::RefCell::new(Vec::<String>::new());
    let run = |args: &[&str]| {
        // The command is the longest run of leading words that names one.
        let path = (1..=args.len()).rev().map(|n| args[..n].join(" ")).find(|p| known.contains(p));
        ran.borrow_mut().push(path.unwrap_or_else(|| args.join(" ")));
        one_document(&app, args)
    };

    let added = run(&["partner", "add", "--name", "Kirana Pay", "--json"]);
    let id = added["registration_id"].as_str().expect("a registration id").to_owned();
    assert!(added["secret"].is_string(), "{added}");
    let listed = run(&["partner", "list", "--json"]);
    assert!(listed.as_array().is_some_and(|l| l.iter().any(|p| p["registration_id"] == id.as_str())), "{listed}");
    let shown = run(&["partner", "show", &id, "--json"]);
    assert_eq!(shown["registration_id"], id.as_str());
    assert!(shown.get("secret").is_none(), "{shown}");
    assert_eq!(run(&["partner", "suspend", &id, "--json"])["status"], "suspended");
    assert_eq!(run(&["partner", "activate", &id, "--json"])["status"], "active");
    let rotated = run(&["partner", "rotate-secret", &id, "--overlap-hours", "2", "--json"]);
    assert!(rotated["secret"].is_string(), "{rotated}");
    assert!(rotated["previous_secret_valid_until"].as_str().is_some_and(|t| t.len() == 19), "{rotated}");
    let listed = run(&["partner", "set-allowlist", &id, "--allow-ip", "203.0.113.0/24", "--json"]);
    assert_eq!(listed["allow_ips"], json!(["203.0.113.0/24"]), "{listed}");
    let keyed = one_document_with_key(&app, &["partner", "set-authorised-key", &id, "--json"], "ak-1");
    ran.borrow_mut().push("partner set-authorised-key".into());
    assert_eq!(keyed["authorised_key_set"], true, "{keyed}");

    let plans = run(&["plan", "show", &id, "--json"]);
    assert_eq!((&plans["partner"], plans["versions"].as_array().map(Vec::len)), (&json!(id), Some(0)), "{plans}");
    assert!(plans["default_plan"].is_object(), "{plans}");
    let set = run(&["callback", "set", &id, "https://partner.example/cb", "--json"]);
    assert_eq!(set["url"], "https://partner.example/cb", "{set}");
    assert!(run(&["txn", "search", "--json"])["transactions"].is_array());
    let dmt = json!({"registration_id": id, "reference_id": "J-1", "amount": "100", "account": "50100200300"});
    let ackno = app.admin("/admin/v1/dmt", Some(dmt)).await.json()["ackno"].as_i64().expect("an ackno");
    let txn = format!("dmt:{ackno}");
    assert!(run(&["txn", "show", &txn, "--json"])["timeline"].is_array());

    let email = "json@example.in";
    assert_eq!(run(&["operator", "add", "--email", email, "--role", "viewer", "--json"])["email"], email);
    assert!(run(&["operator", "list", "--json"])["operators"].is_array());
    assert_eq!(run(&["operator", "set-role", "--email", email, "--role", "operator", "--json"])["role"], "operator");
    assert_eq!(run(&["operator", "disable", "--email", email, "--json"])["disabled"], true);
    assert_eq!(run(&["operator", "enable", "--email", email, "--json"])["disabled"], false);
    assert!(run(&["operator", "reset-password", "--email", email, "--json"]).is_object());
    let token = run(&["operator", "token", "create", "--email", email, "--json"]);
    let token_id = token["token"].as_str().and_then(|t| t.split('_').nth(1)).expect("a token id").to_owned();
    assert!(run(&["operator", "token", "list", "--email", email, "--json"])["tokens"].is_array());
    assert!(run(&["operator", "token", "revoke", &token_id, "--json"]).is_object());
    let audit = run(&["audit", "list", "--json"]);
    let actions: Vec<&str> =
        audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["partner.add", "partner.suspend", "partner.rotate_secret", "partner.set_authorised_key"] {
        assert!(actions.contains(&action), "the shell's partner changes are audited: {audit}");
    }

    assert!(run(&["settle", "--month", "2025-01", "--json"])["paid"].is_array());
    let bank = app.data_dir.path().join("bank.csv");
    std::fs::write(&bank, "utr,amount,date,status\n").expect("write a bank file");
    let reconciled = run(&["reconcile", "--bank", &bank.display().to_string(), "--json"]);
    assert_eq!(reconciled["summary"]["lines"], 0, "{reconciled}");

    let mut ran = ran.into_inner();
    ran.sort();
    ran.dedup();
    assert_eq!(ran, known, "every command with --json is run here");
}

/// [`one_document`] with an `Authorisedkey` in PAYRAIL_AUTHORISED_KEY.
fn one_document_with_key(app: &TestApp, args: &[&str], key: &str) -> Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.arg("--data-dir").arg(app.data_dir.path()).args(args);
    command.env("PAYRAIL_MASTER_KEY", &app.master_key_hex).env("PAYRAIL_AUTHORISED_KEY", key);
    command.env_remove("PAYRAIL_DATABASE_URL");
    if let Some(url) = &app.database_url {
        command.env("PAYRAIL_DATABASE_URL", url);
    }
    let output = command.output().unwrap_or_else(|e| panic!("run payrail: {e}"));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{args:?}: {stdout}{}", text(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {stdout}"))
}
