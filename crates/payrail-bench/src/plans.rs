//! `payrail-bench --plans`: the query plan of the operator search for each
//! filter alone on a store of `--records` transfers and bill payments
//! (1,000,000 each by default), printed as Markdown, with the time the
//! first page takes; exits with an error if any filter's plan reads a whole
//! transaction table (a full scan: `SCAN t` without an index on SQLite,
//! `Seq Scan` on PostgreSQL).
//!
//! The data is varied as an operator's would be: 10 partners, one
//! transaction every 30 seconds over the last year, 50,000 beneficiary
//! accounts, 200,000 customer accounts, every state, amounts from ₹100 to
//! ₹5,100, and one transfer in ten with a remitter (`dmt_routes`, 100,000
//! mobile numbers). PostgreSQL is `ANALYZE`d first, as autovacuum would
//! have done on a store of that size; SQLite is planned as payrail runs it
//! (no `ANALYZE`, the planner's own estimates).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use payrail::domain::{
    BillStatus, ChangeSource, Clock as _, DmtStatus, IpAllowlist, Paise, ReferenceId, RegistrationId, SystemClock,
    Timestamp, TxnKind,
};
use payrail::services::partners::{add_partner, PartnerRequest};
use payrail::services::search::{by_state, search_page};
use payrail::services::transactions::{NewBill, NewDmt};
use payrail::store::search::{full_scan, kind_applies, Found, SearchFilter, SearchPage, StatusFilter};
use payrail::store::{ChangeNote, Store, StoreLocation};

use crate::Args;

const PARTNERS: usize = 10;
const SPACING_SECS: i64 = 30;

/// Loads the data, prints each filter's plans; fails if any is a full scan.
pub fn run(args: &Args, engine: &str, postgres: Option<String>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let data_dir = tempfile::tempdir()?;
    let (location, database) = crate::location(&runtime, data_dir.path(), postgres.as_deref())?;
    let result = runtime.block_on(async {
        let (store, key) = crate::open(&location).await?;
        let partners = load(&*store, &key, args.records).await?;
        add_routes(&location).await?;
        report(&*store, engine, &partners, args.records).await
    });
    if let (Some(base), Some(name)) = (postgres, database) {
        runtime.block_on(crate::drop_database(&base, &name))?;
    }
    result
}

async fn load(
    store: &dyn Store,
    key: &payrail::services::secrets::MasterKey,
    records: usize,
) -> anyhow::Result<Vec<RegistrationId>> {
    println!("\n== loading {records} transfers and {records} bill payments");
    let mut partners = Vec::new();
    for n in 0..PARTNERS {
        let request = PartnerRequest {
            number: None,
            name: format!("plans {n}"),
            allowlist: IpAllowlist::default(),
            require_token: true,
            authorised_key: None,
        };
        partners.push(add_partner(store, &SystemClock, key, request).await?.partner.registration_id);
    }
    let now = SystemClock.now();
    let first = now.unix() - records as i64 * SPACING_SECS;
    let at = |i: usize| Timestamp::from_unix(first + i as i64 * SPACING_SECS);
    let note = || ChangeNote { source: ChangeSource::Import, reason: None, at: now };
    let quiet: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(|_| {});
    let started = Instant::now();
    let chunk = 100_000;
    for start in (0..records).step_by(chunk) {
        let end = (start + chunk).min(records);
        let transfers = (start..end)
            .map(|i| {
                let mut new = NewDmt::in_process(
                    partners[i % PARTNERS],
                    ReferenceId::parse(&format!("P{i:07}"))?,
                    Paise::new(10_000 + (i as i64 * 7_919) % 500_000),
                    format!("{:011}", 20_000_000_000i64 + (i % 50_000) as i64),
                );
                new.status = DmtStatus::ALL[i % 6];
                new.utr = (new.status == DmtStatus::Success).then(|| format!("{i:012}"));
                new.created_at = Some(at(i));
                Ok(new.into_transfer(now))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.insert_dmt_batch(transfers, note(), quiet.clone()).await.context("Failed to load transfers")?;
        let bills = (start..end)
            .map(|i| {
                let new = NewBill {
                    txnid: None,
                    partner: partners[i % PARTNERS],
                    reference: ReferenceId::parse(&format!("P{i:07}"))?,
                    operator_name: "BSES Rajdhani Power Limited".into(),
                    ca_number: format!("{:09}", i % 200_000),
                    amount: Paise::new(10_000 + (i as i64 * 7_919) % 100_000),
                    extra: [None, None, None],
                    commission: None,
                    status: [BillStatus::Pending, BillStatus::Success, BillStatus::Failed, BillStatus::Refunded][i % 4],
                    operator_ref: None,
                    created_at: Some(at(i)),
                    refund_txn_id: None,
                    refunded_at: None,
                };
                Ok(new.into_payment(now))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.insert_bill_batch(bills, note(), quiet.clone()).await.context("Failed to load bill payments")?;
        println!("   {end:>8} of each loaded ({:.0} s)", started.elapsed().as_secs_f64());
    }
    Ok(partners)
}

/// One transfer in ten gets a remitter (the route a DMT V1 transfer has),
/// written straight into the table; PostgreSQL is then analysed.
async fn add_routes(location: &StoreLocation) -> anyhow::Result<()> {
    match location {
        StoreLocation::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.join("payrail.db"))?;
            conn.execute_batch(
                "INSERT INTO dmt_routes (ackno, partner_id, remitter_mobile, beneficiary_id, bank, mode, created_at) \
                 SELECT ackno, partner_id, '9' || substr('000000000' || (ackno % 100000), -9, 9), 1, 1, 'IMPS', created_at \
                 FROM dmt_transfers WHERE ackno % 10 = 0",
            )?;
        }
        StoreLocation::Postgres(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
                .batch_execute(
                    "INSERT INTO dmt_routes (ackno, partner_id, remitter_mobile, beneficiary_id, bank, mode, created_at) \
                     SELECT ackno, partner_id, '9' || lpad((ackno % 100000)::text, 9, '0'), 1, 1, 'IMPS', created_at \
                     FROM dmt_transfers WHERE ackno % 10 = 0; ANALYZE",
                )
                .await?;
        }
    }
    Ok(())
}

/// A row of each kind to take filter values from.
async fn samples(store: &dyn Store, records: usize) -> anyhow::Result<(payrail::domain::DmtTransfer, Option<String>)> {
    // A successful transfer (i % 6 == 1) in the middle, with a route if it has one.
    let i = (records / 2) / 6 * 6 + 1;
    let filter =
        SearchFilter { reference: Some(format!("P{i:07}")), kind: Some(TxnKind::Dmt), ..SearchFilter::default() };
    let page = search_page(store, &filter, None, 1).await?;
    match page.rows.into_iter().next() {
        Some(Found::Dmt(t, mobile)) => Ok((t, mobile)),
        _ => anyhow::bail!("the sample transfer is missing"),
    }
}

async fn report(store: &dyn Store, engine: &str, partners: &[RegistrationId], records: usize) -> anyhow::Result<()> {
    let (transfer, _) = samples(store, records).await?;
    let mobile = {
        let filter = SearchFilter { kind: Some(TxnKind::Dmt), min_amount: None, ..SearchFilter::default() };
        // Any transfer with a route: the newest one whose ackno is a multiple of ten.
        let mut cursor = None;
        loop {
            let page = search_page(store, &filter, cursor, 500).await?;
            if let Some(mobile) = page.rows.iter().find_map(|r| match r {
                Found::Dmt(_, Some(mobile)) => Some(mobile.clone()),
                _ => None,
            }) {
                break mobile;
            }
            cursor = page.next;
            anyhow::ensure!(cursor.is_some(), "no transfer has a route");
        }
    };
    let day = transfer.created_at;
    let cases: Vec<(&str, SearchFilter)> = vec![
        ("kind=dmt (no filter)", SearchFilter { kind: Some(TxnKind::Dmt), ..SearchFilter::default() }),
        ("partner", SearchFilter { partner: Some(partners[3]), ..SearchFilter::default() }),
        (
            "reference",
            SearchFilter { reference: Some(transfer.reference.as_str().to_owned()), ..SearchFilter::default() },
        ),
        ("ackno", SearchFilter { ackno: Some(transfer.ackno), ..SearchFilter::default() }),
        ("txnid", SearchFilter { txnid: Some(transfer.ackno), ..SearchFilter::default() }),
        ("utr", SearchFilter { utr: transfer.utr.clone(), ..SearchFilter::default() }),
        ("mobile", SearchFilter { mobile: Some(mobile), ..SearchFilter::default() }),
        ("account", SearchFilter { account: Some(transfer.account.clone()), ..SearchFilter::default() }),
        ("canumber", SearchFilter { canumber: Some("000123456".into()), ..SearchFilter::default() }),
        (
            "status=on_hold",
            SearchFilter {
                status: Some(StatusFilter { dmt: vec![DmtStatus::OnHold], bills: vec![] }),
                ..SearchFilter::default()
            },
        ),
        (
            "status=refunded,pending",
            SearchFilter {
                status: Some(StatusFilter {
                    dmt: vec![DmtStatus::Refunded],
                    bills: vec![BillStatus::Refunded, BillStatus::Pending],
                }),
                ..SearchFilter::default()
            },
        ),
        (
            "from (last day)",
            SearchFilter { from: Some(SystemClock.now().plus_secs(-86_400)), ..SearchFilter::default() },
        ),
        ("to (a day, half a year ago)", SearchFilter { to: Some(day), ..SearchFilter::default() }),
        (
            "from+to (one hour)",
            SearchFilter { from: Some(day), to: Some(day.plus_secs(3_600)), ..SearchFilter::default() },
        ),
        ("min_amount=5000", SearchFilter { min_amount: Some(Paise::new(500_000)), ..SearchFilter::default() }),
        ("max_amount=101", SearchFilter { max_amount: Some(Paise::new(10_100)), ..SearchFilter::default() }),
    ];
    println!("\n### {engine}: {records} transfers and {records} bill payments\n");
    let mut scans = Vec::new();
    for (name, filter) in &cases {
        for kind in [TxnKind::Dmt, TxnKind::Bbps] {
            // What `search_page` runs: one query per state where several are kept.
            let parts: Vec<SearchFilter> =
                by_state(filter, kind).into_iter().filter(|part| kind_applies(part, kind)).collect();
            if parts.is_empty() {
                continue;
            }
            // The first page and the next one (with a cursor), timed.
            let started = Instant::now();
            let page = search_page(store, filter, None, 50).await?;
            let first = started.elapsed();
            let next = match page.next {
                Some(cursor) => {
                    let started = Instant::now();
                    search_page(store, filter, Some(cursor), 50).await?;
                    Some(started.elapsed())
                }
                None => None,
            };
            println!(
                "`{name}` on {} — first page of both kinds {} ({} rows), next page {}:\n",
                table(kind),
                ms(first),
                page.rows.len(),
                next.map_or("—".into(), ms)
            );
            let unfiltered = *filter == SearchFilter { kind: filter.kind, ..SearchFilter::default() };
            for part in &parts {
                let plan = store.search_plan(SearchPage { filter: part, kind, after: None, limit: 51 }, false).await?;
                let after =
                    store.search_plan(SearchPage { filter: part, kind, after: page.next, limit: 51 }, false).await?;
                println!("```\n{}\n```", plan.join("\n"));
                if after != plan {
                    println!("with a cursor:\n```\n{}\n```", after.join("\n"));
                }
                if let Some(line) = full_scan(&plan, unfiltered).or_else(|| full_scan(&after, unfiltered)) {
                    scans.push(format!("{name} on {}: {line}", table(kind)));
                }
            }
            println!();
        }
    }
    anyhow::ensure!(scans.is_empty(), "full scans on {engine}:\n{}", scans.join("\n"));
    println!("{engine}: no filter's plan scans a whole transaction table");
    Ok(())
}

fn table(kind: TxnKind) -> &'static str {
    match kind {
        TxnKind::Dmt => "dmt_transfers",
        TxnKind::Bbps => "bill_payments",
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
