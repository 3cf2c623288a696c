//! The change feed (issue 15, item 2): a partner's state changes in commit
//! order, read a page at a time from a cursor, none skipped or repeated.
//!
//! Every change is a status-history row (a record's creation is its first).
//! A row that does not change the state (a note: `from_status` equals
//! `to_status`) is not a change and is left out.
//!
//! **SQLite** has one writer at a time, so history ids are assigned in commit
//! order: a page is the rows after the cursor's id, in id order.
//!
//! **PostgreSQL** commits concurrent writers in any order, so a row with a
//! lower id may become visible after one with a higher id. Each history row
//! carries the id of the transaction that wrote it (`xid`, a column whose
//! default is `pg_current_xact_id()`), and a page holds only rows written by
//! transactions that have ended: `xid` below the oldest transaction still
//! running (`pg_snapshot_xmin(pg_current_snapshot())`). That set only grows
//! by rows ordered after everything already in it, so paging in
//! `(xid, id)` order from a cursor neither skips nor repeats a row. One
//! record's changes are ordered too: each is made under the record's row
//! lock, and a transaction takes its id at that lock, after the previous
//! change committed. A change becomes readable once every transaction that
//! began before it ended (milliseconds, here).

use super::columns::StoredRow;
use super::*;

/// Where a page of the feed starts: after this `(xid, id)` (SQLite: `xid` 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedCursor {
    /// The writing transaction's id (PostgreSQL), 0 on SQLite.
    pub xid: i64,
    /// The history row's id.
    pub id: i64,
}

impl FeedCursor {
    /// The cursor as partners see it: `<xid>.<id>`.
    pub fn encode(self) -> String {
        format!("{}.{}", self.xid, self.id)
    }

    /// Reads what [`FeedCursor::encode`] wrote.
    pub fn decode(text: &str) -> Option<FeedCursor> {
        let (xid, id) = text.split_once('.')?;
        let ok = |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        if !ok(xid) || !ok(id) {
            return None;
        }
        Some(FeedCursor { xid: xid.parse().ok()?, id: id.parse().ok()? })
    }
}

/// One change, as the feed gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedChange {
    /// Its place in the feed.
    pub cursor: FeedCursor,
    /// Which kind of record.
    pub kind: TxnKind,
    /// The partner's reference.
    pub reference: String,
    /// The state it moved to, as stored.
    pub to_status: String,
    /// When.
    pub at: Timestamp,
    /// The partner event made for it (its callback's `event_id`), if any.
    pub event_id: Option<i64>,
}

/// The change feed.
#[async_trait]
pub trait FeedStore: Send + Sync + 'static {
    /// At most `limit` of `partner`'s changes after `after`, in commit order.
    async fn changes(&self, partner: RegistrationId, after: FeedCursor, limit: u32) -> StoreResult<Vec<FeedChange>>;
}

/// The feed's SQL: the columns every row has, after the engine's position columns.
pub(crate) mod sql {
    /// What a change row holds after its position: kind, reference, state, time, event id.
    macro_rules! change_select {
        ($position:literal, $where:literal, $order:literal) => {
            concat!(
                "SELECT ",
                $position,
                ", h.kind, COALESCE(d.reference_id, b.reference_id), h.to_status, h.at, \
                 (SELECT MIN(e.id) FROM partner_events e WHERE e.kind = h.kind AND e.txn_id = h.txn_id \
                 AND e.status = h.to_status) \
                 FROM status_history h \
                 LEFT JOIN dmt_transfers d ON h.kind = 'dmt' AND d.ackno = h.txn_id \
                 LEFT JOIN bill_payments b ON h.kind = 'bbps' AND b.txnid = h.txn_id \
                 WHERE COALESCE(d.partner_id, b.partner_id) = $1 \
                 AND (h.from_status IS NULL OR h.from_status <> h.to_status) AND ",
                $where,
                " ORDER BY ",
                $order,
                " LIMIT $3"
            )
        };
    }
    /// SQLite: partner `$1`'s changes after history id `$2`, `$3` of them.
    pub(crate) const CHANGES_SQLITE: &str = change_select!("0, h.id", "h.id > $2", "h.id");
    /// PostgreSQL: partner `$1`'s changes after `($4 xid, $2 id)` by transactions that have ended, `$3` of them.
    pub(crate) const CHANGES_POSTGRES: &str = change_select!(
        "h.xid::text::bigint, h.id",
        "(h.xid, h.id) > ($4::bigint::text::xid8, $2) AND h.xid < pg_snapshot_xmin(pg_current_snapshot())",
        "h.xid, h.id"
    );
}

/// Reads a change row, on either engine.
pub(crate) fn change_from_row<R: StoredRow>(row: &R) -> Result<FeedChange, R::Error> {
    use super::columns::BadState;
    Ok(FeedChange {
        cursor: FeedCursor { xid: row.int(0)?, id: row.int(1)? },
        kind: row.parsed(2, |s| TxnKind::parse(s).ok_or_else(|| BadState(s.into())))?,
        reference: row.opt_text(3)?.unwrap_or_default(),
        to_status: row.text(4)?,
        at: Timestamp::from_unix(row.int(5)?),
        event_id: row.opt_int(6)?,
    })
}
