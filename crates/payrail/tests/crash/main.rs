//! The crash test: the real `payrail` binary serves concurrent bill payments
//! and DMT transfers (remitter, beneficiaries, `TransactionSendOtp`,
//! `Transaction`, and `RefundOtp`/`ClaimRefund` for those that fail at once)
//! through the sandbox upstream, which fails some and returns
//! some, and is killed with SIGKILL at a random moment and restarted, over
//! and over: 20 times on SQLite, 10 on PostgreSQL. Afterwards, with the
//! server up and the sandbox given time to settle (waiting on the condition,
//! not on a guessed time):
//!
//! - every write the server acknowledged is there as acknowledged (same id,
//!   same amount), remitters, beneficiaries and refund claims included;
//! - no failed bill payment is left unrefunded (checked as soon as the
//!   sandbox has decided every payment: failing and refunding a bill are one
//!   transaction, so no lookup may ever show a failed bill unrefunded);
//! - the wallet holds the funding less exactly what the surviving payments
//!   took; `payrail verify` is clean.
//!
//! Randomness only chooses the kill moments, from a seed that is printed
//! (`PAYRAIL_CRASH_SEED=N` repeats it); each loop is killed only after it has
//! acknowledged both kinds of payment, so every draw proves the same thing.
//! `PAYRAIL_CRASH_LOOPS=N` runs N loops on each engine instead.

// Test code panics on what it did not expect, with a message. clippy.toml's
// allow-unwrap/expect-in-tests covers #[test] functions only, not the
// helpers every test of this binary shares, so the binary allows them whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod load;
mod server;
mod sms;
#[path = "../common/temp_database.rs"]
mod temp_database;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};

use load::{Counters, Journal, Kind, Load};
use server::{Engine, Installation, Server};
use sms::SmsInbox;

/// Payments of each kind a loop must have acknowledged before its kill.
const ACKED_PER_LOOP: usize = 2;

/// The longest wait after that before the kill, in milliseconds.
const MAX_KILL_DELAY_MS: u64 = 700;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_restarts_on_sqlite() {
    crash_and_audit(Engine::Sqlite, loops(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_restarts_on_postgresql() {
    let Some(url) = server::postgres_url() else {
        eprintln!(
            "SKIPPED (PostgreSQL): crash test acknowledged_writes_survive_sigkill_restarts_on_postgresql: \
             set PAYRAIL_TEST_DATABASE_URL=postgres://… to run it"
        );
        return;
    };
    crash_and_audit(Engine::Postgres(url), loops(10)).await;
}

fn loops(default: usize) -> usize {
    std::env::var("PAYRAIL_CRASH_LOOPS").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

fn seeded_rng() -> rand::rngs::StdRng {
    let seed = std::env::var("PAYRAIL_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (PAYRAIL_CRASH_SEED={seed} repeats the kill moments)");
    rand::rngs::StdRng::seed_from_u64(seed)
}

async fn crash_and_audit(engine: Engine, loops: usize) {
    let started = Instant::now();
    let sms = SmsInbox::start().await;
    let mut install = Installation::new(&engine, &sms.url).await;
    let partner = install.add_funded_partner();
    let (journal, counters) = (Arc::new(Journal::default()), Arc::new(Counters::default()));
    let mut rng = seeded_rng();
    for _ in 0..loops {
        let server = install.start().await;
        let load = Load::start(&server, &partner, &sms, &journal, &counters);
        until_both_kinds_acknowledged(&journal, &server).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=MAX_KILL_DELAY_MS))).await;
        load.stopping();
        server.kill();
        load.join().await;
    }
    let crashed = started.elapsed();
    let server = install.start().await;
    let api = load::Api::new(&server, &partner);
    let records = journal.records();
    assert!(records.surprises.is_empty(), "a live server answered unexpectedly: {:#?}", records.surprises);

    let mut findings = audit::remitters_are_there(&api, &records).await;
    findings.extend(audit::acknowledged_payments_are_there(&records, &audit::snapshot(&api, &records).await));
    let (undecided, settling) = audit::settled(&api, &records).await;
    findings.extend(undecided);
    findings.extend(audit::wallet_matches_the_records(&api, &partner.id, &records).await);
    findings.extend(audit::verify_is_clean(&install));
    let seen = audit::snapshot(&api, &records).await;
    let audited = started.elapsed() - crashed;
    eprintln!(
        "crash test: {loops} SIGKILLs in {crashed:.0?}, audit {audited:.0?} ({settling}); {}",
        audit::summary(&records, &seen)
    );
    assert!(findings.is_empty(), "after {loops} SIGKILLs:\n{}", findings.join("\n"));
}

/// Waits until this server has acknowledged payments of both kinds, so that
/// every kill lands on a server at work.
async fn until_both_kinds_acknowledged(journal: &Journal, server: &Server) {
    let before = journal.records();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = journal.records();
        assert!(now.surprises.is_empty(), "a live server answered unexpectedly: {:#?}", now.surprises);
        let progress = |kind: Kind| now.acked(kind) - before.acked(kind);
        if progress(Kind::Bill) >= ACKED_PER_LOOP && progress(Kind::Transfer) >= ACKED_PER_LOOP {
            return;
        }
        assert!(Instant::now() < deadline, "no progress in 60 s; server log:\n{}", server.log_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
