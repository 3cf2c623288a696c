//! The tamper-evident history (issue 15, item 6): every status-history row
//! and every journal is a link of its partner's hash chain. `payrail verify`
//! names the first broken link when a row is changed or removed behind
//! payrail's back, and `payrail verify --anchor FILE` catches a chain cut
//! short even when its head was rewound to match.

use payrail::store::chain::{LinkCursor, LinkTable};

use crate::both_engines;
use crate::helpers::{payrail, spawn_app, text, Engine, TestApp, TestPartner};
use crate::journey::{assert_verify_clean, top_up};
use crate::settlement::raw_sql;
use crate::upstream_sandbox::pay;

both_engines!(
    verify_names_a_changed_history_row_a_changed_journal_amount_and_a_deleted_row,
    an_anchor_catches_a_chain_cut_short_with_its_head_rewound,
    concurrent_payments_of_several_partners_leave_every_chain_whole,
    an_import_larger_than_a_sealing_step_is_chained_whole,
);

/// A partner with a few bill payments and top-ups: history rows and journals.
async fn busy_partner(app: &TestApp) -> TestPartner {
    let partner = app.add_partner(true, &[]).await;
    top_up(app, &partner, "5000").await;
    for n in 0..3 {
        pay(app, &partner, &format!("15001234567{n}"), &format!("CHAIN-BILL-{n}")).await;
    }
    top_up(app, &partner, "100").await;
    partner
}

/// The ids of `table`'s links in the partner's chain, in chain order.
async fn links(app: &TestApp, partner: &TestPartner, table: LinkTable) -> Vec<i64> {
    let all = app.store.chain_links(table, LinkCursor::default(), 20_000).await.unwrap_or_else(|e| panic!("{e}"));
    all.iter().filter(|link| link.partner == partner.id.number()).map(|link| link.row.id).collect()
}

/// Runs `payrail verify` (with `args`), expecting it to fail; its report.
fn broken(app: &TestApp, args: &[&str]) -> String {
    let out = payrail(app, &[&["verify"], args].concat());
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{report}");
    report
}

async fn verify_names_a_changed_history_row_a_changed_journal_amount_and_a_deleted_row(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = busy_partner(&app).await;
    let other = busy_partner(&app).await;
    let history = links(&app, &partner, LinkTable::History).await;
    let journals = links(&app, &partner, LinkTable::Journal).await;
    assert_eq!((history.len(), journals.len()), (3, 5), "three payments' first rows; two top-ups and three debits");
    assert_eq!(links(&app, &other, LinkTable::History).await.len(), 3, "each partner has its own chain");
    assert!(app.store.unsealed_links(10).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    assert_verify_clean(&app);

    // An old history row changed: its own link breaks, named.
    let old = history[0];
    let sql = format!("UPDATE status_history SET at = at + 1 WHERE id = {old}");
    raw_sql(&app, &sql, &sql).await;
    let report = broken(&app, &[]);
    assert!(report.contains(&format!("status_history row {old} (AOP-{}'s chain", partner.id.number())), "{report}");
    assert!(report.contains("was changed after it was written"), "{report}");
    assert!(!report.contains(&format!("AOP-{}'s chain", other.id.number())), "the other chain is intact: {report}");
    let sql = format!("UPDATE status_history SET at = at - 1 WHERE id = {old}");
    raw_sql(&app, &sql, &sql).await;
    assert_verify_clean(&app);

    // A journal's amount changed (both postings, so the ledger still sums to zero).
    let journal = journals[1];
    let sql = format!(
        "UPDATE postings SET amount = CASE WHEN amount < 0 THEN amount - 100 ELSE amount + 100 END \
         WHERE journal_id = {journal}"
    );
    raw_sql(&app, &sql, &sql).await;
    let report = broken(&app, &[]);
    assert!(report.contains(&format!("journal {journal} (AOP-")), "{report}");
    let sql = format!(
        "UPDATE postings SET amount = CASE WHEN amount < 0 THEN amount + 100 ELSE amount - 100 END \
         WHERE journal_id = {journal}"
    );
    raw_sql(&app, &sql, &sql).await;
    assert_verify_clean(&app);

    // A history row deleted: the gap is named by the row that followed it.
    let gone = history[1];
    let sql = format!("DELETE FROM status_history WHERE id = {gone}");
    raw_sql(&app, &sql, &sql).await;
    let report = broken(&app, &[]);
    assert!(report.contains(&format!("status_history row {gone} (link")), "{report}");
    assert!(report.contains("is missing"), "{report}");

    // The operator API says the same.
    let api = app.admin("/admin/v1/verify", None).await.json();
    assert_eq!(api["ok"], false, "{api}");
    assert!(api["violations"].to_string().contains(&format!("status_history row {gone}")), "{api}");
}

async fn an_anchor_catches_a_chain_cut_short_with_its_head_rewound(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = busy_partner(&app).await;
    let out = payrail(&app, &["anchor"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let anchor: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let number = partner.id.number();
    let chain = anchor["chains"]
        .as_array()
        .and_then(|chains| chains.iter().find(|c| c["partner"] == number))
        .unwrap_or_else(|| panic!("no chain of the partner: {anchor}"));
    assert_eq!(chain["link"], 8, "{anchor}");
    let file = app.data_dir.path().join("anchor.json");
    std::fs::write(&file, &out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let file = file.to_str().unwrap_or_else(|| panic!("path"));

    // Later writes extend the chain past the anchor: still verified.
    top_up(&app, &partner, "7").await;
    let out = payrail(&app, &["verify", "--anchor", file]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("each holds its head of the anchor"), "{}", text(&out.stdout));

    // Cut the chain back to before the anchored head: remove the last two
    // top-ups (links 9 and 8), give their money back, rewind the head to
    // link 7. Consistent enough to pass a verify without the anchor…
    let journals = links(&app, &partner, LinkTable::Journal).await;
    let [.., seventh, eighth, ninth] = journals[..] else { panic!("journals: {journals:?}") };
    let sql = format!(
        "DELETE FROM postings WHERE journal_id IN ({eighth}, {ninth}); \
         DELETE FROM journals WHERE id IN ({eighth}, {ninth}); \
         UPDATE wallets SET balance = balance - 10700 WHERE partner_id = {number}; \
         UPDATE chain_heads SET seq = 7, last = 'journal:{seventh}', \
         hash = (SELECT chain_hash FROM journals WHERE id = {seventh}) WHERE partner_id = {number};"
    );
    raw_sql(&app, &sql, &sql).await;
    assert_verify_clean(&app);
    // …but not the anchor.
    let report = broken(&app, &["--anchor", file]);
    assert!(report.contains(&format!("AOP-{number}'s chain ends at link 7, before link 8")), "{report}");

    // An anchor that is not one is refused, not taken as empty.
    std::fs::write(app.data_dir.path().join("bad.json"), "{}").unwrap_or_else(|e| panic!("{e}"));
    let bad = app.data_dir.path().join("bad.json");
    let out = payrail(&app, &["verify", "--anchor", bad.to_str().unwrap_or_else(|| panic!("path"))]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not an anchor"), "{}", text(&out.stderr));
}

async fn concurrent_payments_of_several_partners_leave_every_chain_whole(engine: Engine) {
    let app = spawn_app(engine).await;
    let mut partners = Vec::new();
    for _ in 0..3 {
        let partner = app.add_partner(true, &[]).await;
        top_up(&app, &partner, "50000").await;
        partners.push(partner);
    }
    // Eight writers at once, each paying bills and topping up across the
    // three partners: bill payments share group commits, top-ups do not.
    let writers = (0..8).map(|w| {
        let (app, partners) = (&app, &partners);
        async move {
            for n in 0..6 {
                let partner = &partners[(w + n) % partners.len()];
                if n % 3 == 2 {
                    top_up(app, partner, "1").await;
                } else {
                    pay(app, partner, &format!("1500{w:04}{n:04}"), &format!("CHAIN-{w}-{n}")).await;
                }
            }
        }
    });
    futures_util::future::join_all(writers).await;
    assert!(app.store.unsealed_links(10).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    let heads = app.store.chain_heads().await.unwrap_or_else(|e| panic!("{e}"));
    let mut total = 0;
    for partner in &partners {
        let history = links(&app, partner, LinkTable::History).await.len();
        let journals = links(&app, partner, LinkTable::Journal).await.len();
        let head = heads.iter().find(|h| h.partner == partner.id.number()).unwrap_or_else(|| panic!("{heads:?}"));
        assert_eq!(head.seq as usize, history + journals, "{head:?}");
        total += history + journals;
    }
    // 32 payments (a history row and a journal each), 16 top-ups, 3 fundings.
    assert_eq!(total, 32 * 2 + 16 + 3);
    assert_verify_clean(&app);
}

/// An import writes all its records in one transaction, more history rows
/// than one sealing step takes (10,000): every one is chained before the
/// commit. (PostgreSQL sealed one step only, leaving the rest without a
/// hash until the next start.)
async fn an_import_larger_than_a_sealing_step_is_chained_whole(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let lines: Vec<String> =
        (0..10_050).map(|n| format!("BIG-{n},100,50000000001,success,UTR{n},2026-03-01 10:00:00")).collect();
    crate::search::import(&app, "dmt", &partner, &lines);
    assert_eq!(links(&app, &partner, LinkTable::History).await.len(), 10_050, "one history link per transfer");
    assert_verify_clean(&app);
}
