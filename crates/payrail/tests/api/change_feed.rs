//! The change feed, `POST /api/AOP/Changes` (issue 15, item 2), on both
//! engines: with eight writers making and settling transfers at once, a
//! reader paging with random page sizes meanwhile collects every change
//! exactly once, each transfer's changes in its history's order, and none
//! of another partner's.

use std::collections::{HashMap, HashSet};

use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{eventually, spawn_app, Engine, TestApp, TestPartner};
use crate::journey::{assert_refused, assert_verify_clean};

both_engines!(
    concurrent_writers_and_a_paging_reader_see_every_change_once_in_history_order,
    the_feed_refuses_a_bad_cursor_or_limit_and_waits_at_its_end,
);

const WRITERS: usize = 8;
const TRANSFERS_EACH: usize = 6;

/// Makes a transfer through the operator API and settles it: in process,
/// sent to the bank, paid. Its reference.
async fn make_and_settle(app: &TestApp, partner: &TestPartner, reference: String) -> String {
    let dmt = json!({"registration_id": partner.name(), "reference_id": reference, "amount": "1500",
                     "account": "60100200300"});
    let made = app.admin("/admin/v1/dmt", Some(dmt)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let ackno = made.json()["ackno"].as_i64().expect("an ackno");
    for step in [json!({"to": "sent_to_bank"}), json!({"to": "success", "utr": format!("UTR{ackno}")})] {
        let moved = app.admin(&format!("/admin/v1/dmt/{ackno}/transition"), Some(step)).await;
        assert_eq!(moved.status, 200, "{}", moved.body);
    }
    reference
}

/// One page: its changes as (reference, status code, event id) and the next cursor.
async fn page(app: &TestApp, partner: &TestPartner, cursor: Option<&str>, limit: u32) -> (Vec<Value>, String) {
    let mut fields = json!({"limit": limit});
    if let Some(cursor) = cursor {
        fields["cursor"] = json!(cursor);
    }
    let answer = app.call("/api/AOP/Changes", partner, fields).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!((&body["status"], &body["response_code"]), (&json!(true), &json!(1)), "{body}");
    let changes = body["changes"].as_array().expect("changes").clone();
    (changes, body["next_cursor"].as_str().expect("a cursor").to_owned())
}

async fn concurrent_writers_and_a_paging_reader_see_every_change_once_in_history_order(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, other) = (app.add_partner(true, &[]).await, app.add_partner(true, &[]).await);
    make_and_settle(&app, &other, "OTHER-1".into()).await;
    let writers = (0..WRITERS).map(|w| {
        let (app, a) = (&app, a.clone());
        async move {
            for n in 0..TRANSFERS_EACH {
                make_and_settle(app, &a, format!("FEED-{w}-{n}")).await;
            }
        }
    });
    let done = std::sync::atomic::AtomicBool::new(false);
    let reader = async {
        // A fixed seed: the page sizes vary, the run is the same every time.
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let (changes, next) = page(&app, &a, cursor.as_deref(), rng.gen_range(1..=7)).await;
            seen.extend(changes);
            cursor = Some(next);
            tokio::task::yield_now().await;
        }
        (seen, cursor)
    };
    let writing = async {
        futures_util::future::join_all(writers).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let ((mut seen, cursor), ()) = tokio::join!(reader, writing);
    // The writers are done; what their last transactions wrote is readable
    // once they have ended (PostgreSQL: once no older transaction runs).
    let expected = WRITERS * TRANSFERS_EACH * 3;
    let (mut cursor, deadline) = (cursor, std::time::Instant::now() + std::time::Duration::from_secs(15));
    loop {
        let (changes, next) = page(&app, &a, cursor.as_deref(), 500).await;
        if changes.is_empty() {
            if seen.len() >= expected || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        seen.extend(changes);
        cursor = Some(next);
    }
    let keys: Vec<(String, String)> = seen
        .iter()
        .map(|c| (c["referenceid"].as_str().unwrap_or("").to_owned(), c["status"].as_str().unwrap_or("").to_owned()))
        .collect();
    let unique: HashSet<&(String, String)> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "no change repeated");
    assert_eq!(keys.len(), expected, "every change once: {keys:?}");
    assert!(keys.iter().all(|(r, _)| r.starts_with("FEED-")), "only the partner's own");
    let mut by_reference: HashMap<&str, Vec<&str>> = HashMap::new();
    for (reference, status) in &keys {
        by_reference.entry(reference).or_default().push(status);
    }
    for (reference, statuses) in by_reference {
        assert_eq!(statuses, ["2", "3", "1"], "{reference}: in process, sent to bank, paid, in that order");
    }
    assert!(seen.iter().all(|c| c["kind"] == "dmt" && c["at"].as_str().is_some_and(|t| t.len() == 19)));
    // The eight writers' history rows form one unbroken chain (issue 15, item 6).
    assert_verify_clean(&app);
}

async fn the_feed_refuses_a_bad_cursor_or_limit_and_waits_at_its_end(engine: Engine) {
    let app = spawn_app(engine).await;
    let a = app.add_partner(true, &[]).await;
    let (empty, start) = page(&app, &a, None, 10).await;
    assert!(empty.is_empty());
    make_and_settle(&app, &a, "END-1".into()).await;
    let (changes, next) = eventually(15, "the changes readable", || {
        let (app, a, start) = (&app, &a, start.clone());
        async move {
            let (changes, next) = page(app, a, Some(&start), 10).await;
            (changes.len() == 3).then_some((changes, next))
        }
    })
    .await;
    assert_eq!(changes[2]["status"], "1", "{changes:?}");
    let (none, same) = page(&app, &a, Some(&next), 10).await;
    assert!(none.is_empty() && same == next, "at the end the cursor stays where it is");
    for (fields, says) in [
        (json!({"cursor": "nonsense"}), "cursor is not one this feed gave"),
        (json!({"cursor": "1.-2"}), "cursor is not one this feed gave"),
        (json!({"limit": 0}), "limit must be a number from 1 to 500"),
        (json!({"limit": 501}), "limit must be a number from 1 to 500"),
        (json!({"limit": "ten"}), "limit must be a number from 1 to 500"),
    ] {
        assert_refused(&app.call("/api/AOP/Changes", &a, fields).await, 400, 8, says);
    }
}
