//! Reconciliation against a bank file (issue 15, item 5), through the CLI
//! binary and the operator API on both engines: a file with every kind of
//! discrepancy yields exactly the expected report, `--hold` holds what the
//! state machine allows and notes the rest in the audit log, a second run
//! changes nothing, and a malformed file is refused naming its lines.

use payrail::domain::operator::Role;
use payrail::domain::TxnKind;
use serde_json::{json, Value};

use crate::both_engines;
use crate::console::{add_operator, Console, PASSWORD};
use crate::helpers::{payrail, spawn_app_with, text, AppOptions, Engine, TestApp, ADMIN_TOKEN};

both_engines!(
    a_bank_file_with_every_discrepancy_yields_the_expected_report_and_a_second_run_changes_nothing,
    a_paysprint_report_is_matched_by_the_reference_payrail_sent,
    a_malformed_file_is_refused_naming_every_bad_line_and_nothing_changes,
    the_console_page_runs_a_pasted_file_for_an_operator_and_not_for_a_viewer,
);

/// Makes a transfer through the operator API and moves it through `steps`; its ackno.
async fn transfer(app: &TestApp, partner: &str, reference: &str, amount: &str, steps: &[Value]) -> i64 {
    let create =
        json!({"registration_id": partner, "reference_id": reference, "amount": amount, "account": "50100200300"});
    let created = app.admin("/admin/v1/dmt", Some(create)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let ackno = created.json()["ackno"].as_i64().expect("ackno is a number");
    for step in steps {
        let moved = app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(step.clone())).await;
        assert_eq!(moved.status, 200, "{step}: {}", moved.body);
    }
    ackno
}

fn paid(utr: &str) -> Vec<Value> {
    vec![json!({"to": "sent_to_bank"}), json!({"to": "success", "utr": utr})]
}

fn returned(utr: &str) -> Vec<Value> {
    let mut steps = paid(utr);
    steps.push(json!({"to": "failed", "reason": "bank return"}));
    steps
}

/// A transfer's state and its number of history rows.
async fn state_of(app: &TestApp, ackno: i64) -> (String, usize) {
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json();
    let history = shown["history"].as_array().map_or(0, Vec::len);
    (shown["status"].as_str().unwrap_or_default().to_owned(), history)
}

/// Every audit entry (newest first).
async fn audit(app: &TestApp) -> Vec<Value> {
    let page = app.admin("/admin/v1/audit?limit=500", None).await.json();
    page["entries"].as_array().cloned().unwrap_or_default()
}

async fn reconcile_api(app: &TestApp, query: &str, body: &str) -> crate::helpers::Answer {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    app.post_raw(&format!("/admin/v1/reconciliations{query}"), body.to_owned(), &[("Authorization", &auth)]).await
}

async fn a_bank_file_with_every_discrepancy_yields_the_expected_report_and_a_second_run_changes_nothing(
    engine: Engine,
) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let p = app.add_partner(false, &[]).await.name();
    let today = app.time.now().to_ist_string()[..10].to_owned();
    let matched = transfer(&app, &p, "R-1", "1000", &paid("500000000001")).await;
    let amount = transfer(&app, &p, "R-2", "2000", &paid("500000000002")).await;
    let paid_returned = transfer(&app, &p, "R-3", "3000", &paid("500000000003")).await;
    let failed_paid = transfer(&app, &p, "R-4", "4000", &returned("500000000004")).await;
    let at_bank = transfer(&app, &p, "R-5", "5000", &[json!({"to": "sent_to_bank"})]).await;
    let only_here = transfer(&app, &p, "R-6", "6000", &paid("500000000006")).await;
    let _under_way = transfer(&app, &p, "R-7", "7000", &[]).await;
    let refunded = transfer(&app, &p, "R-8", "800", &returned("500000000008")).await;
    let refund = app.admin(&format!("/admin/v1/dmt/{refunded}/transition"), Some(json!({"to": "refunded"}))).await;
    assert_eq!(refund.status, 200, "{}", refund.body);
    // The transfer at the bank was sent upstream with a reference; the file names it by that.
    let tail = format!("D{at_bank}RC");
    app.store.assign_upstream_ref(TxnKind::Dmt, at_bank, &tail).await.expect("a reference");

    let file = format!(
        "utr,amount,date,status,reference\n\
         500000000001,1000.00,{today},success,\n\
         500000000002,1999.50,{today},success,\n\
         500000000003,3000,{today},returned,\n\
         500000000004,4000,{today},success,\n\
         500000000005,5000,{today},success,PR{tail}\n\
         500000000008,800,{today},returned,\n\
         599999999999,100,{today},success,\n"
    );
    let bank = app.data_dir.path().join("bank.csv");
    std::fs::write(&bank, &file).expect("write the file");
    let expected = |at_bank_state: &str| {
        format!(
            "category,utr,reference,ackno,partner,payrail_amount,file_amount,payrail_state,file_state,line\n\
             amount_mismatch,500000000002,,{amount},{p},2000.00,1999.50,success,success,3\n\
             state_mismatch,500000000003,,{paid_returned},{p},3000.00,3000.00,success,returned,4\n\
             state_mismatch,500000000004,,{failed_paid},{p},4000.00,4000.00,failed,success,5\n\
             state_mismatch,500000000005,PR{tail},{at_bank},{p},5000.00,5000.00,{at_bank_state},success,6\n\
             file_only,599999999999,,,,,100.00,,success,8\n\
             payrail_only,500000000006,,{only_here},{p},6000.00,,success,,\n"
        )
    };

    // A look first, through the API: nothing is held without `hold`.
    let look = reconcile_api(&app, &format!("?date={today}"), &file).await;
    assert_eq!(look.status, 200, "{}", look.body);
    let look = look.json();
    assert_eq!(
        look["summary"],
        json!({"lines": 7, "matched": 2, "amount_mismatch": 1, "state_mismatch": 3, "payrail_only": 1,
               "file_only": 1, "held": 0, "noted": 0, "already": 0}),
        "{look}"
    );
    assert_eq!(
        look["findings"][0],
        json!({"category": "amount_mismatch", "utr": "500000000002", "reference": null,
        "ackno": amount, "registration_id": p, "payrail_amount": "2000.00", "file_amount": "1999.50",
        "payrail_state": "success", "file_state": "success", "line": 3, "action": null})
    );
    assert_eq!(state_of(&app, at_bank).await.0, "sent_to_bank");
    let audit_before = audit(&app).await.len();

    // The CLI with --hold: exactly the expected report; the transfer at the bank is held,
    // the others (paid or failed: no hold from there) are noted in the audit log.
    let report = app.data_dir.path().join("report.csv");
    let bank_arg = bank.display().to_string();
    let report_arg = report.display().to_string();
    let out = payrail(&app, &["reconcile", "--bank", &bank_arg, "--date", &today, "--report", &report_arg, "--hold"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "lines 7\nmatched 2\namount_mismatch 1\nstate_mismatch 3\npayrail_only 1\nfile_only 1\nheld 1\nnoted 3\nalready 0\n"
    );
    assert_eq!(std::fs::read_to_string(&report).expect("the report"), expected("sent_to_bank"));
    let (state, history) = state_of(&app, at_bank).await;
    assert_eq!(state, "on_hold");
    let shown = app.admin(&format!("/admin/v1/dmt/{at_bank}"), None).await.json();
    let last = shown["history"].as_array().and_then(|h| h.last().cloned()).expect("a history");
    assert_eq!(
        last["reason"],
        json!("reconciliation: state sent_to_bank here, success in the file (file bank.csv line 6)"),
        "{last}"
    );
    let entries = audit(&app).await;
    let actions: Vec<(String, String)> = entries[..entries.len() - audit_before]
        .iter()
        .map(|e| {
            (e["action"].as_str().unwrap_or_default().to_owned(), e["target"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("reconcile.run".to_owned(), "file:bank.csv".to_owned()),
            ("dmt.transition".to_owned(), format!("dmt:{at_bank}")),
            ("reconcile.note".to_owned(), format!("dmt:{failed_paid}")),
            ("reconcile.note".to_owned(), format!("dmt:{paid_returned}")),
            ("reconcile.note".to_owned(), format!("dmt:{amount}")),
        ],
        "newest first"
    );
    let states: Vec<(String, usize)> = {
        let mut states = Vec::new();
        for ackno in [matched, amount, paid_returned, failed_paid, at_bank, only_here, refunded] {
            states.push(state_of(&app, ackno).await);
        }
        states
    };
    assert_eq!(&states[4], &(state, history));

    // The same file again, through the API with hold: the same findings (the held
    // transfer now shows on hold), nothing held or noted, nothing written.
    let again = reconcile_api(&app, &format!("?date={today}&hold=true&name=bank.csv&report=csv"), &file).await;
    assert_eq!((again.status, again.content_type.as_str()), (200, "text/csv; charset=utf-8"), "{}", again.body);
    assert_eq!(again.body, expected("on_hold"));
    let again = reconcile_api(&app, "?hold=true&name=bank.csv", &file).await.json();
    assert_eq!(
        (&again["summary"]["held"], &again["summary"]["noted"], &again["summary"]["already"]),
        (&json!(0), &json!(0), &json!(4)),
        "{again}"
    );
    assert_eq!(again["findings"][3]["action"], json!("already_held"), "{again}");
    assert_eq!(again["findings"][0]["action"], json!("already_noted"), "{again}");
    let out = payrail(&app, &["reconcile", "--bank", &bank_arg, "--hold", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["summary"]["already"], json!(4), "{json}");
    let mut after = Vec::new();
    for ackno in [matched, amount, paid_returned, failed_paid, at_bank, only_here, refunded] {
        after.push(state_of(&app, ackno).await);
    }
    assert_eq!(after, states, "no state or history row changed");
    assert_eq!(audit(&app).await.len(), entries.len(), "no audit entry written");
}

async fn a_paysprint_report_is_matched_by_the_reference_payrail_sent(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let p = app.add_partner(false, &[]).await.name();
    let today = app.time.now().to_ist_string()[..10].to_owned();
    let paid = transfer(&app, &p, "S-1", "2500", &paid("600000000001")).await;
    let gone = transfer(&app, &p, "S-2", "1500", &returned("600000000002")).await;
    for ackno in [paid, gone] {
        app.store.assign_upstream_ref(TxnKind::Dmt, ackno, &format!("D{ackno}PS")).await.expect("a reference");
    }
    let file = format!(
        "Txn ID,Ref ID,UTR,Amount,Status,Date\n\
         PS1001,PRD{paid}PS,600000000001,2500.00,SUCCESS,{today} 10:15:00\n\
         PS1002,PRD{gone}PS,600000000002,1500.00,SUCCESS,{today} 11:00:00\n\
         PS1003,PRX1,,99.00,REFUNDED,{today}\n"
    );
    // The sample of docs/API.md.
    let run = reconcile_api(&app, "?format=paysprint&hold=true&name=paysprint-daily.csv", &file).await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(
        run.json(),
        json!({"file": "paysprint-daily.csv", "summary": {"lines": 3, "matched": 1, "amount_mismatch": 0,
            "state_mismatch": 1, "payrail_only": 0, "file_only": 1, "held": 0, "noted": 1, "already": 0},
            "findings": [
                {"category": "state_mismatch", "utr": "600000000002", "reference": format!("PRD{gone}PS"),
                 "ackno": gone, "registration_id": p, "payrail_amount": "1500.00", "file_amount": "1500.00",
                 "payrail_state": "failed", "file_state": "success", "line": 3, "action": "noted"},
                {"category": "file_only", "utr": null, "reference": "PRX1", "ackno": null, "registration_id": null,
                 "payrail_amount": null, "file_amount": "99.00", "payrail_state": null, "file_state": "returned",
                 "line": 4, "action": null}]})
    );
    let noted = app.admin(&format!("/admin/v1/audit?target=dmt:{gone}"), None).await.json();
    assert_eq!(noted["entries"][0]["action"], json!("reconcile.note"), "{noted}");
    assert_eq!(
        noted["entries"][0]["after"]["reason"],
        json!("reconciliation: state failed here, success in the file (file paysprint-daily.csv line 3)"),
        "{noted}"
    );
    let run = reconcile_api(&app, "?format=paysprint&report=csv", &file).await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(
        run.body,
        format!(
            "category,utr,reference,ackno,partner,payrail_amount,file_amount,payrail_state,file_state,line\n\
             state_mismatch,600000000002,PRD{gone}PS,{gone},{p},1500.00,1500.00,failed,success,3\n\
             file_only,,PRX1,,,,99.00,,returned,4\n"
        )
    );
    // The CLI reads the same format, with a mapped CSV too.
    let bank = app.data_dir.path().join("mapped.csv");
    std::fs::write(&bank, format!("Value Date,Amt,UTR No,Status\n{today},2500,600000000001,success\n")).expect("write");
    let out = payrail(
        &app,
        &[
            "reconcile",
            "--bank",
            &bank.display().to_string(),
            "--columns",
            "utr=UTR No,amount=Amt,date=Value Date,status=Status",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "lines 1\nmatched 1\namount_mismatch 0\nstate_mismatch 0\npayrail_only 0\nfile_only 0\n"
    );
}

async fn a_malformed_file_is_refused_naming_every_bad_line_and_nothing_changes(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let p = app.add_partner(false, &[]).await.name();
    let today = app.time.now().to_ist_string()[..10].to_owned();
    let at_bank = transfer(&app, &p, "M-1", "5000", &[json!({"to": "sent_to_bank"})]).await;
    app.store.assign_upstream_ref(TxnKind::Dmt, at_bank, &format!("D{at_bank}MF")).await.expect("a reference");
    let before = state_of(&app, at_bank).await;
    let audit_before = audit(&app).await.len();
    let file = format!(
        "utr,amount,date,status,reference\n\
         700000000001,4000,{today},success,PRD{at_bank}MF\n\
         700000000002,12.345,{today},success,\n\
         700000000003,10,03-12-2026,success,\n\
         700000000004,10,{today},paid,\n\
         700000000005,10\n"
    );
    let bank = app.data_dir.path().join("bad.csv");
    std::fs::write(&bank, &file).expect("write");
    let out = payrail(&app, &["reconcile", "--bank", &bank.display().to_string(), "--hold"]);
    assert!(!out.status.success(), "refused");
    let stderr = text(&out.stderr);
    for named in [
        "bad.csv: line 3: amount:",
        "bad.csv: line 4: date:",
        "bad.csv: line 5: status:",
        "bad.csv: line 6: expected 5 fields",
    ] {
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
    assert!(stderr.contains("4 malformed lines"), "{stderr}");
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));

    let answer = reconcile_api(&app, "?hold=true", &file).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let answer = answer.json();
    assert_eq!(answer["response_code"], json!(8));
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("file: line 3: amount:") && message.contains("line 6: expected 5 fields"), "{message}");
    for (query, field) in [
        ("?format=xml", "format:"),
        ("?date=2026-13-01", "date:"),
        ("?hold=yes", "hold:"),
        ("?report=pdf", "report:"),
        ("?columns=utr", "columns:"),
    ] {
        let bad = reconcile_api(&app, query, "utr,amount,date,status\n").await;
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        assert!(bad.json()["message"].as_str().unwrap_or_default().starts_with(field), "{query}: {}", bad.body);
    }
    let other_day = reconcile_api(&app, "?date=2020-01-01", &file.lines().take(2).collect::<Vec<_>>().join("\n")).await;
    assert_eq!(other_day.status, 400, "a line of another day than --date is refused: {}", other_day.body);
    assert_eq!(state_of(&app, at_bank).await, before, "nothing held");
    assert_eq!(audit(&app).await.len(), audit_before, "nothing audited");
}

async fn the_console_page_runs_a_pasted_file_for_an_operator_and_not_for_a_viewer(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let p = app.add_partner(false, &[]).await.name();
    let today = app.time.now().to_ist_string()[..10].to_owned();
    let at_bank = transfer(&app, &p, "C-1", "5000", &[json!({"to": "sent_to_bank"})]).await;
    let paid = transfer(&app, &p, "C-2", "700", &paid("800000000002")).await;
    app.store.assign_upstream_ref(TxnKind::Dmt, at_bank, &format!("D{at_bank}CP")).await.expect("a reference");
    let file = format!(
        "utr,amount,date,status,reference\n800000000001,4999,{today},success,PRD{at_bank}CP\n800000000002,700,{today},success,\n"
    );
    add_operator(&app, "viewer@example.in", Role::Viewer).await;
    add_operator(&app, "asha@example.in", Role::Operator).await;

    // A viewer sees the page without the form, and a post is refused.
    let mut viewer = Console::new(&app);
    viewer.login("viewer@example.in", PASSWORD).await;
    let page = viewer.get("/console/reconcile").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("may look but not run a reconciliation"), "{}", page.body);
    let csrf = page.csrf();
    let fields = [("csrf", csrf.as_str()), ("file", file.as_str()), ("hold", "true")];
    let refused = viewer.post("/console/reconcile", &fields).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(state_of(&app, at_bank).await.0, "sent_to_bank");

    // An operator: without the CSRF token nothing runs; with it, the run holds the mismatch.
    let mut console = Console::new(&app);
    console.login("asha@example.in", PASSWORD).await;
    let page = console.get("/console/reconcile").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("form id=\"reconcile\"") && !page.body.contains("<script"), "{}", page.body);
    assert!(page.headers.get("content-security-policy").is_some(), "a CSP");
    let forged = console.post("/console/reconcile", &[("file", file.as_str()), ("hold", "true")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(state_of(&app, at_bank).await.0, "sent_to_bank");
    let csrf = page.csrf();
    let fields = [("csrf", csrf.as_str()), ("file", file.as_str()), ("hold", "true"), ("name", "pasted.csv")];
    let run = console.post("/console/reconcile", &fields).await;
    assert_eq!(run.status, 200, "{}", run.body);
    for shown in [
        "Summary of pasted.csv",
        "<th>Matched</th><td>1</td>",
        "<th>Amount mismatch</th><td>1</td>",
        "<th>Held now</th><td>1</td>",
        &format!("<td>amount_mismatch</td><td>800000000001</td><td>PRD{at_bank}CP</td><td><a href=\"/console/dmt/{at_bank}\">DMT {at_bank}</a></td><td>{p}</td><td>5000.00</td><td>4999.00</td><td>sent_to_bank</td><td>success</td><td>2</td><td>held</td>"),
    ] {
        assert!(run.body.contains(shown), "{shown}: {}", run.body);
    }
    assert_eq!(state_of(&app, at_bank).await.0, "on_hold");
    assert_eq!(state_of(&app, paid).await.0, "success");
    let bad = console.post("/console/reconcile", &[("csrf", csrf.as_str()), ("file", "utr,amount\n")]).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("Refused, nothing changed: file: line 1: the header has no"), "{}", bad.body);
}
