//! The history chains on PostgreSQL (see `store::chain`). A transaction
//! that writes history rows or journals seals its own rows last, just
//! before its commit ([`commit_sealed`]): it finds them by its id (`xid`),
//! then locks its partners' heads in partner order. Nothing is
//! locked after a head, so the heads cannot deadlock; and the partner's
//! writes already queue on its wallet row.

use std::collections::BTreeMap;

use super::*;
use crate::store::chain::sql::{
    history_link_sql, history_partner, history_records, journal_link_sql, postings_of, unsealed_history,
};
use crate::store::chain::{
    head, history_link, journal_link, posting, seal, sql, unsealed_row, with_postings, ChainHead, ChainStore, Link,
    LinkCursor, LinkRef, LinkTable, SEAL_STEP,
};

/// Which unsealed rows a sealing step reads: the statements for history
/// rows, journals and their postings, each limited to `$1` rows; and the
/// statement that locks and reads the heads of their partners (of every
/// unsealed row `heads` selects, without the limit: a superset of the
/// step's, which is harmless, and lets it run beside the reads).
struct Pending {
    history: &'static str,
    journals: &'static str,
    postings: &'static str,
    heads: &'static str,
}

/// Locks the heads of the partners of the unsealed rows (`$history` of
/// `status_history h`, `$journals` of `journals`), in partner order, making
/// those not there yet, and reads them: one statement, so no head is read
/// before it exists or locked out of order. (`DO UPDATE` with no change
/// locks the row and returns it as it is.)
macro_rules! lock_heads_of {
    ($history:literal, $journals:literal) => {
        concat!(
            "INSERT INTO chain_heads (partner_id, seq, last, hash) SELECT p, 0, '', '' FROM (SELECT ",
            history_partner!(),
            " FROM status_history h ",
            history_records!(),
            " WHERE ",
            $history,
            " UNION SELECT partner_id FROM journals WHERE ",
            $journals,
            ") AS own(p) ORDER BY p \
             ON CONFLICT (partner_id) DO UPDATE SET seq = chain_heads.seq RETURNING partner_id, seq, last, hash"
        )
    };
}

/// The rows this transaction wrote.
const OWN: Pending = Pending {
    history: unsealed_history!("h.xid = pg_current_xact_id() AND h.chain_hash IS NULL"),
    journals: journal_link_sql!("j.xid = pg_current_xact_id() AND j.chain_hash IS NULL", "j.id LIMIT $1"),
    postings: postings_of!(
        "SELECT id FROM journals WHERE xid = pg_current_xact_id() AND chain_hash IS NULL ORDER BY id LIMIT $1"
    ),
    heads: lock_heads_of!(
        "h.xid = pg_current_xact_id() AND h.chain_hash IS NULL",
        "xid = pg_current_xact_id() AND chain_hash IS NULL"
    ),
};

/// Every committed row without a hash (the migration's).
const ALL: Pending = Pending {
    history: sql::UNSEALED_HISTORY,
    journals: sql::UNSEALED_JOURNALS,
    postings: sql::UNSEALED_POSTINGS,
    heads: lock_heads_of!("h.chain_hash IS NULL", "chain_hash IS NULL"),
};

// One statement per table for the whole step (`UNNEST`), not one per row.
const SEAL_HISTORIES: &str = "UPDATE status_history h SET chain_partner = u.partner, chain_seq = u.seq, \
     chain_prev = u.prev, chain_hash = u.hash \
     FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[]) AS u(id, partner, seq, prev, hash) \
     WHERE h.id = u.id";
const SEAL_JOURNALS: &str = "UPDATE journals j SET chain_seq = u.seq, chain_prev = u.prev, chain_hash = u.hash \
     FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS u(id, seq, prev, hash) WHERE j.id = u.id";
const SET_HEADS: &str = "UPDATE chain_heads c SET seq = u.seq, last = u.last, hash = u.hash \
     FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS u(partner, seq, last, hash) \
     WHERE c.partner_id = u.partner";

/// Seals the rows `tx` wrote, a step at a time (an import writes more rows
/// than one step takes), then commits it (`what`: "Failed to commit …").
pub(super) async fn commit_sealed(tx: Transaction<'_>, what: &'static str) -> StoreResult<()> {
    while seal_step(&tx, &OWN).await? {}
    tx.commit().await.store_context(what)
}

/// Seals every committed row that has no hash, a step at a time.
pub(super) async fn seal_unsealed(tx: &Transaction<'_>) -> StoreResult<()> {
    while seal_step(tx, &ALL).await? {}
    Ok(())
}

/// Seals up to [`SEAL_STEP`] rows of each table; whether there may be more.
/// Two round trips: the statements of each step are pipelined (sent
/// together on the transaction's connection, run in order by the server),
/// the heads locked after the reads, as the last lock the transaction takes.
async fn seal_step(tx: &Transaction<'_>, rows: &Pending) -> StoreResult<bool> {
    let step = [&SEAL_STEP as &(dyn ToSql + Sync)];
    let (history, journals, postings, locked) = tokio::try_join!(
        query(tx, rows.history, &step, "Failed to read the history to chain"),
        query(tx, rows.journals, &step, "Failed to read the journals to chain"),
        query(tx, rows.postings, &step, "Failed to read the postings to chain"),
        query(tx, rows.heads, &[], "Failed to lock the chain heads"),
    )?;
    if history.is_empty() && journals.is_empty() {
        return Ok(false);
    }
    let full = history.len() as i64 == SEAL_STEP || journals.len() as i64 == SEAL_STEP;
    let mut pending = decode_all(&history, history_link, "Failed to read a history row to chain")?;
    let mut journals = decode_all(&journals, journal_link, "Failed to read a journal to chain")?;
    with_postings(&mut journals, decode_all(&postings, posting, "Failed to read a posting to chain")?);
    pending.append(&mut journals);
    let mut heads: BTreeMap<i64, ChainHead> = decode_all(&locked, head, "Failed to read a chain head")?
        .into_iter()
        .filter(|head| head.seq > 0)
        .map(|head| (head.partner, head))
        .collect();
    let moved = seal(&mut pending, &mut heads);
    let heads: Vec<&ChainHead> = moved.iter().map(|partner| &heads[partner]).collect();
    let partner: Vec<i64> = heads.iter().map(|h| h.partner).collect();
    let seq: Vec<i64> = heads.iter().map(|h| h.seq).collect();
    let last: Vec<&str> = heads.iter().map(|h| &*h.last).collect();
    let hash: Vec<&str> = heads.iter().map(|h| &*h.hash).collect();
    let new_heads: [(&(dyn ToSql + Sync), Type); 4] =
        [(&partner, Type::INT8_ARRAY), (&seq, Type::INT8_ARRAY), (&last, Type::TEXT_ARRAY), (&hash, Type::TEXT_ARRAY)];
    tokio::try_join!(
        write_links(tx, &pending, LinkTable::History),
        write_links(tx, &pending, LinkTable::Journal),
        execute_planned(tx, SET_HEADS, &new_heads, "Failed to move the chain heads"),
    )?;
    Ok(full)
}

/// Writes the chain columns of `table`'s links in one statement, planned
/// for these rows ([`execute_planned`]: by their ids, never by a scan).
async fn write_links(tx: &Transaction<'_>, links: &[Link], table: LinkTable) -> StoreResult<()> {
    let links: Vec<&Link> = links.iter().filter(|link| link.row.table == table).collect();
    if links.is_empty() {
        return Ok(());
    }
    let id: Vec<i64> = links.iter().map(|l| l.row.id).collect();
    let seq: Vec<i64> = links.iter().map(|l| l.seq).collect();
    let prev: Vec<Option<&str>> = links.iter().map(|l| l.prev.as_deref()).collect();
    let hash: Vec<&str> = links.iter().map(|l| &*l.hash).collect();
    let (id, seq, prev, hash) = (
        (&id as Param, Type::INT8_ARRAY),
        (&seq as Param, Type::INT8_ARRAY),
        (&prev as Param, Type::TEXT_ARRAY),
        (&hash as Param, Type::TEXT_ARRAY),
    );
    match table {
        LinkTable::History => {
            let partner: Vec<i64> = links.iter().map(|l| l.partner).collect();
            let params = [id, (&partner, Type::INT8_ARRAY), seq, prev, hash];
            execute_planned(tx, SEAL_HISTORIES, &params, "Failed to chain the history rows").await?
        }
        LinkTable::Journal => {
            execute_planned(tx, SEAL_JOURNALS, &[id, seq, prev, hash], "Failed to chain the journals").await?
        }
    };
    Ok(())
}

/// A statement parameter.
type Param<'a> = &'a (dyn ToSql + Sync);

#[async_trait]
impl ChainStore for PostgresStore {
    async fn chain_heads(&self) -> StoreResult<Vec<ChainHead>> {
        let client = self.client().await?;
        let rows = query(&client, sql::HEADS, &[], "Failed to read the chain heads").await?;
        decode_all(&rows, head, "Failed to read a chain head")
    }

    async fn chain_links(&self, table: LinkTable, after: LinkCursor, limit: u32) -> StoreResult<Vec<Link>> {
        let client = self.client().await?;
        let limit = i64::from(limit);
        let params: [&(dyn ToSql + Sync); 3] = [&after.partner, &after.seq, &limit];
        match table {
            LinkTable::History => {
                let rows = query(&client, sql::HISTORY_LINKS, &params, "Failed to read the history links").await?;
                decode_all(&rows, history_link, "Failed to read a history link")
            }
            LinkTable::Journal => {
                let rows = query(&client, sql::JOURNAL_LINKS, &params, "Failed to read the journal links").await?;
                let mut journals = decode_all(&rows, journal_link, "Failed to read a journal link")?;
                let postings =
                    query(&client, sql::JOURNAL_LINK_POSTINGS, &params, "Failed to read the postings").await?;
                with_postings(&mut journals, decode_all(&postings, posting, "Failed to read a posting")?);
                Ok(journals)
            }
        }
    }

    async fn unsealed_links(&self, limit: u32) -> StoreResult<Vec<LinkRef>> {
        let client = self.client().await?;
        let limit = i64::from(limit);
        let rows = query(&client, sql::UNSEALED_ROWS, &[&limit], "Failed to read the rows without a hash").await?;
        decode_all(&rows, unsealed_row, "Failed to read a row without a hash")
    }
}
