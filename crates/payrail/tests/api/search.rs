//! Operator search (`GET /admin/v1/transactions`, `payrail txn search`)
//! and timelines (`GET /admin/v1/{dmt,bbps}/{id}/timeline`, `payrail txn
//! show`): every filter alone and combined against a set computed here,
//! paging while others insert, the CSV export, refusals naming the
//! parameter, and one transfer's whole life in order.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{payrail, spawn_app_with, text, AppOptions, CallbackReceiver, Engine, TestApp, TestPartner};
use crate::journey::{add_beneficiary_account, assert_refused, register_remitter, top_up, transfer, MOBILE};
use payrail::store::search::SearchPage;

both_engines!(
    each_filter_alone_and_combined_returns_exactly_the_matching_rows,
    paging_while_others_insert_neither_skips_nor_repeats_a_row,
    the_csv_export_has_a_header_and_the_json_rows_and_streams_a_large_set,
    bad_filters_are_refused_naming_the_parameter,
    the_cli_searches_and_shows_as_the_api_does,
    a_failed_refunded_transfer_shows_its_whole_life_in_order,
    every_filter_is_read_through_an_index,
    the_documented_search_is_answered_as_docs_api_shows,
);

/// A row as the test knows it, independently of the server.
#[derive(Debug, Clone)]
struct Row {
    kind: &'static str,
    partner: String,
    reference: String,
    /// Paise.
    amount: i64,
    status: &'static str,
    utr: Option<String>,
    account: Option<String>,
    canumber: Option<String>,
    mobile: Option<String>,
    /// India time, `YYYY-MM-DD HH:MM:SS`.
    created_at: String,
}

impl Row {
    fn key(&self) -> (String, String) {
        (self.partner.clone(), self.reference.clone())
    }
}

const DMT_CSV: &str = "reference_id,amount,account,status,utr,created_at";
const BILL_CSV: &str = "reference_id,operator_name,ca_number,amount,status,operator_id,created_at";

/// Imports a CSV for `partner` through `payrail import`.
pub fn import(app: &TestApp, kind: &str, partner: &TestPartner, lines: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    let header = if kind == "dmt" { DMT_CSV } else { BILL_CSV };
    std::fs::write(&file, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    let out = payrail(app, &["import", kind, "--partner", &partner.name(), file.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", text(&out.stderr));
}

/// A varied set: two partners, both kinds, every state, shared and distinct
/// UTRs, accounts, customer accounts and amounts, several rows at one
/// instant, and two DMT V1 transfers with a remitter's mobile.
async fn data_set(app: &TestApp) -> Vec<Row> {
    let a = app.add_partner(true, &[]).await;
    let b = app.add_partner(true, &[]).await;
    let mut rows = Vec::new();
    let dmt_states = ["success", "failed", "in_process", "sent_to_bank", "on_hold", "success"];
    for (partner, tag) in [(&a, "A"), (&b, "B")] {
        let mut dmt = Vec::new();
        let mut bills = Vec::new();
        for n in 0..18i64 {
            let status = dmt_states[n as usize % dmt_states.len()];
            let utr = (status == "success").then(|| format!("UTR{}", n % 4));
            let account = format!("5000000000{}", n % 3);
            // Three rows share each minute: ties are ordered by kind and id.
            let created_at = format!("2026-03-{:02} 10:{:02}:00", 1 + n % 5, n / 3);
            let rupees = 100 * (n + 1) + if n % 2 == 0 { 0 } else { 50 };
            let reference = format!("{tag}-D{n}");
            dmt.push(format!(
                "{reference},{rupees},{account},{status},{},{created_at}",
                utr.clone().unwrap_or_default()
            ));
            rows.push(Row {
                kind: "dmt",
                partner: partner.name(),
                reference,
                amount: rupees * 100,
                status,
                utr,
                account: Some(account),
                canumber: None,
                mobile: None,
                created_at,
            });
        }
        for n in 0..12i64 {
            let status = ["pending", "success", "failed"][n as usize % 3];
            let canumber = format!("CA{}", n % 4);
            let created_at = format!("2026-03-{:02} 10:{:02}:00", 1 + n % 5, n / 2);
            let paise = 9_950 + n * 1_000;
            let reference = format!("{tag}-B{n}");
            let operator_id = if status == "success" { "OPREF" } else { "" };
            bills.push(format!(
                "{reference},Power Co,{canumber},{}.{:02},{status},{operator_id},{created_at}",
                paise / 100,
                paise % 100
            ));
            rows.push(Row {
                kind: "bbps",
                partner: partner.name(),
                reference,
                amount: paise,
                status,
                utr: None,
                account: None,
                canumber: Some(canumber),
                mobile: None,
                created_at,
            });
        }
        import(app, "dmt", partner, &dmt);
        import(app, "bbps", partner, &bills);
    }
    // Two transfers through the DMT V1 API: they have a remitter.
    top_up(app, &a, "10000").await;
    register_remitter(app, &a, MOBILE).await;
    let bene = add_beneficiary_account(app, &a, MOBILE, "500000000001").await;
    for (n, amount) in [(1, "1000"), (2, "250")] {
        let reference = format!("A-V1-{n}");
        let sent = transfer(app, &a, MOBILE, &bene, amount, &reference).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        // The upstream decides its state: read from the partner's answer.
        let code = sent.json()["txn_status"].as_str().unwrap().to_owned();
        let status =
            ["refunded", "success", "in_process", "sent_to_bank", "on_hold", "failed"][code.parse::<usize>().unwrap()];
        let shown = search_all(app, &format!("reference={reference}")).await;
        rows.push(Row {
            kind: "dmt",
            partner: a.name(),
            reference,
            amount: amount.parse::<i64>().unwrap() * 100,
            status,
            utr: None,
            account: Some("500000000001".into()),
            canumber: None,
            mobile: Some(MOBILE.into()),
            created_at: shown[0]["created_at"].as_str().unwrap().to_owned(),
        });
    }
    rows
}

/// Every page of a search, followed by `next_cursor`.
async fn search_all(app: &TestApp, query: &str) -> Vec<Value> {
    search_pages(app, query, 500).await.into_iter().flatten().collect()
}

async fn search_pages(app: &TestApp, query: &str, limit: u32) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/v1/transactions?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let answer = app.admin(&path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let page = answer.json();
        pages.push(page["transactions"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
    }
}

fn keys(found: &[Value]) -> Vec<(String, String)> {
    found
        .iter()
        .map(|r| (r["registration_id"].as_str().unwrap().to_owned(), r["reference_id"].as_str().unwrap().to_owned()))
        .collect()
}

/// Newest first; at one instant transfers before bill payments, then by id, descending.
fn assert_ordered(found: &[Value]) {
    let key = |r: &Value| {
        let id = r["ackno"].as_i64().or(r["txnid"].as_i64()).unwrap();
        (r["created_at"].as_str().unwrap().to_owned(), r["kind"] == "dmt", id)
    };
    for pair in found.windows(2) {
        assert!(key(&pair[0]) > key(&pair[1]), "out of order: {} then {}", pair[0], pair[1]);
    }
}

/// One filter as the test applies it: the query and the predicate.
type Filter = (String, Box<dyn Fn(&Row) -> bool>);

fn filters(rows: &[Row]) -> Vec<Filter> {
    let partner_b = rows.iter().find(|r| r.reference.starts_with("B-")).unwrap().partner.clone();
    let pb = partner_b.clone();
    vec![
        ("kind=dmt".into(), Box::new(|r: &Row| r.kind == "dmt")),
        ("kind=bbps".into(), Box::new(|r: &Row| r.kind == "bbps")),
        (format!("partner={partner_b}"), Box::new(move |r: &Row| r.partner == pb)),
        ("reference=A-D7".into(), Box::new(|r: &Row| r.reference == "A-D7")),
        ("utr=UTR1".into(), Box::new(|r: &Row| r.utr.as_deref() == Some("UTR1"))),
        (format!("mobile={MOBILE}"), Box::new(|r: &Row| r.mobile.as_deref() == Some(MOBILE))),
        ("account=50000000001".into(), Box::new(|r: &Row| r.account.as_deref() == Some("50000000001"))),
        ("canumber=CA2".into(), Box::new(|r: &Row| r.canumber.as_deref() == Some("CA2"))),
        ("status=success".into(), Box::new(|r: &Row| r.status == "success")),
        ("status=failed,pending".into(), Box::new(|r: &Row| matches!(r.status, "failed" | "pending"))),
        // Code 2 is a transfer's in_process; codes name transfer states only.
        ("status=2,on_hold".into(), Box::new(|r: &Row| matches!(r.status, "in_process" | "on_hold"))),
        ("from=2026-03-03".into(), Box::new(move |r: &Row| r.created_at.as_str() >= "2026-03-03 00:00:00")),
        ("to=2026-03-02".into(), Box::new(move |r: &Row| r.created_at.as_str() < "2026-03-03 00:00:00")),
        (
            "from=2026-03-02T10:02&to=2026-03-04T10:03:00".into(),
            Box::new(move |r: &Row| {
                r.created_at.as_str() >= "2026-03-02 10:02:00" && r.created_at.as_str() < "2026-03-04 10:03:00"
            }),
        ),
        ("min_amount=500.50".into(), Box::new(|r: &Row| r.amount >= 50_050)),
        ("max_amount=300".into(), Box::new(|r: &Row| r.amount <= 30_000)),
        (
            format!("kind=dmt&partner={partner_b}&status=success&min_amount=200&max_amount=1500&from=2026-03-02"),
            Box::new(move |r: &Row| {
                r.kind == "dmt"
                    && r.partner == partner_b
                    && r.status == "success"
                    && (20_000..=150_000).contains(&r.amount)
                    && r.created_at.as_str() >= "2026-03-02 00:00:00"
            }),
        ),
        (
            "account=50000000000&utr=UTR0&to=2026-03-05".into(),
            Box::new(|r: &Row| {
                r.account.as_deref() == Some("50000000000")
                    && r.utr.as_deref() == Some("UTR0")
                    && r.created_at.as_str() < "2026-03-06 00:00:00"
            }),
        ),
        (
            "canumber=CA1&status=success,failed&max_amount=150".into(),
            Box::new(|r: &Row| {
                r.canumber.as_deref() == Some("CA1") && matches!(r.status, "success" | "failed") && r.amount <= 15_000
            }),
        ),
        (format!("mobile={MOBILE}&min_amount=500"), Box::new(|r: &Row| r.mobile.is_some() && r.amount >= 50_000)),
        // A filter of each kind: nothing is both.
        ("utr=UTR1&canumber=CA1".into(), Box::new(|_: &Row| false)),
    ]
}

async fn each_filter_alone_and_combined_returns_exactly_the_matching_rows(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let rows = data_set(&app).await;
    let everything = search_all(&app, "").await;
    assert_eq!(everything.len(), rows.len());
    assert_ordered(&everything);
    for (query, wanted) in filters(&rows) {
        let expected: BTreeSet<(String, String)> = rows.iter().filter(|r| wanted(r)).map(Row::key).collect();
        // Small pages: the filter also holds across page boundaries.
        let pages = search_pages(&app, &query, 3).await;
        let found: Vec<Value> = pages.into_iter().flatten().collect();
        let got = keys(&found);
        assert_eq!(got.len(), got.iter().collect::<BTreeSet<_>>().len(), "{query}: a row repeated");
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected, "{query}");
        assert_ordered(&found);
        assert!(!expected.is_empty() || query.contains("canumber=CA1"), "{query} matches something");
    }
    // The rows carry the record's fields.
    let by_ref: HashMap<(String, String), &Row> = rows.iter().map(|r| (r.key(), r)).collect();
    for found in &everything {
        let row = by_ref[&(
            found["registration_id"].as_str().unwrap().to_owned(),
            found["reference_id"].as_str().unwrap().to_owned(),
        )];
        assert_eq!(found["status"], row.status);
        assert_eq!(found["created_at"], row.created_at.as_str());
        assert_eq!(found["mobile"].as_str(), row.mobile.as_deref());
    }
}

async fn paging_while_others_insert_neither_skips_nor_repeats_a_row(engine: Engine) {
    let app = std::sync::Arc::new(spawn_app_with(engine, AppOptions::default()).await);
    let partner = app.add_partner(true, &[]).await;
    let mut lines = Vec::new();
    for n in 0..60 {
        // Four rows a minute, both kinds at once.
        lines.push(format!("W-D{n},{},5000000000{},in_process,,2026-04-01 09:{:02}:00", 100 + n, n % 3, n / 4));
    }
    import(&app, "dmt", &partner, &lines);
    let bills: Vec<String> =
        (0..40).map(|n| format!("W-B{n},Power Co,CA{n},{},pending,,2026-04-01 09:{:02}:00", 50 + n, n / 4)).collect();
    import(&app, "bbps", &partner, &bills);
    let before: BTreeSet<(String, String)> = keys(&search_all(&app, "").await).into_iter().collect();
    assert_eq!(before.len(), 100);

    // Another task inserts new transfers and bill payments all along the walk.
    let inserting = {
        let app = std::sync::Arc::clone(&app);
        let partner = partner.name();
        tokio::spawn(async move {
            for n in 0..30 {
                let kind = if n % 2 == 0 { "dmt" } else { "bbps" };
                let body = if kind == "dmt" {
                    json!({"registration_id": partner, "reference_id": format!("NEW-{n}"), "amount": "10", "account": "123456789"})
                } else {
                    json!({"registration_id": partner, "reference_id": format!("NEW-{n}"), "operator_name": "Gas",
                           "ca_number": "X1", "amount": "10"})
                };
                let made = app.admin(&format!("/admin/v1/{kind}"), Some(body)).await;
                assert_eq!(made.status, 201, "{}", made.body);
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut page_number = 0;
    loop {
        let mut path = "/admin/v1/transactions?limit=7".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.admin(&path, None).await.json();
        seen.extend(keys(page["transactions"].as_array().unwrap()));
        // Between pages, rows land behind the cursor too: imported with
        // earlier times, and in the middle of what is left to walk.
        if page_number < 5 {
            let late =
                format!("LATE-{page_number},77,500000000099,in_process,,2026-04-01 09:{:02}:30", 14 - page_number * 3);
            import(&app, "dmt", &partner, &[late]);
        }
        page_number += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    inserting.await.unwrap();
    let unique: BTreeSet<(String, String)> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no row is returned twice");
    let missing: Vec<_> = before.difference(&unique).collect();
    assert!(missing.is_empty(), "every row that existed when the walk began is returned: missing {missing:?}");
}

async fn the_csv_export_has_a_header_and_the_json_rows_and_streams_a_large_set(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let partner = app.add_partner(true, &[]).await;
    // More rows than one store chunk (500) and than a page may hold.
    let lines: Vec<String> = (0..1_234)
        .map(|n| {
            format!(
                "E-{n},{}.{:02},5000000000{},success,UTR-{n},2026-05-01 08:{:02}:{:02}",
                10 + n,
                n % 100,
                n % 3,
                n / 60 % 60,
                n % 60
            )
        })
        .collect();
    import(&app, "dmt", &partner, &lines);
    let bills: Vec<String> =
        (0..20).map(|n| format!("EB-{n},\"Power, Gas & Co\",CA{n},99,pending,,2026-05-01 08:00:{n:02}")).collect();
    import(&app, "bbps", &partner, &bills);

    let response = reqwest::Client::new()
        .get(app.url("/admin/v1/transactions?format=csv"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(response.headers().get("content-length").is_none(), "streamed, not buffered: {:?}", response.headers());
    // Written as it is read from the store, 500 rows at a time: several chunks.
    let mut response = response;
    let mut body = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert!(chunks >= 2, "{chunks} chunk(s)");
    let body = String::from_utf8(body).unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "kind",
            "ackno",
            "txnid",
            "registration_id",
            "reference_id",
            "amount",
            "status",
            "code",
            "utr",
            "operator_ref",
            "mobile",
            "account",
            "canumber",
            "operator_name",
            "created_at",
            "refund_txn_id",
            "refunded_at"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1_254);

    // The CSV rows are the JSON rows, field for field, in the same order.
    let json_rows = search_all(&app, "").await;
    assert_eq!(json_rows.len(), records.len());
    for (record, row) in records.iter().zip(&json_rows) {
        for (name, field) in header.iter().zip(record.iter()) {
            let expected = match &row[name] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(field, expected, "{name} of {row}");
        }
    }
    // Filters apply to the export as well, and a cursor starts it later.
    let answer = app.admin("/admin/v1/transactions?format=csv&kind=bbps&canumber=CA3", None).await;
    let lines: Vec<&str> = answer.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", answer.body);
    assert!(lines[1].contains("\"Power, Gas & Co\""), "{}", lines[1]);
    let page = app.admin("/admin/v1/transactions?limit=1000", None).await;
    assert_refused(&page, 400, 8, "limit: must be a number from 1 to 500");
    let first = app.admin("/admin/v1/transactions?limit=500", None).await.json();
    let rest = app
        .admin(&format!("/admin/v1/transactions?format=csv&cursor={}", first["next_cursor"].as_str().unwrap()), None)
        .await;
    assert_eq!(rest.body.lines().count(), 1 + 1_254 - 500);
    assert_refused(&app.admin("/admin/v1/transactions?format=csv&limit=5", None).await, 400, 8, "limit: ");
}

async fn bad_filters_are_refused_naming_the_parameter(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let cases = [
        ("kind=upi", "kind: must be dmt or bbps"),
        ("partner=nobody", "partner: "),
        ("ackno=12x", "ackno: must be a whole number"),
        ("txnid=-4", "txnid: must be a whole number"),
        ("mobile=12345", "mobile: must be a 10-digit mobile number"),
        ("status=done", "status: \"done\" is not a state"),
        ("status=9", "status: \"9\" is not a state"),
        ("from=2026-13-01", "from: must be India time"),
        ("to=yesterday", "to: must be India time"),
        ("from=2026-03-02&to=2026-03-01", "to: must be later than from"),
        ("min_amount=ten", "min_amount: "),
        ("max_amount=1.234", "max_amount: "),
        ("min_amount=10&max_amount=5", "max_amount: must not be less than min_amount"),
        ("cursor=not-a-cursor", "cursor: not a cursor this search gave"),
        ("limit=0", "limit: must be a number from 1 to 500"),
        ("limit=501", "limit: must be a number from 1 to 500"),
        ("format=xml", "format: must be json or csv"),
        ("colour=red", "colour: unknown parameter"),
        ("utr=", "utr: must not be empty"),
        ("utr=A&utr=B", "utr: given more than once"),
    ];
    for (query, message) in cases {
        let answer = app.admin(&format!("/admin/v1/transactions?{query}"), None).await;
        assert_refused(&answer, 400, 8, message);
        assert!(answer.json()["message"].as_str().unwrap().starts_with(message.split(':').next().unwrap()), "{query}");
    }
    // The operator's token is required.
    let anonymous = reqwest::get(app.url("/admin/v1/transactions")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.admin("/admin/v1/dmt/12345/timeline", None).await.status, 404);
    assert_eq!(app.admin("/admin/v1/bbps/abc/timeline", None).await.status, 400);
    // The aliases of today's field names work.
    let partner = app.add_partner(true, &[]).await;
    import(&app, "dmt", &partner, &["AL-1,10,123456789,in_process,,2026-01-01 10:00:00".to_owned()]);
    let found = search_all(&app, &format!("registration_id={}&reference_id=AL-1", partner.name())).await;
    assert_eq!(found.len(), 1);
}

async fn the_cli_searches_and_shows_as_the_api_does(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let rows = data_set(&app).await;
    let api = search_all(&app, "status=success&kind=dmt").await;
    let out = payrail(&app, &["txn", "search", "--status", "success", "--kind", "dmt", "--limit", "500", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["transactions"].as_array().unwrap(), &api);
    assert_eq!(cli["next_cursor"], Value::Null);
    assert_eq!(api.len(), rows.iter().filter(|r| r.kind == "dmt" && r.status == "success").count());

    // Paging by hand with --cursor walks the same rows.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["txn", "search", "--status", "success", "--kind", "dmt", "--limit", "4", "--json"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let out = payrail(&app, &args);
        let page: Value = serde_json::from_slice(&out.stdout).unwrap();
        walked.extend(page["transactions"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, api);

    let csv = payrail(&app, &["txn", "search", "--canumber", "CA2", "--csv"]);
    assert!(csv.status.success(), "{}", text(&csv.stderr));
    let api_csv = app.admin("/admin/v1/transactions?canumber=CA2&format=csv", None).await;
    assert_eq!(text(&csv.stdout), api_csv.body);

    let bad = payrail(&app, &["txn", "search", "--status", "done"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("--status: \"done\" is not a state"), "{}", text(&bad.stderr));

    let ackno = api[0]["ackno"].as_i64().unwrap();
    let shown = payrail(&app, &["txn", "show", &format!("dmt:{ackno}"), "--json"]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let timeline = app.admin(&format!("/admin/v1/dmt/{ackno}/timeline"), None).await.json();
    assert_eq!(shown, timeline);
    assert_eq!(shown["transaction"], api[0]);
    let human = payrail(&app, &["txn", "show", &format!("dmt:{ackno}")]);
    assert!(text(&human.stdout).contains(&format!("dmt:{ackno}")), "{}", text(&human.stdout));
    let missing = payrail(&app, &["txn", "show", "bbps:1"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("no transaction bbps:1"), "{}", text(&missing.stderr));
}

async fn a_failed_refunded_transfer_shows_its_whole_life_in_order(engine: Engine) {
    let options =
        AppOptions { upstream: crate::helpers::TestUpstream::Sandbox { step_secs: 1 }, ..AppOptions::default() }
            .on_manual_clock();
    let app = spawn_app_with(engine, options).await;
    let partner = app.add_partner(true, &[]).await;
    let receiver = CallbackReceiver::start().await;
    let set = payrail(&app, &["callback", "set", &partner.name(), &receiver.url, "--json"]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let shown: Value = serde_json::from_slice(&set.stdout).unwrap();
    receiver.set_secret(shown["callback_secret"].as_str().unwrap());
    top_up(&app, &partner, "5000").await;
    register_remitter(&app, &partner, MOBILE).await;
    // Suffix 222: the sandbox says pending, then failed at 2 s.
    let bene = add_beneficiary_account(&app, &partner, MOBILE, "100000000222").await;
    receiver.set_down(true);
    let sent = transfer(&app, &partner, MOBILE, &bene, "1000", "LIFE-1").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let ackno =
        sent.json()["ackno"].as_i64().or_else(|| sent.json()["ackno"].as_str().and_then(|s| s.parse().ok())).unwrap();
    // The first delivery attempt fails while the receiver is down.
    app.advance(Duration::from_secs(1)).await;
    app.advance(Duration::from_secs(1)).await;
    let path = format!("/admin/v1/dmt/{ackno}/timeline");
    crate::helpers::eventually(10, "the transfer failed by a poll", || async {
        let t = app.admin(&path, None).await.json();
        (t["transaction"]["status"] == "failed").then_some(())
    })
    .await;
    app.advance(Duration::from_secs(1)).await;
    let refunded = app
        .admin(
            &format!("/admin/v1/dmt/{ackno}/transition"),
            Some(json!({"to": "refunded", "reason": "customer asked"})),
        )
        .await;
    assert_eq!(refunded.status, 200, "{}", refunded.body);
    receiver.set_down(false);
    app.advance(Duration::from_secs(2)).await;
    let timeline = crate::helpers::eventually(15, "every event delivered", || async {
        let t = app.admin(&path, None).await.json();
        let events: Vec<&Value> =
            t["timeline"].as_array().unwrap().iter().filter(|i| i["kind"] == "partner_event").collect();
        (!events.is_empty() && events.iter().all(|e| e["state"] == "delivered")).then_some(t)
    })
    .await;
    let items = timeline["timeline"].as_array().unwrap();
    let times: Vec<&str> = items.iter().map(|i| i["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order: {times:?}");
    let position = |what: &dyn Fn(&Value) -> bool, name: &str| {
        items.iter().position(what).unwrap_or_else(|| panic!("no {name} in {timeline:#}"))
    };
    let created = position(&|i| i["kind"] == "created" && i["to"] == "in_process", "creation");
    let debit = position(&|i| i["kind"] == "journal" && i["purpose"] == "debit", "debit journal");
    let submitted = position(&|i| i["kind"] == "upstream_submission", "upstream submission");
    let polled = position(&|i| i["kind"] == "upstream_poll" && i["to"] == "failed", "poll that failed it");
    let refund = position(&|i| i["kind"] == "operator_action" && i["to"] == "refunded", "operator refund");
    let refund_journal = position(&|i| i["kind"] == "journal" && i["purpose"] == "refund", "refund journal");
    let failed_attempt = position(&|i| i["kind"] == "delivery_attempt" && i["http_status"] == 503, "failed attempt");
    let event_id = &items[failed_attempt]["event_id"];
    let delivered = position(
        &|i| {
            i["kind"] == "delivery_attempt"
                && i["event_id"] == *event_id
                && i["http_status"].as_u64().is_some_and(|s| (200..300).contains(&s))
        },
        "the same event delivered",
    );
    assert!(created <= debit && debit < submitted && submitted < polled && polled < refund, "{timeline:#}");
    assert!(refund < refund_journal && failed_attempt < delivered, "{timeline:#}");
    assert_eq!(items[refund]["reason"], "customer asked");
    assert_eq!(items[refund]["source"], "admin");
    let postings = items[debit]["postings"].as_array().unwrap();
    assert!(postings.len() >= 2, "{postings:?}");
    assert_eq!(timeline["transaction"]["status"], "refunded");
    assert_eq!(timeline["transaction"]["mobile"], MOBILE);
}

/// The plan of every filter alone reads no whole transaction table. The
/// data here is small: PostgreSQL plans with `enable_seqscan` off (its
/// planner rightly prefers a sequential scan of a few rows), SQLite as it
/// runs (it keeps no statistics, so its plans do not depend on the data).
/// `payrail-bench --plans` checks the same on 1,000,000 rows of each kind.
async fn every_filter_is_read_through_an_index(engine: Engine) {
    use payrail::domain::{BillStatus, DmtStatus, Paise, RegistrationId, Timestamp, TxnKind};
    use payrail::services::search::by_state;
    use payrail::store::search::{full_scan, kind_applies, SearchCursor, SearchFilter, StatusFilter};

    let app = spawn_app_with(engine, AppOptions::default()).await;
    data_set(&app).await;
    let none = SearchFilter::default;
    let at = Timestamp::from_unix(1_772_000_000);
    let cases = [
        SearchFilter { kind: Some(TxnKind::Dmt), ..none() },
        SearchFilter { partner: Some(RegistrationId::new(1001)), ..none() },
        SearchFilter { reference: Some("A-D1".into()), ..none() },
        SearchFilter { ackno: Some(12), ..none() },
        SearchFilter { txnid: Some(12), ..none() },
        SearchFilter { utr: Some("UTR1".into()), ..none() },
        SearchFilter { mobile: Some(MOBILE.into()), ..none() },
        SearchFilter { account: Some("50000000001".into()), ..none() },
        SearchFilter { canumber: Some("CA1".into()), ..none() },
        SearchFilter { status: Some(StatusFilter { dmt: vec![DmtStatus::OnHold], bills: vec![] }), ..none() },
        SearchFilter {
            status: Some(StatusFilter {
                dmt: vec![DmtStatus::Success, DmtStatus::Failed],
                bills: vec![BillStatus::Pending, BillStatus::Success],
            }),
            ..none()
        },
        SearchFilter { from: Some(at), ..none() },
        SearchFilter { to: Some(at), ..none() },
        SearchFilter { from: Some(at), to: Some(at.plus_secs(3_600)), ..none() },
        SearchFilter { min_amount: Some(Paise::new(50_000)), ..none() },
        SearchFilter { max_amount: Some(Paise::new(10_000)), ..none() },
    ];
    let cursor = SearchCursor { created_at: at.unix(), kind: TxnKind::Dmt, id: 5 };
    let mut planned = 0;
    for filter in &cases {
        let unfiltered = *filter == SearchFilter { kind: filter.kind, ..none() };
        for kind in [TxnKind::Dmt, TxnKind::Bbps] {
            for part in by_state(filter, kind).into_iter().filter(|p| kind_applies(p, kind)) {
                for after in [None, Some(cursor)] {
                    let plan = app
                        .store
                        .search_plan(SearchPage { filter: &part, kind, after, limit: 51 }, true)
                        .await
                        .unwrap();
                    assert!(!plan.is_empty());
                    assert_eq!(full_scan(&plan, unfiltered), None, "{part:?} on {kind:?}: {plan:#?}");
                    planned += 1;
                }
            }
        }
    }
    assert!(planned >= 40, "{planned} plans");
}

/// The code blocks of docs/API.md's operator search section, in order.
fn doc_blocks() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let section = doc.split("\n## ").find(|s| s.starts_with("Operator search and timelines")).unwrap();
    section.split("```").skip(1).step_by(2).map(|b| b.trim_start_matches("json").trim().to_owned()).collect()
}

async fn the_documented_search_is_answered_as_docs_api_shows(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let partner = app.add_partner(true, &[]).await;
    assert_eq!(partner.name(), "AOP-1001");
    import(
        &app,
        "dmt",
        &partner,
        &[
            "DOC-1,1500,50000000001,success,UTR77,2026-03-01 10:00:00".to_owned(),
            "DOC-2,250.50,50000000002,failed,,2026-03-01 09:00:00".to_owned(),
        ],
    );
    let blocks = doc_blocks();
    let request = blocks[0].strip_prefix("GET ").unwrap();
    let answer = app.admin(request, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    let ackno = json["transactions"][0]["ackno"].as_i64().unwrap().to_string();
    let cursor = json["next_cursor"].as_str().unwrap().to_owned();
    // The store numbers transfers with its own secret: the doc's number stands in.
    let shown = answer.body.replace(&cursor, "MTc3MjMzOTQwMDpkbXQ6NDA3MTMzMTE4").replace(&ackno, "407133118");
    assert_eq!(shown, blocks[1], "docs/API.md shows the answer byte for byte");
    let next = app.admin(&format!("{request}&cursor={cursor}"), None).await.json();
    assert_eq!(next["transactions"][0]["reference_id"], "DOC-2");
    assert_eq!(next["next_cursor"], Value::Null);

    let csv = app.admin(&request.replace("&limit=1", "&format=csv"), None).await;
    let lines: Vec<String> = csv.body.lines().take(2).map(|l| l.replace(&ackno, "407133118")).collect();
    assert_eq!(lines.join("\n"), blocks[2], "docs/API.md shows the CSV's first lines");
}
