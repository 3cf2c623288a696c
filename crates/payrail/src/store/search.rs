//! Searching DMT transfers and bill payments for operators, and the parts
//! of a transaction's timeline that only the store has (its journals with
//! their postings).
//!
//! # Order and paging
//!
//! Rows come newest first in one total order over both kinds: by
//! `created_at` descending, then the kind (`dmt` before `bbps`), then the
//! id (`ackno`, `txnid`) descending. A page ends at a [`SearchCursor`], the
//! key of its last row; the next page is every matching row whose key sorts
//! after it. The key is fixed when a row is inserted and never changes, so a
//! walk from page to page returns every row that existed when the walk
//! started (and still matches) exactly once, whatever is inserted meanwhile,
//! on either engine: a row inserted during the walk either sorts before the
//! cursor (it is not returned: it is newer, or it was imported or committed
//! late with an earlier time behind the cursor) or after it (it is returned
//! once, like any other). Nothing depends on ids growing or on commit order
//! (ids are keyed permutations, PostgreSQL may commit out of order).
//!
//! Each kind is asked separately (`limit + 1` rows of each, through an
//! index for every filter: see the migrations `*_search_indexes.sql`) and
//! the two lists are merged (`services::search`).

use super::columns::{StoredRow, Value};
use super::transactions::{dmt_column, TxnTable};
use super::*;
use crate::domain::{BillStatus, DmtStatus};

/// Which rows a search returns: every filter given must hold (AND). A
/// filter that only one kind has (`ackno`, `utr`, `mobile`, `account` for
/// transfers; `txnid`, `canumber` for bill payments) leaves the other kind out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// Only this kind.
    pub kind: Option<TxnKind>,
    /// Only this partner's.
    pub partner: Option<RegistrationId>,
    /// The partner's reference, exactly.
    pub reference: Option<String>,
    /// The transfer with this ackno.
    pub ackno: Option<i64>,
    /// The bill payment with this txnid.
    pub txnid: Option<i64>,
    /// Transfers with this UTR.
    pub utr: Option<String>,
    /// Transfers of the remitter with this mobile number (transfers made
    /// through the DMT V1 API, the ones that have a remitter).
    pub mobile: Option<String>,
    /// Transfers to this beneficiary account.
    pub account: Option<String>,
    /// Bill payments for this customer account (`canumber`).
    pub canumber: Option<String>,
    /// Only rows in one of these states.
    pub status: Option<StatusFilter>,
    /// Created at or after this instant.
    pub from: Option<Timestamp>,
    /// Created before this instant.
    pub to: Option<Timestamp>,
    /// Amount at least this.
    pub min_amount: Option<Paise>,
    /// Amount at most this.
    pub max_amount: Option<Paise>,
}

/// The states a search keeps, per kind; an empty list leaves that kind out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusFilter {
    /// Transfer states.
    pub dmt: Vec<DmtStatus>,
    /// Bill payment states.
    pub bills: Vec<BillStatus>,
}

/// Where a page ended: the key of its last row (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCursor {
    /// The row's `created_at` (Unix seconds).
    pub created_at: i64,
    /// Its kind.
    pub kind: TxnKind,
    /// Its ackno or txnid.
    pub id: i64,
}

impl SearchCursor {
    /// The rank of a kind in the order at one instant: transfers first.
    fn rank(kind: TxnKind) -> u8 {
        match kind {
            TxnKind::Dmt => 1,
            TxnKind::Bbps => 0,
        }
    }

    /// Whether a row with key `(created_at, kind, id)` comes after this
    /// cursor, newest first.
    pub fn precedes(&self, created_at: i64, kind: TxnKind, id: i64) -> bool {
        (created_at, Self::rank(kind), id) < (self.created_at, Self::rank(self.kind), self.id)
    }

    /// The cursor as `(created_at, id) < ($c, bound)` on one kind's table:
    /// the id bound that leaves exactly the rows after the cursor.
    fn bound_for(&self, kind: TxnKind) -> i64 {
        match Self::rank(kind).cmp(&Self::rank(self.kind)) {
            std::cmp::Ordering::Less => i64::MAX,
            std::cmp::Ordering::Equal => self.id,
            std::cmp::Ordering::Greater => i64::MIN,
        }
    }
}

/// A row a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A transfer, with its remitter's mobile number if it has a route.
    Dmt(DmtTransfer, Option<String>),
    /// A bill payment.
    Bill(BillPayment),
}

impl Found {
    /// Its place in the order.
    pub fn cursor(&self) -> SearchCursor {
        match self {
            Found::Dmt(t, _) => SearchCursor { created_at: t.created_at.unix(), kind: TxnKind::Dmt, id: t.ackno },
            Found::Bill(b) => SearchCursor { created_at: b.created_at.unix(), kind: TxnKind::Bbps, id: b.txnid },
        }
    }
}

/// A journal of one transaction with its postings, as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnJournal {
    /// The journal's id.
    pub id: i64,
    /// `debit`, `refund`, … as stored.
    pub purpose: String,
    /// Its memo.
    pub memo: String,
    /// When it was written.
    pub at: Timestamp,
    /// (account, amount in paise), in the order written.
    pub postings: Vec<(String, i64)>,
}

/// How many transactions of one kind in one state, and their amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTotal {
    /// The kind.
    pub kind: TxnKind,
    /// The state as stored: a transfer's code, a bill payment's name.
    pub status: String,
    /// How many.
    pub count: i64,
    /// Their amounts together, in paise.
    pub paise: i64,
}

/// One page of a search of one kind: at most `limit` rows matching
/// `filter`, after `after`, newest first.
#[derive(Debug, Clone, Copy)]
pub struct SearchPage<'a> {
    pub filter: &'a SearchFilter,
    pub kind: TxnKind,
    pub after: Option<SearchCursor>,
    pub limit: u32,
}

/// Searching transactions and reading a transaction's journals.
#[async_trait]
pub trait SearchStore: Send + Sync + 'static {
    /// At most `limit` rows of one kind matching `filter`, after `after`,
    /// newest first (see the module's doc). Empty when the filter leaves
    /// the kind out.
    async fn search_kind(&self, page: SearchPage<'_>) -> StoreResult<Vec<Found>>;
    /// The engine's query plan of [`SearchStore::search_kind`] for these
    /// arguments, one line per plan node (`EXPLAIN QUERY PLAN` on SQLite,
    /// `EXPLAIN` on PostgreSQL); empty when the filter leaves the kind out.
    /// `no_seq_scan` plans with sequential scans switched off (PostgreSQL's
    /// `enable_seqscan`, for a store too small for its planner to prefer an
    /// index); SQLite ignores it. For the bench and the tests that show each
    /// filter is served by an index.
    async fn search_plan(&self, page: SearchPage<'_>, no_seq_scan: bool) -> StoreResult<Vec<String>>;
    /// The journals of one transaction with their postings, oldest first.
    async fn txn_journals(&self, kind: TxnKind, id: i64) -> StoreResult<Vec<TxnJournal>>;
    /// Transactions created at or after `since`, counted and summed by kind
    /// and state (the console's dashboard).
    async fn state_totals(&self, since: Timestamp) -> StoreResult<Vec<StateTotal>>;
}

/// Whether `filter` can match rows of `kind` at all.
pub fn kind_applies(filter: &SearchFilter, kind: TxnKind) -> bool {
    if filter.kind.is_some_and(|k| k != kind) {
        return false;
    }
    match kind {
        TxnKind::Dmt => {
            filter.txnid.is_none()
                && filter.canumber.is_none()
                && filter.status.as_ref().is_none_or(|s| !s.dmt.is_empty())
        }
        TxnKind::Bbps => {
            filter.ackno.is_none()
                && filter.utr.is_none()
                && filter.mobile.is_none()
                && filter.account.is_none()
                && filter.status.as_ref().is_none_or(|s| !s.bills.is_empty())
        }
    }
}

/// The SELECT a search of `kind` runs on either engine and its values, or
/// `None` when the filter leaves the kind out. `$n` are numbered in order
/// of appearance. Transfers come joined to their route (the remitter's
/// mobile is the column after the transfer's); a filter on the mobile
/// number goes through `dmt_routes` by its index.
pub(crate) fn search_sql<'a>(page: &SearchPage<'a>) -> Option<(String, Vec<Value<'a>>)> {
    let SearchPage { filter, kind, after, limit } = *page;
    if !kind_applies(filter, kind) {
        return None;
    }
    let mut query = Where::default();
    let id = match kind {
        TxnKind::Dmt => "t.ackno",
        TxnKind::Bbps => "t.txnid",
    };
    if let Some(partner) = filter.partner {
        query.and("t.partner_id = ", partner.number().into());
    }
    if let Some(reference) = &filter.reference {
        query.and("t.reference_id = ", reference.as_str().into());
    }
    match kind {
        TxnKind::Dmt => {
            if let Some(ackno) = filter.ackno {
                query.and("t.ackno = ", ackno.into());
            }
            if let Some(utr) = &filter.utr {
                query.and("t.utr = ", utr.as_str().into());
            }
            if let Some(mobile) = &filter.mobile {
                let n = query.push(mobile.as_str().into());
                query
                    .conditions
                    .push(format!("t.ackno IN (SELECT ackno FROM dmt_routes WHERE remitter_mobile = ${n})"));
            }
            if let Some(account) = &filter.account {
                query.and("t.account = ", account.as_str().into());
            }
            if let Some(status) = &filter.status {
                query.any("t.status", status.dmt.iter().map(|s| s.code().into()).collect());
            }
        }
        TxnKind::Bbps => {
            if let Some(txnid) = filter.txnid {
                query.and("t.txnid = ", txnid.into());
            }
            if let Some(canumber) = &filter.canumber {
                query.and("t.ca_number = ", canumber.as_str().into());
            }
            if let Some(status) = &filter.status {
                query.any("t.status", status.bills.iter().map(|s| s.name().into()).collect());
            }
        }
    }
    if let Some(from) = filter.from {
        query.and("t.created_at >= ", from.unix().into());
    }
    if let Some(to) = filter.to {
        query.and("t.created_at < ", to.unix().into());
    }
    if let Some(min) = filter.min_amount {
        query.and("t.amount >= ", min.get().into());
    }
    if let Some(max) = filter.max_amount {
        query.and("t.amount <= ", max.get().into());
    }
    // An amount range with nothing else to narrow the search is read from
    // the amount index and sorted: `+ 0` keeps the planner from walking
    // the time index in order instead, through every row, when the range
    // is rare (SQLite has no statistics to tell). With any other filter,
    // that filter's index (ending in the time) gives the order.
    let time = if amount_only(filter) { "t.created_at + 0" } else { "t.created_at" };
    if let Some(cursor) = after {
        let c = query.push(cursor.created_at.into());
        let b = query.push(cursor.bound_for(kind).into());
        query.conditions.push(format!("({time}, {id}) < (${c}, ${b})"));
    }
    let select = match kind {
        TxnKind::Dmt => concat!(
            "SELECT ",
            transactions::dmt_columns!("t"),
            ", r.remitter_mobile FROM dmt_transfers t LEFT JOIN dmt_routes r ON r.ackno = t.ackno"
        ),
        TxnKind::Bbps => concat!("SELECT ", transactions::bill_columns!("t"), " FROM bill_payments t"),
    };
    let mut sql = select.to_owned();
    if !query.conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&query.conditions.join(" AND "));
    }
    let n = query.push(i64::from(limit).into());
    sql.push_str(&format!(" ORDER BY {time} DESC, {id} DESC LIMIT ${n}"));
    Some((sql, query.values))
}

/// Whether an amount range is the only filter that narrows the search
/// (the kind aside).
fn amount_only(filter: &SearchFilter) -> bool {
    let SearchFilter {
        kind: _,
        partner,
        reference,
        ackno,
        txnid,
        utr,
        mobile,
        account,
        canumber,
        status,
        from,
        to,
        min_amount,
        max_amount,
    } = filter;
    (min_amount.is_some() || max_amount.is_some())
        && partner.is_none()
        && reference.is_none()
        && ackno.is_none()
        && txnid.is_none()
        && utr.is_none()
        && mobile.is_none()
        && account.is_none()
        && canumber.is_none()
        && status.is_none()
        && from.is_none()
        && to.is_none()
}

/// The conditions of a search and their values, numbered as they come.
#[derive(Default)]
struct Where<'a> {
    conditions: Vec<String>,
    values: Vec<Value<'a>>,
}

impl<'a> Where<'a> {
    /// Adds a value; its `$n`.
    fn push(&mut self, value: Value<'a>) -> usize {
        self.values.push(value);
        self.values.len()
    }

    /// `<left>$n` with the value.
    fn and(&mut self, left: &str, value: Value<'a>) {
        let n = self.push(value);
        self.conditions.push(format!("{left}${n}"));
    }

    /// `<column> IN ($n, …)`.
    fn any(&mut self, column: &str, values: Vec<Value<'a>>) {
        let names: Vec<String> = values.into_iter().map(|v| format!("${}", self.push(v))).collect();
        self.conditions.push(format!("{column} IN ({})", names.join(", ")));
    }
}

/// The first line of a search's plan (from [`SearchStore::search_plan`])
/// that reads a whole table of the search: SQLite's `SCAN t` (of the table,
/// or of an index from end to end: a filter's rows are then found by
/// reading every row, where a `SEARCH` reads only a key's range) or
/// `SCAN r`/`SCAN dmt_routes`; PostgreSQL's `Seq Scan on` a transaction
/// table or `dmt_routes`. A search without filters reads the time index
/// in order (`SCAN t USING INDEX …_by_time`), stopping at the page's end:
/// check such a plan with `unfiltered` true.
pub fn full_scan(plan: &[String], unfiltered: bool) -> Option<&str> {
    plan.iter().map(|line| line.trim()).find(|line| {
        let ordered_walk = unfiltered && line.starts_with("SCAN t USING INDEX") && line.ends_with("_by_time");
        let sqlite = ["SCAN t", "SCAN r", "SCAN dmt_routes"]
            .iter()
            .any(|scan| (*line == *scan || line.starts_with(&format!("{scan} "))) && !ordered_walk);
        let postgres = ["dmt_transfers", "bill_payments", "dmt_routes"]
            .iter()
            .any(|table| line.contains(&format!("Seq Scan on {table}")));
        sqlite || postgres
    })
}

/// Reads a row of a search of `kind`.
pub(crate) fn decode_found<R: StoredRow>(row: &R, kind: TxnKind) -> Result<Found, R::Error> {
    Ok(match kind {
        TxnKind::Dmt => Found::Dmt(DmtTransfer::decode(row, 0)?, row.opt_text(dmt_column::WIDTH)?),
        TxnKind::Bbps => Found::Bill(BillPayment::decode(row, 0)?),
    })
}

/// A row of [`sql::TXN_JOURNALS`]: journal id, purpose, memo, at, account, amount.
pub(crate) type JournalPostingRow = (i64, String, String, i64, String, i64);

/// Reads a row of [`sql::TXN_JOURNALS`], on either engine.
pub(crate) fn journal_posting_from_row<R: StoredRow>(row: &R) -> Result<JournalPostingRow, R::Error> {
    Ok((row.int(0)?, row.text(1)?, row.text(2)?, row.int(3)?, row.text(4)?, row.int(5)?))
}

/// Reads a row of [`sql::DMT_TOTALS`] or [`sql::BILL_TOTALS`] (the totals
/// of `kind`), on either engine.
pub(crate) fn state_total_from_row<R: StoredRow>(row: &R, kind: TxnKind) -> Result<StateTotal, R::Error> {
    Ok(StateTotal { kind, status: row.text(0)?, count: row.int(1)?, paise: row.int(2)? })
}

/// Groups rows of [`sql::TXN_JOURNALS`] (journal id, purpose, memo, at,
/// account, amount) into journals.
pub(crate) fn group_journals(rows: Vec<JournalPostingRow>) -> Vec<TxnJournal> {
    let mut journals: Vec<TxnJournal> = Vec::new();
    for (id, purpose, memo, at, account, amount) in rows {
        match journals.last_mut() {
            Some(last) if last.id == id => last.postings.push((account, amount)),
            _ => journals.push(TxnJournal {
                id,
                purpose,
                memo,
                at: Timestamp::from_unix(at),
                postings: vec![(account, amount)],
            }),
        }
    }
    journals
}

/// SQL both engines take.
pub(crate) mod sql {
    /// A transaction's journals and their postings, oldest first: `$1` kind, `$2` id.
    pub(crate) const TXN_JOURNALS: &str = "SELECT j.id, j.purpose, j.memo, j.at, p.account, p.amount \
         FROM journals j JOIN postings p ON p.journal_id = j.id \
         WHERE j.kind = $1 AND j.txn_id = $2 ORDER BY j.id, p.id";
    /// Transfers made at or after `$1`: state, count, amount in paise.
    pub(crate) const DMT_TOTALS: &str = "SELECT CAST(status AS TEXT), COUNT(*), \
         CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM dmt_transfers WHERE created_at >= $1 GROUP BY status";
    /// Bill payments made at or after `$1`: state, count, amount in paise.
    pub(crate) const BILL_TOTALS: &str = "SELECT CAST(status AS TEXT), COUNT(*), \
         CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM bill_payments WHERE created_at >= $1 GROUP BY status";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::columns::assert_parameters_in_order;

    fn every_filter() -> SearchFilter {
        SearchFilter {
            kind: None,
            partner: Some(RegistrationId::new(1001)),
            reference: Some("R1".into()),
            ackno: None,
            txnid: None,
            utr: None,
            mobile: None,
            account: None,
            canumber: None,
            status: Some(StatusFilter {
                dmt: vec![DmtStatus::Success, DmtStatus::Failed],
                bills: vec![BillStatus::Success],
            }),
            from: Some(Timestamp::from_unix(10)),
            to: Some(Timestamp::from_unix(20)),
            min_amount: Some(Paise::new(100)),
            max_amount: Some(Paise::new(200)),
        }
    }

    #[test]
    fn a_search_names_its_parameters_in_order_and_binds_one_value_each() {
        let cursor = SearchCursor { created_at: 15, kind: TxnKind::Bbps, id: 7 };
        let dmt = SearchFilter {
            utr: Some("U".into()),
            mobile: Some("9".into()),
            account: Some("A".into()),
            ackno: Some(3),
            ..every_filter()
        };
        let bill = SearchFilter { canumber: Some("C".into()), txnid: Some(4), ..every_filter() };
        for (filter, kind) in [(&dmt, TxnKind::Dmt), (&bill, TxnKind::Bbps)] {
            let (sql, values) = search_sql(&SearchPage { filter, kind, after: Some(cursor), limit: 50 })
                .unwrap_or_else(|| panic!("{kind:?} applies"));
            assert_parameters_in_order(&sql);
            assert!(sql.contains(&format!("${}", values.len())) && !sql.contains(&format!("${}", values.len() + 1)));
        }
        assert_parameters_in_order(sql::TXN_JOURNALS);
        assert_parameters_in_order(sql::DMT_TOTALS);
        assert_parameters_in_order(sql::BILL_TOTALS);
    }

    #[test]
    fn a_filter_of_one_kind_leaves_the_other_out() {
        let utr = SearchFilter { utr: Some("U".into()), ..SearchFilter::default() };
        assert!(search_sql(&SearchPage { filter: &utr, kind: TxnKind::Bbps, after: None, limit: 5 }).is_none());
        let ca = SearchFilter { canumber: Some("C".into()), ..SearchFilter::default() };
        assert!(search_sql(&SearchPage { filter: &ca, kind: TxnKind::Dmt, after: None, limit: 5 }).is_none());
        let only_bill_states = SearchFilter {
            status: Some(StatusFilter { dmt: vec![], bills: vec![BillStatus::Pending] }),
            ..SearchFilter::default()
        };
        assert!(
            search_sql(&SearchPage { filter: &only_bill_states, kind: TxnKind::Dmt, after: None, limit: 5 }).is_none()
        );
        assert!(
            search_sql(&SearchPage { filter: &only_bill_states, kind: TxnKind::Bbps, after: None, limit: 5 }).is_some()
        );
    }

    #[test]
    fn the_cursor_bound_keeps_exactly_the_rows_after_it() {
        let keys = [(5, TxnKind::Dmt, 9), (5, TxnKind::Dmt, 2), (5, TxnKind::Bbps, 8), (4, TxnKind::Dmt, 99)];
        for cursor in keys.map(|(c, k, i)| SearchCursor { created_at: c, kind: k, id: i }) {
            for (created_at, kind, id) in keys {
                let by_sql = (created_at, id) < (cursor.created_at, cursor.bound_for(kind));
                assert_eq!(by_sql, cursor.precedes(created_at, kind, id), "{cursor:?} vs {created_at} {kind:?} {id}");
            }
        }
    }
}
