//! `payrail-bench --reconcile`: how long `payrail reconcile` takes over a
//! bank file of `--records` lines (1,000,000 by default) against a store of
//! as many transfers made on one day.
//!
//! Every transfer is paid (with a UTR) except one in a thousand, which
//! failed; the file has a line for each except one in a thousand (in
//! payrail only), another amount on one in a thousand, "returned" on one in
//! a thousand, and one line in a thousand that payrail does not know (in
//! the file only). The time is the whole run as the CLI makes it: reading
//! and checking the file, the one query for the day's transfers, the
//! matching; the load before it is not timed. The counts are checked.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use payrail::domain::{ChangeSource, Clock as _, DmtStatus, IpAllowlist, Paise, ReferenceId, SystemClock, Timestamp};
use payrail::services::partners::{add_partner, PartnerRequest};
use payrail::services::reconcile::{self, FileFormat, Request};
use payrail::services::transactions::NewDmt;
use payrail::store::{ChangeNote, Store};

use crate::Args;

/// Loads the transfers, writes the file, times the run.
pub fn run(args: &Args, engine: &str, postgres: Option<String>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let data_dir = tempfile::tempdir()?;
    let (location, database) = crate::location(&runtime, data_dir.path(), postgres.as_deref())?;
    let result = runtime.block_on(async {
        let (store, key) = crate::open(&location).await?;
        let day = Timestamp::parse_ist_date(&SystemClock.now().to_ist_string()[..10])?.plus_secs(-86_400);
        println!("\n== {engine}: loading {} transfers", args.records);
        load(&*store, &key, args.records, day).await?;
        let path = data_dir.path().join("bank.csv");
        write_file(&path, args.records, &day.to_ist_string()[..10])?;
        time(&*store, &path, args.records).await
    });
    if let (Some(base), Some(name)) = (postgres, database) {
        runtime.block_on(crate::drop_database(&base, &name))?;
    }
    result
}

fn status_of(i: usize) -> DmtStatus {
    if i % 1000 == 7 {
        DmtStatus::Failed
    } else {
        DmtStatus::Success
    }
}

fn amount_of(i: usize) -> Paise {
    Paise::new(10_000 + (i as i64 * 7_919) % 500_000)
}

async fn load(
    store: &dyn Store,
    key: &payrail::services::secrets::MasterKey,
    records: usize,
    day: Timestamp,
) -> anyhow::Result<()> {
    let request = PartnerRequest {
        number: None,
        name: "reconcile".into(),
        allowlist: IpAllowlist::default(),
        require_token: true,
        authorised_key: None,
    };
    let partner = add_partner(store, &SystemClock, key, request).await?.partner.registration_id;
    let now = SystemClock.now();
    let note = || ChangeNote { source: ChangeSource::Import, reason: None, at: now };
    let quiet: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(|_| {});
    let started = Instant::now();
    let chunk = 100_000;
    for start in (0..records).step_by(chunk) {
        let end = (start + chunk).min(records);
        let transfers = (start..end)
            .map(|i| {
                let reference = ReferenceId::parse(&format!("K{i:07}"))?;
                let mut new = NewDmt::in_process(partner, reference, amount_of(i), "20018575947".into());
                new.status = status_of(i);
                new.utr = Some(format!("{i:012}"));
                new.created_at = Some(day.plus_secs((i as i64 * 86_000) / records as i64));
                Ok(new.into_transfer(now))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.insert_dmt_batch(transfers, note(), quiet.clone()).await.context("Failed to load transfers")?;
        println!("   {end:>8} loaded ({:.0} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn write_file(path: &std::path::Path, records: usize, date: &str) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "utr,amount,date,status")?;
    for i in 0..records {
        let (utr, amount, status) = match i % 1000 {
            3 => (format!("9{i:011}"), amount_of(i), "success"),
            5 => (format!("{i:012}"), amount_of(i) + Paise::new(100), "success"),
            9 => (format!("{i:012}"), amount_of(i), "returned"),
            _ => (format!("{i:012}"), amount_of(i), "success"),
        };
        writeln!(out, "{utr},{},{date},{status}", amount.to_decimal_string())?;
    }
    out.flush()?;
    Ok(())
}

async fn time(store: &dyn Store, path: &std::path::Path, records: usize) -> anyhow::Result<()> {
    let request = Request {
        file: "bank.csv".into(),
        format: FileFormat::parse("csv", None).map_err(anyhow::Error::msg)?,
        day: None,
        ref_prefix: "PR".into(),
        hold: None,
    };
    let started = Instant::now();
    let input = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let run = reconcile::reconcile(store, &SystemClock, input, &request).await?;
    let elapsed = started.elapsed();
    let s = run.summary;
    let thousandths = records as u64 / 1000;
    println!(
        "   {} lines reconciled in {:.2} s: matched {}, amount mismatch {}, state mismatch {}, payrail only {}, file only {}",
        s.lines,
        elapsed.as_secs_f64(),
        s.matched,
        s.amount_mismatch,
        s.state_mismatch,
        s.payrail_only,
        s.file_only
    );
    let expected = (thousandths, 2 * thousandths, thousandths, thousandths);
    anyhow::ensure!(
        (s.amount_mismatch, s.state_mismatch, s.payrail_only, s.file_only) == expected,
        "unexpected counts: {s:?}"
    );
    Ok(())
}
