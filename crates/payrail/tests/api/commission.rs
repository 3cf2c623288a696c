//! Commission settlement and the TDS report (issue 15, item 7), through the
//! operator API and the CLI on both engines: a month that is over is paid
//! once per partner as journals, a second run pays nothing, the ledger
//! balances, and the TDS report's totals are the TDS the ledger holds.

use std::time::Duration;

use payrail::domain::Timestamp;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{payrail, spawn_app_with, text, AppOptions, Engine, TestApp, TestPartner};
use crate::journey::{
    add_beneficiary_account, assert_verify_clean, balance, register_remitter, top_up, transfer, MOBILE,
};

both_engines!(
    a_month_is_settled_once_per_partner_and_the_tds_report_totals_the_ledger,
    settlement_refuses_a_month_not_over_and_a_bad_month,
);

/// Paise from a decimal rupee string ("4.78" → 478).
fn paise(text: &str) -> i64 {
    let (rupees, fraction) = text.split_once('.').unwrap_or((text, "0"));
    rupees.parse::<i64>().expect("rupees") * 100 + format!("{fraction:0<2}")[..2].parse::<i64>().expect("paise")
}

/// Three paid transfers for `partner`; the (net commission, TDS) their answers show, in paise.
async fn transfers(app: &TestApp, partner: &TestPartner, mobile: &str, prefix: &str) -> (i64, i64) {
    top_up(app, partner, "100000").await;
    register_remitter(app, partner, mobile).await;
    let bene = add_beneficiary_account(app, partner, mobile, "500000000001").await;
    let (mut commission, mut tds) = (0, 0);
    for (n, amount) in [(1, "1000"), (2, "2500"), (3, "5000")] {
        let sent = transfer(app, partner, mobile, &bene, amount, &format!("{prefix}-{n}")).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        let body = sent.json();
        commission += paise(body["netcommission"].as_str().expect("netcommission"));
        tds += paise(body["tds"].as_str().expect("tds"));
    }
    (commission, tds)
}

/// The financial-year quarter of an India-time date `YYYY-MM-…`.
fn quarter_of(date: &str) -> String {
    let (year, month): (i32, u32) = (date[..4].parse().expect("year"), date[5..7].parse().expect("month"));
    let (first, q) = if month >= 4 { (year, (month - 4) / 3 + 1) } else { (year - 1, 4) };
    format!("{first}-{:02}-Q{q}", (first + 1) % 100)
}

async fn a_month_is_settled_once_per_partner_and_the_tds_report_totals_the_ledger(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let (a, b) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    let (a_commission, a_tds) = transfers(&app, &a, MOBILE, "SET-A").await;
    let (b_commission, b_tds) = transfers(&app, &b, "9876500001", "SET-B").await;
    assert!(a_commission > 0 && a_tds > 0, "the default plan pays commission and withholds TDS");
    let today = app.time.now().to_ist_string();
    let month = today[..7].to_owned();
    let quarter = quarter_of(&today);
    let before = (paise(&balance(&app, &a).await), paise(&balance(&app, &b).await));

    // The TDS report of the quarter: one line per partner, totals equal to the TDS posted.
    let report = app.admin(&format!("/admin/v1/tds-report?quarter={quarter}"), None).await;
    assert_eq!(report.status, 200, "{}", report.body);
    let lines: Vec<&str> = report.body.lines().collect();
    assert_eq!(lines[0], "partner,quarter,section,commission_paid,tds_deducted,tds_rate_percent");
    let line_of = |partner: &str| lines.iter().find(|l| l.starts_with(&format!("{partner},"))).copied();
    let a_line: Vec<&str> = line_of(&a.name()).expect("a line for A").split(',').collect();
    assert_eq!((paise(a_line[3]), paise(a_line[4])), (a_commission + a_tds, a_tds), "{}", report.body);
    let total: Vec<&str> = lines.last().expect("a total").split(',').collect();
    assert_eq!(total[0], "total");
    assert_eq!(paise(total[4]), a_tds + b_tds, "the total TDS is what the ledger withheld: {}", report.body);
    let cli = payrail(&app, &["tds-report", "--quarter", &quarter]);
    assert!(cli.status.success(), "{}", text(&cli.stderr));
    assert_eq!(text(&cli.stdout), report.body, "the CLI prints the same report");

    // The month is over: each partner is paid its net commission, once.
    let to_end = Timestamp::parse_ist_date(&next_month_first(&month)).expect("a date").unix() - app.time.now().unix();
    app.clock().advance(Duration::from_secs(to_end as u64 + 3600));
    let run = app.admin("/admin/v1/settlements", Some(json!({"month": month}))).await;
    assert_eq!(run.status, 200, "{}", run.body);
    let run = run.json();
    let paid_to = |run: &Value, partner: &TestPartner| {
        run["paid"].as_array().into_iter().flatten().find(|p| p["registration_id"] == partner.name()).cloned()
    };
    let a_paid = paid_to(&run, &a).unwrap_or_else(|| panic!("A paid: {run}"));
    assert_eq!(paise(a_paid["amount"].as_str().expect("amount")), a_commission, "{run}");
    assert_eq!(paise(paid_to(&run, &b).expect("B paid")["amount"].as_str().expect("amount")), b_commission);
    assert_eq!(paise(&balance(&app, &a).await), before.0 + a_commission, "into A's wallet");
    assert_eq!(paise(&balance(&app, &b).await), before.1 + b_commission);

    // Again, through the API and the CLI: nothing more is paid.
    let again = app.admin("/admin/v1/settlements", Some(json!({"month": month}))).await.json();
    assert_eq!(again["paid"], json!([]), "{again}");
    assert_eq!(again["already_paid"].as_array().map(Vec::len), Some(2), "{again}");
    assert_eq!(paise(&balance(&app, &a).await), before.0 + a_commission, "not paid twice");
    let listed = app.admin(&format!("/admin/v1/settlements?month={month}"), None).await.json();
    assert_eq!(listed["settlements"].as_array().map(Vec::len), Some(2), "{listed}");
    let statement = app
        .admin(
            &format!(
                "/admin/v1/partners/{}/wallet/statement?from={}&to={}",
                a.name(),
                &today[..10],
                &app.time.now().to_ist_string()[..10]
            ),
            None,
        )
        .await;
    assert!(statement.body.contains(&format!("settlement,,commission {month}")), "{}", statement.body);
    assert_verify_clean(&app);
    let audit = app.admin(&format!("/admin/v1/audit?target=month:{month}"), None).await.json();
    let actions: Vec<&str> =
        audit["entries"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["settlement.run"], "one run paid, one audited: {audit}");
}

/// `YYYY-MM-01` of the month after `YYYY-MM`.
fn next_month_first(month: &str) -> String {
    let (year, m): (i32, u32) = (month[..4].parse().expect("year"), month[5..7].parse().expect("month"));
    if m == 12 {
        format!("{}-01-01", year + 1)
    } else {
        format!("{year}-{:02}-01", m + 1)
    }
}

async fn settlement_refuses_a_month_not_over_and_a_bad_month(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let a = app.add_partner(true, &[]).await;
    transfers(&app, &a, MOBILE, "NOT-OVER").await;
    let month = app.time.now().to_ist_string()[..7].to_owned();
    let before = balance(&app, &a).await;
    let refused = app.admin("/admin/v1/settlements", Some(json!({"month": month}))).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.json()["message"].as_str().is_some_and(|m| m.contains("is not over yet")), "{}", refused.body);
    for (body, says) in [
        (json!({"month": "2026-13"}), "month must be YYYY-MM"),
        (json!({}), "month is required"),
        (json!({"month": "2026-11", "extra": 1}), "extra"),
    ] {
        let answer = app.admin("/admin/v1/settlements", Some(body.clone())).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(answer.body.contains(says), "{body}: {}", answer.body);
    }
    let bad = app.admin("/admin/v1/tds-report?quarter=2026-Q3", None).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("financial-year quarter"), "{}", bad.body);
    assert_eq!(balance(&app, &a).await, before, "nothing paid");
    // The CLI: the month in progress is refused; a month with nothing accrued pays nothing.
    let out = payrail(&app, &["settle", "--month", &month]);
    assert!(!out.status.success() && text(&out.stderr).contains("is not over yet"), "{}", text(&out.stderr));
    let out = payrail(&app, &["settle", "--month", "2020-01"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2020-01: no commission accrued\n");
    let out = payrail(&app, &["settle", "--month", "2020-1"]);
    assert!(!out.status.success() && text(&out.stderr).contains("month must be YYYY-MM"), "{}", text(&out.stderr));
    assert_eq!(balance(&app, &a).await, before, "nothing paid");
}
