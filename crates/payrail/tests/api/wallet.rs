//! Wallets, statements, fee plans and `payrail verify`, through the operator
//! API and the `payrail` binary.

use serde_json::json;

use crate::both_engines;
use crate::helpers::{payrail, spawn_app, text, Engine, TestApp};
use crate::journey::{assert_verify_clean, balance};

both_engines!(
    the_cli_moves_wallets_and_refuses_overdrafts,
    the_operator_api_refuses_bad_movements_and_bad_plans,
    verify_reports_a_corrupted_wallet,
);

async fn the_cli_moves_wallets_and_refuses_overdrafts(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let id = partner.name();
    let up = payrail(&app, &["wallet", "topup", &id, "500", "--memo", "NEFT 42"]);
    assert!(up.status.success(), "{}", text(&up.stderr));
    assert_eq!(text(&up.stdout).trim(), format!("{id}: 0.00 -> 500.00"));
    let over = payrail(&app, &["wallet", "withdraw", &id, "600"]);
    assert!(!over.status.success());
    assert!(text(&over.stderr).contains("insufficient wallet balance"), "{}", text(&over.stderr));
    let down = payrail(&app, &["wallet", "withdraw", &id, "100.25"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert_eq!(text(&payrail(&app, &["wallet", "balance", &id]).stdout).trim(), "399.75");
    assert_eq!(balance(&app, &partner).await, "399.75", "the server sees what the CLI did");

    let today = payrail::domain::Timestamp::now().to_ist_string()[..10].to_owned();
    let statement = payrail(&app, &["wallet", "statement", &id, "--from", &today, "--to", &today]);
    let csv = text(&statement.stdout);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(
        rows[2].contains(",topup,,NEFT 42,500.00,500.00") && rows[3].contains(",withdrawal,,withdrawal,-100.25,399.75"),
        "{csv}"
    );
    assert!(rows[4].ends_with("closing balance,,,,399.75"), "{csv}");
    let bad = payrail(&app, &["wallet", "statement", &id, "--from", "2026-13-01", "--to", &today]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("YYYY-MM-DD"), "{}", text(&bad.stderr));
    assert!(!payrail(&app, &["wallet", "topup", "AOP-99999", "10"]).status.success(), "unknown partner");
    assert_verify_clean(&app);
}

async fn the_operator_api_refuses_bad_movements_and_bad_plans(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let wallet = format!("/admin/v1/partners/{}/wallet", partner.name());
    for amount in ["0", "-5", "1.234", "ten"] {
        let answer = app.admin(&format!("{wallet}/topup"), Some(json!({"amount": amount}))).await;
        assert_eq!(answer.status, 400, "{amount}: {}", answer.body);
        assert_eq!(answer.json()["response_code"], 8);
    }
    let overdraft = app.admin(&format!("{wallet}/withdraw"), Some(json!({"amount": "1"}))).await;
    assert_eq!(overdraft.status, 409, "{}", overdraft.body);
    let missing = app.admin("/admin/v1/partners/AOP-99999/wallet/topup", Some(json!({"amount": "1"}))).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(balance(&app, &partner).await, "0.00");

    let plans = format!("/admin/v1/partners/{}/fee-plans", partner.name());
    let bad_plan =
        json!({"effective_from": "2026-12-01", "plan": {"dmt": {"slabs": []}, "bbps": {"default": {"percent": "1"}}}});
    let refused = app.admin(&plans, Some(bad_plan)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.json()["message"].as_str().expect("message is a string").contains("dmt.slabs"), "{}", refused.body);
    // A slab that pays the provider more than the charge less GST would give
    // the partner a negative commission (and negative TDS): refused, naming it.
    let paying_out = json!({"effective_from": "2026-12-01", "plan": {"dmt": {"slabs": [
        {"up_to": "1000", "charge": "10.00", "provider_share": "3.50"},
        {"charge": "10.00", "provider_share": "9.00"}]}, "bbps": {"default": {"percent": "1"}}}});
    let refused = app.admin(&plans, Some(paying_out)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("dmt.slabs[1]") && refused.body.contains("negative"), "{}", refused.body);
    assert_eq!(app.admin(&plans, None).await.json()["versions"].as_array().map(Vec::len), Some(0), "nothing written");
    let good = json!({"effective_from": "2026-12-01 09:00:00", "plan": {"dmt": {"slabs": [{"charge": "7", "provider_share": "2"}]},
                                                                         "bbps": {"default": {"percent": "0.5", "cap": "20"}}}});
    assert_eq!(app.admin(&plans, Some(good.clone())).await.status, 201);
    let second = app.admin(&plans, Some(good)).await.json();
    assert_eq!((&second["version"], &second["effective_from"]), (&json!(2), &json!("2026-12-01 09:00:00")));
    let listed = app.admin(&plans, None).await.json();
    assert_eq!(listed["versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(listed["default_plan"]["bbps"]["default"]["percent"], "0.21");
}

async fn corrupt_a_wallet(app: &TestApp) {
    let sql = "UPDATE wallets SET balance = balance + 1";
    match &app.database_url {
        Some(url) => {
            let (client, connection) =
                tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("{e}"));
            tokio::spawn(connection);
            client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{e}"));
        }
        None => {
            let conn =
                rusqlite::Connection::open(app.data_dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

async fn verify_reports_a_corrupted_wallet(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    assert!(payrail(&app, &["wallet", "topup", &partner.name(), "100"]).status.success());
    assert_verify_clean(&app);
    corrupt_a_wallet(&app).await;
    let out = payrail(&app, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    assert!(
        report
            .contains(&format!("VIOLATION: wallet of {} holds 100.01 but its postings sum to 100.00", partner.name())),
        "{report}"
    );
    let api = app.admin("/admin/v1/verify", None).await.json();
    assert_eq!(api["ok"], false, "{api}");
}
