//! Operator accounts, roles and personal tokens on every `/admin/v1/`
//! route, who did what (history and audit log), and the `payrail operator`
//! and `payrail audit` commands.

use std::io::Write as _;
use std::process::{Command, Stdio};

use payrail::domain::operator::Role;
use payrail::http::admin_auth::role_for;
use reqwest::Method;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{payrail, spawn_app_with, text, Answer, AppOptions, Engine, TestApp, ADMIN_TOKEN};

both_engines!(
    every_admin_route_answers_each_kind_of_caller_as_its_role_says,
    an_operators_transition_names_the_operator_in_the_history_and_the_audit_log,
    the_operator_commands_print_one_json_document_each_and_are_audited,
    a_disabled_operator_or_a_revoked_token_is_refused_at_once,
    the_demo_adds_an_admin_operator_and_prints_its_login,
);

/// Runs `payrail ARGS…` and parses its standard output as one JSON document.
pub(crate) fn json_command(app: &TestApp, args: &[&str]) -> Value {
    let output = payrail(app, args);
    assert!(output.status.success(), "{args:?}: {}{}", text(&output.stdout), text(&output.stderr));
    serde_json::from_str(&text(&output.stdout)).unwrap_or_else(|e| {
        panic!("{args:?} printed more or less than one JSON document ({e}): {}", text(&output.stdout))
    })
}

/// Runs `payrail ARGS…` with `input` on standard input.
fn with_stdin(app: &TestApp, args: &[&str], input: &str) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.arg("--data-dir").arg(app.data_dir.path()).args(args);
    command.env("PAYRAIL_MASTER_KEY", &app.master_key_hex).env_remove("PAYRAIL_DATABASE_URL");
    if let Some(url) = &app.database_url {
        command.env("PAYRAIL_DATABASE_URL", url);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    child.stdin.take().map(|mut s| s.write_all(input.as_bytes())).transpose().unwrap_or_else(|e| panic!("{e}"));
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

/// Adds an operator with `role` and makes a token for it (extra token args
/// after); the token.
pub(crate) fn operator_with_token(app: &TestApp, email: &str, role: &str, token_args: &[&str]) -> String {
    json_command(app, &["operator", "add", "--email", email, "--role", role, "--json"]);
    let mut args = vec!["operator", "token", "create", "--email", email, "--json"];
    args.extend_from_slice(token_args);
    json_command(app, &args)["token"].as_str().expect("a token").to_owned()
}

/// A call to the operator API with `token` (none: no `Authorization`).
pub(crate) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    Answer { status, content_type, retry_after: None, body: response.text().await.expect("a readable body") }
}

/// Everything an operator route can change, as the bootstrap token reads it.
async fn snapshot(app: &TestApp, partner: &str, ackno: i64, txnid: i64) -> Vec<String> {
    let mut seen = Vec::new();
    for path in [
        format!("/admin/v1/dmt/{ackno}"),
        format!("/admin/v1/bbps/{txnid}"),
        format!("/admin/v1/partners/{partner}/callback"),
        format!("/admin/v1/partners/{partner}/wallet"),
        format!("/admin/v1/partners/{partner}/fee-plans"),
        "/admin/v1/events".to_owned(),
        "/admin/v1/partners".to_owned(),
        "/admin/v1/audit?limit=500".to_owned(),
    ] {
        let answer = call(app, Method::GET, &path, Some(ADMIN_TOKEN), None).await;
        seen.push(format!("{path} {} {}", answer.status, answer.body));
    }
    seen.push(text(&payrail(app, &["operator", "list", "--json"]).stdout));
    seen
}

/// The callers of the table test: a name, a token, and the role it acts
/// with (`None`: refused as unauthenticated whatever the route).
struct Caller {
    name: &'static str,
    token: Option<String>,
    role: Option<Role>,
}

async fn every_admin_route_answers_each_kind_of_caller_as_its_role_says(engine: Engine) {
    // No workers: nothing changes between two snapshots but what a call does.
    let app = spawn_app_with(engine, AppOptions { no_workers: true, ..AppOptions::default() }.on_manual_clock()).await;
    let partner = app.add_partner(false, &[]).await.name();
    let set = json!({"url": "https://partner.example/cb"});
    assert_eq!(
        app.admin_with(Method::PUT, &format!("/admin/v1/partners/{partner}/callback"), Some(set)).await.status,
        200
    );
    let dmt = json!({"registration_id": partner, "reference_id": "T-1", "amount": "5000", "account": "50100200300"});
    let ackno = app.admin("/admin/v1/dmt", Some(dmt)).await.json()["ackno"].as_i64().expect("an ackno");
    let bill = json!({"registration_id": partner, "reference_id": "B-1", "operator_name": "Bajaj Finance",
                      "ca_number": "12345", "amount": "100"});
    let txnid = app.admin("/admin/v1/bbps", Some(bill)).await.json()["txnid"].as_i64().expect("a txnid");
    let moved = app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(json!({"to": "sent_to_bank"}))).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let events = app.admin("/admin/v1/events", None).await.json();
    let event = events["events"][0]["id"].as_i64().unwrap_or(1);

    let viewer = operator_with_token(&app, "viewer@example.in", "viewer", &[]);
    let operator = operator_with_token(&app, "operator@example.in", "operator", &[]);
    let admin = operator_with_token(&app, "admin@example.in", "admin", &[]);
    let disabled = operator_with_token(&app, "gone@example.in", "admin", &[]);
    json_command(&app, &["operator", "disable", "--email", "gone@example.in", "--json"]);
    let revoked = operator_with_token(&app, "revoked@example.in", "admin", &[]);
    let id = revoked.split('_').nth(1).expect("an id").to_owned();
    json_command(&app, &["operator", "token", "revoke", &id, "--json"]);
    let expired = operator_with_token(&app, "expired@example.in", "admin", &["--expires", "1"]);
    app.clock().advance(std::time::Duration::from_secs(2 * 86_400));
    let callers = [
        Caller { name: "no token", token: None, role: None },
        Caller { name: "wrong token", token: Some("prt_0000000000000000_".to_owned() + &"0".repeat(64)), role: None },
        Caller { name: "disabled operator", token: Some(disabled), role: None },
        Caller { name: "revoked token", token: Some(revoked), role: None },
        Caller { name: "expired token", token: Some(expired), role: None },
        Caller { name: "viewer", token: Some(viewer), role: Some(Role::Viewer) },
        Caller { name: "operator", token: Some(operator), role: Some(Role::Operator) },
        Caller { name: "admin", token: Some(admin), role: Some(Role::Admin) },
        Caller { name: "bootstrap", token: Some(ADMIN_TOKEN.to_owned()), role: Some(Role::Admin) },
    ];

    let paths = payrail::http::admin_paths();
    assert!(paths.len() >= 19, "the router's admin paths: {paths:?}");
    let mut routes = 0;
    let mut table = String::new();
    for pattern in &paths {
        let path = pattern
            .replace("{ackno}", &ackno.to_string())
            .replace("{txnid}", &txnid.to_string())
            .replace("/partners/{id}", &format!("/partners/{partner}"))
            .replace("/events/{id}", &format!("/events/{event}"));
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
            // A route answers 401 to no token (before anything else); 405 is no route.
            let probe = call(&app, method.clone(), &path, None, None).await;
            if probe.status == 405 {
                continue;
            }
            assert_eq!(probe.status, 401, "{method} {pattern}: {}", probe.body);
            let needs = role_for(&method, pattern)
                .unwrap_or_else(|| panic!("{method} {pattern} has no role in ROUTE_ROLES (http/admin_auth.rs)"));
            routes += 1;
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let before = snapshot(&app, &partner, ackno, txnid).await;
            let mut row = format!("{:<6} {pattern:<46} {:<8}", method.as_str(), needs.as_str());
            // The refused callers first, then the snapshot; then the allowed ones.
            for allowed in [false, true] {
                for caller in &callers {
                    let may = caller.role.is_some_and(|role| role >= needs);
                    if may != allowed {
                        continue;
                    }
                    let answer = call(&app, method.clone(), &path, caller.token.as_deref(), body.as_ref()).await;
                    let expected = match caller.role {
                        None => Some(401),
                        Some(role) if role < needs => Some(403),
                        Some(_) => None,
                    };
                    match expected {
                        Some(status) => {
                            assert_eq!(answer.status, status, "{} on {method} {pattern}: {}", caller.name, answer.body);
                            let refused = answer.json();
                            assert_eq!(refused["status"], false, "{}", answer.body);
                            assert_eq!(refused["response_code"], 11, "{}", answer.body);
                        }
                        None => assert!(
                            ![401, 403, 405].contains(&answer.status),
                            "{} on {method} {pattern}: {} {}",
                            caller.name,
                            answer.status,
                            answer.body
                        ),
                    }
                    row.push_str(&format!(" {}={}", caller.name.replace(' ', "_"), answer.status));
                }
                if !allowed && method != Method::GET {
                    let after = snapshot(&app, &partner, ackno, txnid).await;
                    assert!(before == after, "a refused {method} {pattern} changed something");
                }
            }
            table.push_str(&row);
            table.push('\n');
        }
    }
    eprintln!("{table}");
    let tabled = payrail::http::admin_auth::ROUTE_ROLES.iter().filter(|r| r.path.starts_with("/admin/")).count();
    assert_eq!(routes, tabled, "every route of the table is routed, and every route is in the table:\n{table}");
}

async fn an_operators_transition_names_the_operator_in_the_history_and_the_audit_log(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let partner = app.add_partner(false, &[]).await.name();
    let token = operator_with_token(&app, "Asha@Example.in", "operator", &[]);
    let dmt = json!({"registration_id": partner, "reference_id": "T-1", "amount": "5000", "account": "50100200300"});
    let ackno = app.admin("/admin/v1/dmt", Some(dmt)).await.json()["ackno"].as_i64().expect("an ackno");
    let start = app.time.now();
    app.clock().advance(std::time::Duration::from_secs(3600));
    let path = format!("/admin/v1/dmt/{ackno}/transition");
    let moved = call(&app, Method::POST, &path, Some(&token), Some(&json!({"to": "sent_to_bank"}))).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let history = moved.json()["history"].clone();
    let sources: Vec<&str> =
        history.as_array().expect("a history").iter().filter_map(|h| h["source"].as_str()).collect();
    assert_eq!(sources, ["admin", "operator:asha@example.in"]);
    // A move the state machine refuses leaves no audit entry (the entry commits with the change).
    let refused = call(&app, Method::POST, &path, Some(&token), Some(&json!({"to": "refunded"}))).await;
    assert_eq!(refused.status, 409, "{}", refused.body);

    let audit = |query: String| {
        let app = &app;
        async move {
            let answer = call(app, Method::GET, &format!("/admin/v1/audit{query}"), Some(ADMIN_TOKEN), None).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            answer.json()
        }
    };
    let mine = audit("?operator=asha@example.in".into()).await;
    let entries = mine["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{mine}");
    let entry = &entries[0];
    assert_eq!(
        (&entry["operator"], &entry["action"], &entry["target"]),
        (&json!("asha@example.in"), &json!("dmt.transition"), &json!(format!("dmt:{ackno}")))
    );
    assert_eq!((&entry["before"]["status"], &entry["after"]["status"]), (&json!("in_process"), &json!("sent_to_bank")));
    let raw = call(&app, Method::GET, "/admin/v1/audit?operator=asha@example.in", Some(ADMIN_TOKEN), None).await.body;
    let at = |key: &str| raw.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {raw}"));
    let order = ["entries", "id", "at", "operator", "action", "target", "before", "after", "next_cursor"];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "fields in order {order:?}: {raw}");

    let about = audit(format!("?target=dmt:{ackno}")).await;
    let who: Vec<&str> =
        about["entries"].as_array().expect("entries").iter().filter_map(|e| e["operator"].as_str()).collect();
    assert_eq!(who, ["asha@example.in", "bootstrap"], "newest first: {about}");
    let later = (start.plus_secs(1800)).to_ist_string();
    let since = audit(format!("?target=dmt:{ackno}&from={}", later.replace(' ', "%20"))).await;
    assert_eq!(since["entries"].as_array().map(Vec::len), Some(1), "{since}");
    let until = audit(format!("?target=dmt:{ackno}&to={}", later.replace(' ', "%20"))).await;
    assert_eq!(until["entries"][0]["operator"], "bootstrap", "{until}");
    assert_eq!(until["entries"].as_array().map(Vec::len), Some(1), "{until}");

    let first = audit(format!("?target=dmt:{ackno}&limit=1")).await;
    let cursor = first["next_cursor"].as_str().expect("a cursor on a full page").to_owned();
    let second = audit(format!("?target=dmt:{ackno}&limit=1&cursor={cursor}")).await;
    assert_eq!(second["entries"][0]["operator"], "bootstrap", "{second}");
    let last = audit(format!("?target=dmt:{ackno}&limit=1&cursor={}", second["entries"][0]["id"])).await;
    assert_eq!((last["entries"].as_array().map(Vec::len), &last["next_cursor"]), (Some(0), &Value::Null), "{last}");
    for bad in ["?limit=0", "?cursor=x", "?from=yesterday", "?operator="] {
        let refused = call(&app, Method::GET, &format!("/admin/v1/audit{bad}"), Some(ADMIN_TOKEN), None).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
        assert_eq!(refused.json()["response_code"], 8, "{}", refused.body);
    }

    // The transaction's timeline shows the change (named by the operator) and
    // the audit entries about it, in time order; a viewer may read it.
    let viewer = operator_with_token(&app, "viewer@example.in", "viewer", &[]);
    let timeline = call(&app, Method::GET, &format!("/admin/v1/dmt/{ackno}/timeline"), Some(&viewer), None).await;
    assert_eq!(timeline.status, 200, "{}", timeline.body);
    let items = timeline.json()["timeline"].as_array().cloned().expect("a timeline");
    let kinds: Vec<(String, String)> = items
        .iter()
        .filter(|i| matches!(i["kind"].as_str(), Some("operator_action" | "audit")))
        .map(|i| {
            let who = i["source"].as_str().or(i["actor"].as_str()).unwrap_or_default();
            (i["kind"].as_str().unwrap_or_default().to_owned(), who.to_owned())
        })
        .collect();
    let pairs: Vec<(&str, &str)> = kinds.iter().map(|(k, w)| (k.as_str(), w.as_str())).collect();
    assert_eq!(
        pairs,
        [("audit", "bootstrap"), ("operator_action", "operator:asha@example.in"), ("audit", "asha@example.in")],
        "{}",
        timeline.body
    );
    let transition = items.iter().find(|i| i["action"] == "dmt.transition").expect("the audit item");
    assert_eq!(transition["after"]["status"], "sent_to_bank", "{transition}");

    let listed = json_command(&app, &["audit", "list", "--operator", "ASHA@example.in", "--json"]);
    assert_eq!(listed["entries"][0]["action"], "dmt.transition", "{listed}");
    assert_eq!(listed["entries"].as_array().map(Vec::len), Some(1), "{listed}");
}

async fn the_operator_commands_print_one_json_document_each_and_are_audited(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let added = with_stdin(
        &app,
        &["operator", "add", "--email", "Ravi@Example.in", "--role", "viewer", "--password-stdin", "--json"],
        "a long enough password\n",
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    let added: Value = serde_json::from_str(&text(&added.stdout)).expect("one JSON document");
    assert_eq!(
        (&added["email"], &added["role"], &added["disabled"]),
        (&json!("ravi@example.in"), &json!("viewer"), &json!(false))
    );
    assert!(added.get("password").is_none(), "a password given is not printed: {added}");
    let generated =
        json_command(&app, &["operator", "add", "--email", "meera@example.in", "--role", "admin", "--json"]);
    assert!(generated["password"].as_str().is_some_and(|p| p.len() >= 12), "{generated}");

    let twice = payrail(&app, &["operator", "add", "--email", "RAVI@example.in", "--role", "admin"]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(text(&twice.stderr).contains("already exists"), "{}", text(&twice.stderr));
    let short = with_stdin(
        &app,
        &["operator", "add", "--email", "x@example.in", "--role", "viewer", "--password-stdin"],
        "short\n",
    );
    assert_eq!(short.status.code(), Some(1));
    assert!(text(&short.stderr).contains("12 to 256 characters"), "{}", text(&short.stderr));
    let bad_role = payrail(&app, &["operator", "add", "--email", "y@example.in", "--role", "root"]);
    assert!(text(&bad_role.stderr).contains("--role must be admin, operator or viewer"), "{}", text(&bad_role.stderr));
    let nobody = payrail(&app, &["operator", "disable", "--email", "nobody@example.in"]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(text(&nobody.stderr).contains("no operator with email nobody@example.in"), "{}", text(&nobody.stderr));

    let role =
        json_command(&app, &["operator", "set-role", "--email", "ravi@example.in", "--role", "operator", "--json"]);
    assert_eq!(role["role"], "operator");
    assert_eq!(json_command(&app, &["operator", "disable", "--email", "ravi@example.in", "--json"])["disabled"], true);
    assert_eq!(json_command(&app, &["operator", "enable", "--email", "ravi@example.in", "--json"])["disabled"], false);
    let reset = json_command(&app, &["operator", "reset-password", "--email", "ravi@example.in", "--json"]);
    assert!(reset["password"].as_str().is_some_and(|p| p.len() >= 12), "{reset}");
    let listed = json_command(&app, &["operator", "list", "--json"]);
    let emails: Vec<&str> =
        listed["operators"].as_array().expect("operators").iter().filter_map(|o| o["email"].as_str()).collect();
    assert_eq!(emails, ["meera@example.in", "ravi@example.in"]);

    let created = json_command(
        &app,
        &[
            "operator",
            "token",
            "create",
            "--email",
            "ravi@example.in",
            "--name",
            "laptop",
            "--expires-at",
            "2099-01-01",
            "--json",
        ],
    );
    let token = created["token"].as_str().expect("a token");
    assert!(token.starts_with("prt_") && token.len() == 4 + 16 + 1 + 64, "{created}");
    assert_eq!((&created["name"], &created["expires_at"]), (&json!("laptop"), &json!("2099-01-01 00:00:00")));
    let tokens = json_command(&app, &["operator", "token", "list", "--email", "ravi@example.in", "--json"]);
    assert_eq!(tokens["tokens"][0]["id"], created["id"]);
    assert_eq!(tokens["tokens"][0]["live"], true);
    assert!(!tokens.to_string().contains(token), "the list never shows the token");
    let revoked =
        json_command(&app, &["operator", "token", "revoke", created["id"].as_str().expect("an id"), "--json"]);
    assert_eq!(revoked["live"], false);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let past =
        payrail(&app, &["operator", "token", "create", "--email", "ravi@example.in", "--expires-at", "2001-01-01"]);
    assert!(text(&past.stderr).contains("--expires-at must be in the future"), "{}", text(&past.stderr));
    let unknown = payrail(&app, &["operator", "token", "revoke", "0123456789abcdef"]);
    assert!(text(&unknown.stderr).contains("no token with id 0123456789abcdef"), "{}", text(&unknown.stderr));

    let audit = json_command(&app, &["audit", "list", "--target", "operator:ravi@example.in", "--json"]);
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["operator"].as_str().unwrap_or(""), e["action"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [
            ("cli", "operator.reset_password"),
            ("cli", "operator.enable"),
            ("cli", "operator.disable"),
            ("cli", "operator.set_role"),
            ("cli", "operator.add"),
        ]
    );
    let set_role = &audit["entries"][3];
    assert_eq!((&set_role["before"]["role"], &set_role["after"]["role"]), (&json!("viewer"), &json!("operator")));
    assert!(!audit.to_string().contains("argon2"), "the audit log never holds a password hash");
    let all = json_command(&app, &["audit", "list", "--json"]);
    assert!(all["entries"].as_array().expect("entries").iter().any(|e| e["action"] == "token.revoke"), "{all}");
}

async fn a_disabled_operator_or_a_revoked_token_is_refused_at_once(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default()).await;
    let token = operator_with_token(&app, "kiran@example.in", "viewer", &[]);
    let verify = || call(&app, Method::GET, "/admin/v1/verify", Some(&token), None);
    assert_eq!(verify().await.status, 200);
    json_command(&app, &["operator", "disable", "--email", "kiran@example.in", "--json"]);
    let refused = verify().await;
    assert_eq!((refused.status, refused.json()["message"].clone()), (401, json!("Authentication failed")));
    json_command(&app, &["operator", "enable", "--email", "kiran@example.in", "--json"]);
    assert_eq!(verify().await.status, 200);
    let tampered = format!("{}0", &token[..token.len() - 1]);
    let tampered = if tampered == token { format!("{}1", &token[..token.len() - 1]) } else { tampered };
    assert_eq!(call(&app, Method::GET, "/admin/v1/verify", Some(&tampered), None).await.status, 401);
    let id = token.split('_').nth(1).expect("an id");
    json_command(&app, &["operator", "token", "revoke", id, "--json"]);
    assert_eq!(verify().await.status, 401);
    // A viewer's refusal (403) says which role the route needs.
    let viewer = operator_with_token(&app, "view@example.in", "viewer", &[]);
    let create = json!({"registration_id": "AOP-1001", "reference_id": "T", "amount": "1", "account": "1"});
    let forbidden = call(&app, Method::POST, "/admin/v1/dmt", Some(&viewer), Some(&create)).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert_eq!(forbidden.json()["message"], "Forbidden: this needs the operator role; yours is viewer");
}

async fn the_demo_adds_an_admin_operator_and_prints_its_login(engine: Engine) {
    use std::io::BufRead as _;
    let data_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
    command.args(["serve", "--demo", "--demo-transactions", "5", "--listen", "127.0.0.1:0", "--data-dir"]);
    command.arg(data_dir.path()).env_remove("PAYRAIL_MASTER_KEY").env_remove("PAYRAIL_DATABASE_URL");
    let database = match engine {
        Engine::Postgres => Some(
            crate::helpers::fresh_postgres_database(&crate::helpers::postgres_url().expect("a database URL")).await,
        ),
        Engine::Sqlite => None,
    };
    if let Some(database) = &database {
        command.arg("--database-url").arg(&database.url);
    }
    let child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{e}"));
    let mut server = crate::helpers::Running(child);
    let stdout = server.0.stdout.take().expect("a stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines().map_while(Result::ok);
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let done = line.starts_with("# A personal API token");
            seen.push(line);
            if done {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        seen
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let base = lines.iter().find_map(|l| l.strip_prefix("payrail demo is ready at ")).expect("the ready line");
    let console = format!("# Operator login for the web console at {base}/console/");
    assert!(lines.iter().any(|l| l.starts_with(&console)), "{lines:#?}");
    let login = lines.iter().find_map(|l| l.strip_prefix("#   admin@demo.payrail / ")).expect("the login line");
    let password = login.split_whitespace().next().expect("a password");
    let store = match &database {
        Some(database) => payrail::store::StoreLocation::Postgres(database.url.clone()),
        None => payrail::store::StoreLocation::Sqlite(data_dir.path().to_owned()),
    };
    let store = payrail::store::open(&store).await.unwrap_or_else(|e| panic!("{e:#}"));
    let email = payrail::domain::operator::Email::parse("admin@demo.payrail").expect("an email");
    let account = store.find_operator(&email).await.expect("a store").expect("the demo operator");
    assert_eq!(account.role, Role::Admin);
    assert!(payrail::services::operators::verify_password(password, &account.password_hash), "{login}");
    drop(server);
}
