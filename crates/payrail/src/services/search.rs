//! Operator search over every transaction and one timeline per
//! transaction: what `GET /admin/v1/transactions`, the timeline routes and
//! `payrail txn …` share. Parameters are read here once for the HTTP
//! query and the CLI's flags ([`SearchParams::parse`]), pages are merged
//! over both kinds ([`search_page`]), rows render one way for JSON and CSV
//! ([`RowView`]), and a timeline is gathered from everything the store
//! keeps about a transaction ([`timeline`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use crate::domain::event::EventFilter;
use crate::domain::operator::AuditFilter;
use crate::domain::remitter::MobileNumber;
use crate::domain::text::check_text;
use crate::domain::{
    BillPayment, BillStatus, DmtStatus, DmtTransfer, HistoryEntry, Paise, ReferenceId, RegistrationId, Timestamp,
    TxnKind,
};
use crate::store::search::{Found, SearchCursor, SearchFilter, SearchPage, StatusFilter};
use crate::store::{Store, StoreError};

/// How many rows a page has unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most rows a page may have.
pub const MAX_LIMIT: u32 = 500;
/// How many rows the CSV export reads from the store at a time.
pub const EXPORT_CHUNK: u32 = 500;

/// A refused parameter: its name and what is wrong, shown as `<name>: <what>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct BadParam {
    /// The parameter.
    pub name: String,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(name: &str, problem: impl Into<String>) -> BadParam {
    BadParam { name: name.to_owned(), problem: problem.into() }
}

/// The answer's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON page.
    Json,
    /// Every matching row as CSV.
    Csv,
}

/// A search as asked: the filters, where to start, how many, in what format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParams {
    /// Which rows.
    pub filter: SearchFilter,
    /// Start after this row.
    pub cursor: Option<SearchCursor>,
    /// Rows per page.
    pub limit: u32,
    /// JSON or CSV.
    pub format: Format,
}

/// The parameter names a search takes (with `registration_id` and
/// `reference_id` as aliases of `partner` and `reference`).
pub const PARAMS: [&str; 17] = [
    "kind",
    "partner",
    "reference",
    "ackno",
    "txnid",
    "utr",
    "mobile",
    "account",
    "canumber",
    "status",
    "from",
    "to",
    "min_amount",
    "max_amount",
    "cursor",
    "limit",
    "format",
];

impl SearchParams {
    /// Reads `(name, value)` pairs (a query string's, or the CLI's flags).
    /// Every name must be known and given once, and every value well formed;
    /// the first problem is reported naming its parameter.
    pub fn parse(pairs: &[(String, String)]) -> Result<SearchParams, BadParam> {
        let mut seen: Vec<&str> = Vec::new();
        let mut filter = SearchFilter::default();
        let mut cursor = None;
        let mut limit = None;
        let mut format = Format::Json;
        let mut to_given = None;
        for (name, value) in pairs {
            let canonical = match name.as_str() {
                "registration_id" => "partner",
                "reference_id" => "reference",
                other => other,
            };
            if !PARAMS.contains(&canonical) {
                return Err(bad(name, "unknown parameter"));
            }
            if seen.contains(&canonical) {
                return Err(bad(name, "given more than once"));
            }
            seen.push(canonical);
            if value.is_empty() {
                return Err(bad(name, "must not be empty"));
            }
            match canonical {
                "kind" => {
                    filter.kind = Some(TxnKind::parse(value).ok_or_else(|| bad(name, "must be dmt or bbps"))?);
                }
                "partner" => filter.partner = Some(RegistrationId::parse(value).map_err(|e| bad(name, e.to_string()))?),
                "reference" => {
                    let reference = ReferenceId::parse(value).map_err(|e| bad(name, e.to_string()))?;
                    filter.reference = Some(reference.as_str().to_owned());
                }
                "ackno" => filter.ackno = Some(number(name, value)?),
                "txnid" => filter.txnid = Some(number(name, value)?),
                "utr" => filter.utr = Some(text(name, value, 64)?),
                "mobile" => {
                    let mobile =
                        MobileNumber::parse(value).map_err(|_| bad(name, "must be a 10-digit mobile number"))?;
                    filter.mobile = Some(mobile.as_str().to_owned());
                }
                "account" => filter.account = Some(text(name, value, 20)?),
                "canumber" => filter.canumber = Some(text(name, value, 64)?),
                "status" => filter.status = Some(statuses(name, value)?),
                "from" => filter.from = Some(instant(name, value)?.0),
                "to" => {
                    let (at, date_only) = instant(name, value)?;
                    // A date alone ends with its day: the next midnight, exclusive.
                    let end = if date_only { at.plus_secs(86_400) } else { at };
                    filter.to = Some(end);
                    to_given = Some(end);
                }
                "min_amount" => filter.min_amount = Some(amount(name, value)?),
                "max_amount" => filter.max_amount = Some(amount(name, value)?),
                "cursor" => {
                    cursor = Some(decode_cursor(value).ok_or_else(|| bad(name, "not a cursor this search gave"))?)
                }
                "limit" => {
                    let n: u32 =
                        value.parse().map_err(|_| bad(name, format!("must be a number from 1 to {MAX_LIMIT}")))?;
                    if !(1..=MAX_LIMIT).contains(&n) {
                        return Err(bad(name, format!("must be a number from 1 to {MAX_LIMIT}")));
                    }
                    limit = Some(n);
                }
                _ => {
                    format = match value.as_str() {
                        "json" => Format::Json,
                        "csv" => Format::Csv,
                        _ => return Err(bad(name, "must be json or csv")),
                    }
                }
            }
        }
        if let (Some(from), Some(to)) = (filter.from, to_given) {
            if to <= from {
                return Err(bad("to", "must be later than from"));
            }
        }
        if let (Some(min), Some(max)) = (filter.min_amount, filter.max_amount) {
            if max < min {
                return Err(bad("max_amount", "must not be less than min_amount"));
            }
        }
        if format == Format::Csv && limit.is_some() {
            return Err(bad("limit", "is not used with format=csv (the export has every matching row)"));
        }
        Ok(SearchParams { filter, cursor, limit: limit.unwrap_or(DEFAULT_LIMIT), format })
    }
}

fn number(name: &str, value: &str) -> Result<i64, BadParam> {
    let ok = value.len() <= 18 && value.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| value.parse().ok()).flatten().ok_or_else(|| bad(name, "must be a whole number"))
}

fn text(name: &str, value: &str, max: usize) -> Result<String, BadParam> {
    if value.chars().count() > max {
        return Err(bad(name, format!("must be at most {max} characters")));
    }
    check_text(value).map_err(|e| bad(name, e.to_string()))?;
    Ok(value.to_owned())
}

fn amount(name: &str, value: &str) -> Result<Paise, BadParam> {
    Paise::parse(value).map_err(|e| bad(name, format!("{e} (rupees, like 1500 or 1500.50)")))
}

/// `status`: words (`success`, `failed`, `refunded`, `in_process`,
/// `sent_to_bank`, `on_hold`, `pending`) and DMT `txn_status` codes (0–5),
/// separated by commas. A word keeps every kind's state of that name; a
/// code keeps only the transfer state with that code.
fn statuses(name: &str, value: &str) -> Result<StatusFilter, BadParam> {
    let mut found = StatusFilter::default();
    for item in value.split(',').map(str::trim) {
        let code = item.parse::<i64>().ok().and_then(DmtStatus::from_code);
        let dmt = code.or_else(|| DmtStatus::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(item)));
        let bill = if code.is_some() { None } else { BillStatus::parse(item) };
        if dmt.is_none() && bill.is_none() {
            return Err(bad(
                name,
                format!(
                    "{item:?} is not a state: use success, failed, refunded, in_process, sent_to_bank, on_hold, \
                     pending or a DMT txn_status code 0-5"
                ),
            ));
        }
        found.dmt.extend(dmt.filter(|s| !found.dmt.contains(s)));
        found.bills.extend(bill.filter(|s| !found.bills.contains(s)));
    }
    Ok(found)
}

/// India time `YYYY-MM-DD` (its midnight; `true`) or `YYYY-MM-DDTHH:MM[:SS]`.
fn instant(name: &str, value: &str) -> Result<(Timestamp, bool), BadParam> {
    let wrong = || bad(name, "must be India time as YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]");
    if value.len() == 10 {
        return Timestamp::parse_ist_date(value).map(|at| (at, true)).map_err(|_| wrong());
    }
    let (date, time) = value.split_once('T').ok_or_else(wrong)?;
    let time = match time.len() {
        5 => format!("{time}:00"),
        8 => time.to_owned(),
        _ => return Err(wrong()),
    };
    Timestamp::parse_ist(&format!("{date} {time}")).map(|at| (at, false)).map_err(|_| wrong())
}

/// The opaque cursor: URL-safe base64 of `<created_at>:<kind>:<id>`.
pub fn encode_cursor(cursor: SearchCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", cursor.created_at, cursor.kind.as_str(), cursor.id))
}

fn decode_cursor(text: &str) -> Option<SearchCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let plain = String::from_utf8(bytes).ok()?;
    let mut parts = plain.split(':');
    let created_at = parts.next()?.parse().ok()?;
    let kind = TxnKind::parse(parts.next()?)?;
    let id = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some(SearchCursor { created_at, kind, id })
}

/// One page: its rows, newest first, and where the next page starts.
#[derive(Debug, Clone)]
pub struct Page {
    /// The rows.
    pub rows: Vec<Found>,
    /// After the last row, if more rows may match.
    pub next: Option<SearchCursor>,
}

/// At most `limit` rows matching `filter` after `cursor`, both kinds
/// merged in the search order (see `store::search`).
pub async fn search_page(
    store: &dyn Store,
    filter: &SearchFilter,
    cursor: Option<SearchCursor>,
    limit: u32,
) -> Result<Page, StoreError> {
    let mut rows = Vec::new();
    for kind in [TxnKind::Dmt, TxnKind::Bbps] {
        for part in by_state(filter, kind) {
            rows.extend(store.search_kind(SearchPage { filter: &part, kind, after: cursor, limit: limit + 1 }).await?);
        }
    }
    rows.sort_by_key(|row| {
        let key = row.cursor();
        std::cmp::Reverse((key.created_at, matches!(key.kind, TxnKind::Dmt), key.id))
    });
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(Found::cursor) } else { None };
    Ok(Page { rows, next })
}

/// `filter` for `kind` as searches of one state each when it keeps several
/// of that kind: each is then read in order from the state's index (an `IN`
/// list would be read whole and sorted), and the pages are merged.
pub fn by_state(filter: &SearchFilter, kind: TxnKind) -> Vec<SearchFilter> {
    let Some(status) = &filter.status else { return vec![filter.clone()] };
    let one = |status: StatusFilter| SearchFilter { status: Some(status), ..filter.clone() };
    match kind {
        TxnKind::Dmt if status.dmt.len() > 1 => {
            status.dmt.iter().map(|s| one(StatusFilter { dmt: vec![*s], bills: Vec::new() })).collect()
        }
        TxnKind::Bbps if status.bills.len() > 1 => {
            status.bills.iter().map(|s| one(StatusFilter { dmt: Vec::new(), bills: vec![*s] })).collect()
        }
        _ => vec![filter.clone()],
    }
}

/// A found row as the JSON answer and the CSV export show it: both kinds
/// in one shape, `null` (an empty CSV field) where a kind has no such field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RowView {
    /// `dmt` or `bbps`.
    pub kind: &'static str,
    /// A transfer's ackno.
    pub ackno: Option<i64>,
    /// A bill payment's txnid.
    pub txnid: Option<i64>,
    /// The partner.
    pub registration_id: String,
    /// The partner's reference.
    pub reference_id: String,
    /// Rupees.
    pub amount: String,
    /// The state's name.
    pub status: &'static str,
    /// The AOPay code of the state: a transfer's `txn_status` (0–5), a bill
    /// payment's `status` (1 success, 2 pending, 0 failed or refunded).
    pub code: i64,
    /// A transfer's UTR.
    pub utr: Option<String>,
    /// A bill payment's operator reference.
    pub operator_ref: Option<String>,
    /// A transfer's remitter (DMT V1 transfers).
    pub mobile: Option<String>,
    /// A transfer's beneficiary account.
    pub account: Option<String>,
    /// A bill payment's customer account.
    pub canumber: Option<String>,
    /// A bill payment's biller.
    pub operator_name: Option<String>,
    /// India time.
    pub created_at: String,
    /// The refund id, once refunded.
    pub refund_txn_id: Option<String>,
    /// India time, once refunded.
    pub refunded_at: Option<String>,
}

/// The CSV header: [`RowView`]'s fields in order.
pub const CSV_HEADER: [&str; 17] = [
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
    "refunded_at",
];

impl RowView {
    /// The view of a found row.
    pub fn new(found: &Found) -> RowView {
        match found {
            Found::Dmt(t, mobile) => RowView {
                kind: "dmt",
                ackno: Some(t.ackno),
                txnid: None,
                registration_id: t.partner.to_string(),
                reference_id: t.reference.as_str().to_owned(),
                amount: t.amount.to_amount_string(),
                status: t.status.name(),
                code: t.status.code(),
                utr: t.utr.clone(),
                operator_ref: None,
                mobile: mobile.clone(),
                account: Some(t.account.clone()),
                canumber: None,
                operator_name: None,
                created_at: t.created_at.to_ist_string(),
                refund_txn_id: t.refund_txn_id.clone(),
                refunded_at: t.refunded_at.map(Timestamp::to_ist_string),
            },
            Found::Bill(b) => RowView {
                kind: "bbps",
                ackno: None,
                txnid: Some(b.txnid),
                registration_id: b.partner.to_string(),
                reference_id: b.reference.as_str().to_owned(),
                amount: b.amount.to_amount_string(),
                status: b.status.name(),
                code: b.status.wire_code().parse().unwrap_or(0),
                utr: None,
                operator_ref: b.operator_ref.clone(),
                mobile: None,
                account: None,
                canumber: Some(b.ca_number.clone()),
                operator_name: Some(b.operator_name.clone()),
                created_at: b.created_at.to_ist_string(),
                refund_txn_id: b.refund_txn_id.clone(),
                refunded_at: b.refunded_at.map(Timestamp::to_ist_string),
            },
        }
    }

    /// The CSV fields, in [`CSV_HEADER`]'s order.
    pub fn csv_fields(&self) -> [String; 17] {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let id = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        [
            self.kind.to_owned(),
            id(self.ackno),
            id(self.txnid),
            self.registration_id.clone(),
            self.reference_id.clone(),
            self.amount.clone(),
            self.status.to_owned(),
            self.code.to_string(),
            opt(&self.utr),
            opt(&self.operator_ref),
            opt(&self.mobile),
            opt(&self.account),
            opt(&self.canumber),
            opt(&self.operator_name),
            self.created_at.clone(),
            opt(&self.refund_txn_id),
            opt(&self.refunded_at),
        ]
    }
}

/// The JSON answer of a search page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageView {
    /// The rows, newest first.
    pub transactions: Vec<RowView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl PageView {
    /// The view of a page.
    pub fn new(page: &Page) -> PageView {
        PageView {
            transactions: page.rows.iter().map(RowView::new).collect(),
            next_cursor: page.next.map(encode_cursor),
        }
    }
}

/// Writes CSV lines (the header first when `header`) into a buffer.
pub fn csv_lines(rows: &[Found], header: bool) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    if header {
        let _ = writer.write_record(CSV_HEADER);
    }
    for row in rows {
        let _ = writer.write_record(RowView::new(row).csv_fields());
    }
    writer.into_inner().unwrap_or_default()
}

/// Every row matching `filter` from `cursor` on, as CSV chunks (the header
/// with the first), read from the store `EXPORT_CHUNK` rows at a time and
/// handed to `send` one chunk after another: memory stays constant however
/// many rows match. Stops early (`Ok`) when `send` says the reader is gone.
pub async fn export_csv<F, Fut>(
    store: &dyn Store,
    filter: &SearchFilter,
    mut cursor: Option<SearchCursor>,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut header = true;
    loop {
        let page = search_page(store, filter, cursor, EXPORT_CHUNK).await?;
        if !send(csv_lines(&page.rows, header)).await {
            return Ok(());
        }
        header = false;
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// A transaction named `dmt:<ackno>` or `bbps:<txnid>`.
pub fn parse_txn_name(text: &str) -> Option<(TxnKind, i64)> {
    let (kind, id) = text.split_once(':')?;
    let id = id.parse().ok().filter(|n: &i64| *n > 0)?;
    Some((TxnKind::parse(kind)?, id))
}

/// One entry of a timeline: when, what, and its details.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineItem {
    /// When it happened.
    pub at: Timestamp,
    /// `created`, `status`, `upstream_submission`, `upstream_poll`,
    /// `upstream_callback`, `operator_action`, `audit`, `journal`, `partner_event`,
    /// `delivery_attempt`, `poll_due`.
    pub kind: &'static str,
    /// Its fields.
    pub details: Map<String, Json>,
}

impl Serialize for TimelineItem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut all = Map::new();
        all.insert("at".into(), Json::String(self.at.to_ist_string()));
        all.insert("kind".into(), Json::String(self.kind.to_owned()));
        all.extend(self.details.clone());
        all.serialize(serializer)
    }
}

fn item(at: Timestamp, kind: &'static str, details: Json) -> TimelineItem {
    let details = match details {
        Json::Object(map) => map,
        _ => Map::new(),
    };
    TimelineItem { at, kind, details }
}

/// A transaction as `payrail txn show` and the timeline routes show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TxnDetail {
    /// The record in the search's shape.
    pub transaction: RowView,
    /// Everything that happened to it, oldest first.
    #[schema(value_type = Vec<crate::http::openapi::TimelineEntry>)]
    pub timeline: Vec<TimelineItem>,
}

/// The record and its timeline; `None` when there is no such transaction.
pub async fn txn_detail(store: &dyn Store, kind: TxnKind, id: i64) -> Result<Option<TxnDetail>, StoreError> {
    let (found, history) = match kind {
        TxnKind::Dmt => {
            let Some((transfer, history)) = store.dmt_with_history(id).await? else { return Ok(None) };
            let mobile = store.dmt_route(id).await?.map(|r| r.remitter.as_str().to_owned());
            (Found::Dmt(transfer, mobile), history)
        }
        TxnKind::Bbps => {
            let Some((payment, history)) = store.bill_with_history(id).await? else { return Ok(None) };
            (Found::Bill(payment), history)
        }
    };
    let timeline = timeline(store, kind, id, &history).await?;
    Ok(Some(TxnDetail { transaction: RowView::new(&found), timeline }))
}

/// Everything the store keeps about one transaction, in time order: its
/// status history, with the upstream's answers, polls and callbacks and the
/// operators' actions told apart by the row's source; its journals with
/// their postings; its partner events with every delivery attempt; and the
/// poll job still waiting, if any. Within one second (the stored times'
/// precision) a journal or an event follows the history row of the change
/// that wrote it (a debit follows the creation, a refund the change to
/// `refunded`, an event the change to its state), attempts follow their
/// event, and the next poll comes last.
pub async fn timeline(
    store: &dyn Store,
    kind: TxnKind,
    id: i64,
    history: &[HistoryEntry],
) -> Result<Vec<TimelineItem>, StoreError> {
    let mut items: Vec<(TimelineItem, usize)> =
        history.iter().enumerate().map(|(n, h)| (history_item(h), 2 * n)).collect();
    // Just after the history row of the change to `to` at `at` (the first such row).
    let after_change = |at: Timestamp, to: Option<&str>| {
        let found = history.iter().position(|h| h.at == at && to.is_none_or(|to| h.to_status == to));
        found.map_or(usize::MAX - 1, |n| 2 * n + 1)
    };
    items.extend(operator_actions(store, kind, id).await?.into_iter().map(|i| (i, usize::MAX - 1)));
    for journal in store.txn_journals(kind, id).await? {
        let postings: Vec<Json> = journal
            .postings
            .iter()
            .map(|(account, amount)| json!({"account": account, "amount": rupees(*amount)}))
            .collect();
        let change = match journal.purpose.as_str() {
            "refund" => after_change(journal.at, Some("refunded")),
            _ => history
                .iter()
                .position(|h| h.from_status.is_none() && h.at == journal.at)
                .map_or(usize::MAX - 1, |n| 2 * n + 1),
        };
        let details =
            json!({"journal_id": journal.id, "purpose": journal.purpose, "memo": journal.memo, "postings": postings});
        items.push((item(journal.at, "journal", details), change));
    }
    let filter = EventFilter { partner: None, state: None, txn: Some((kind, id)), before_id: None, limit: 1000 };
    let mut events = store.events(&filter).await?;
    events.sort_by_key(|e| e.id);
    for event in events {
        let change = after_change(event.created_at, Some(event.status.as_str()));
        items.push((
            item(
                event.created_at,
                "partner_event",
                json!({
                    "event_id": event.id,
                    "status": event.status,
                    "state": event.state.name(),
                    "attempts": event.attempts,
                    "delivered_at": event.delivered_at.map(Timestamp::to_ist_string),
                    "redelivered_at": event.redelivered_at.map(Timestamp::to_ist_string),
                }),
            ),
            change,
        ));
        if let Some((_, tried)) = store.event_with_attempts(event.id).await? {
            items.extend(tried.into_iter().map(|a| {
                let attempt = item(
                    a.at,
                    "delivery_attempt",
                    json!({
                        "event_id": a.event_id,
                        "attempt": a.attempt,
                        "url": a.url,
                        "http_status": a.http_status,
                        "duration_ms": a.duration_ms,
                        "error": a.error,
                    }),
                );
                // At the event's own second, right after it; later, by time alone.
                let rank = if a.at == event.created_at { change } else { usize::MAX - 1 };
                (attempt, rank)
            }));
        }
    }
    if let Some(job) = store.poll_job(kind, id).await? {
        items.push((item(job.due_at, "poll_due", json!({"polls_made": job.attempts})), usize::MAX));
    }
    // Stable: items of one rank keep the order they were added in.
    items.sort_by_key(|(i, rank)| (i.at, *rank));
    Ok(items.into_iter().map(|(i, _)| i).collect())
}

/// The audit log's entries about the transaction (`dmt:<ackno>`,
/// `bbps:<txnid>`): who did what to it through the operator API, with the
/// record before and after where the action changed it. The state changes
/// those actions made are also history rows (`operator_action`, their
/// `source` naming the operator); these items add the action itself.
async fn operator_actions(store: &dyn Store, kind: TxnKind, id: i64) -> Result<Vec<TimelineItem>, StoreError> {
    let filter = AuditFilter {
        target: Some(format!("{}:{id}", kind.as_str())),
        limit: AUDIT_ITEMS_MAX,
        ..AuditFilter::default()
    };
    let parsed = |text: &Option<String>| text.as_deref().map(|t| serde_json::from_str(t).unwrap_or(Json::from(t)));
    let entries = store.list_audit(&filter).await?;
    Ok(entries
        .into_iter()
        .rev()
        .map(|e| {
            let details = json!({"audit_id": e.id, "actor": e.entry.actor, "action": e.entry.action,
                                 "before": parsed(&e.entry.before), "after": parsed(&e.entry.after)});
            item(e.entry.at, "audit", details)
        })
        .collect())
}

/// At most this many audit entries of one transaction in its timeline.
const AUDIT_ITEMS_MAX: i64 = 500;

/// A status history row as a timeline item, named by what made the change.
fn history_item(h: &HistoryEntry) -> TimelineItem {
    let kind = match (h.from_status.as_deref(), h.source.as_str()) {
        (None, _) => "created",
        (_, source) if source == "admin" || source.starts_with("operator:") => "operator_action",
        (_, "provider") => "upstream_submission",
        (_, "poller" | "status-sync") => "upstream_poll",
        (_, "upstream-callback") => "upstream_callback",
        _ => "status",
    };
    item(h.at, kind, json!({"from": h.from_status, "to": h.to_status, "source": h.source, "reason": h.reason}))
}

fn rupees(paise: i64) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    format!("{sign}{}", Paise::new(paise.abs()).to_amount_string())
}

/// The view of a transfer (for code that has one in hand).
pub fn dmt_row(transfer: &DmtTransfer, mobile: Option<String>) -> RowView {
    RowView::new(&Found::Dmt(transfer.clone(), mobile))
}

/// The view of a bill payment (for code that has one in hand).
pub fn bill_row(payment: &BillPayment) -> RowView {
    RowView::new(&Found::Bill(payment.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_cursor_reads_back_as_given_and_garbage_is_refused() {
        let cursor = SearchCursor { created_at: 1_700_000_000, kind: TxnKind::Bbps, id: 42 };
        assert_eq!(decode_cursor(&encode_cursor(cursor)), Some(cursor));
        assert_eq!(decode_cursor("bm9wZQ"), None);
        let err = SearchParams::parse(&pairs(&[("cursor", "!!")])).err();
        assert_eq!(err.map(|e| e.name), Some("cursor".to_owned()));
    }

    #[test]
    fn dates_are_india_time_and_a_date_alone_ends_with_its_day() {
        let p = SearchParams::parse(&pairs(&[("from", "2026-01-02"), ("to", "2026-01-02")]))
            .unwrap_or_else(|e| panic!("{e}"));
        let from = p.filter.from.unwrap_or_else(|| panic!("from"));
        assert_eq!(from.to_ist_string(), "2026-01-02 00:00:00");
        assert_eq!(p.filter.to, Some(from.plus_secs(86_400)));
        let p = SearchParams::parse(&pairs(&[("to", "2026-01-02T10:30")])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.filter.to.map(Timestamp::to_ist_string).as_deref(), Some("2026-01-02 10:30:00"));
    }

    #[test]
    fn statuses_take_words_of_either_kind_and_dmt_codes() {
        let s = statuses("status", "success,2,pending").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.dmt, vec![DmtStatus::Success, DmtStatus::InProcess]);
        assert_eq!(s.bills, vec![BillStatus::Success, BillStatus::Pending]);
        assert!(statuses("status", "done").is_err());
    }

    #[test]
    fn the_header_names_the_fields_in_order() {
        let row = bill_row(&BillPayment {
            txnid: 5,
            partner: RegistrationId::new(1001),
            reference: ReferenceId::parse("R").unwrap_or_else(|e| panic!("{e}")),
            operator_name: "Op".into(),
            ca_number: "CA".into(),
            amount: Paise::new(150),
            ad1: None,
            ad2: None,
            ad3: None,
            commission: Paise::ZERO,
            tds: Paise::ZERO,
            status: BillStatus::Pending,
            operator_ref: None,
            created_at: Timestamp::from_unix(0),
            refund_txn_id: None,
            refunded_at: None,
        });
        let json = serde_json::to_value(&row).unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<&str> = json.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        let mut header = CSV_HEADER.to_vec();
        header.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, header);
        assert_eq!(row.csv_fields()[CSV_HEADER.iter().position(|h| *h == "amount").unwrap_or(0)], "1.50");
    }
}
