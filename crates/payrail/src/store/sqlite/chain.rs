//! The history chains on SQLite (see `store::chain`). One writer at a time:
//! every row without a hash was written by the group being committed, which
//! seals them all just before its commit (`writer_thread`).

use std::collections::BTreeMap;

use super::*;
use crate::store::chain::{
    head, history_link, journal_link, posting, seal, sql, unsealed_row, with_postings, ChainHead, ChainStore, Link,
    LinkCursor, LinkRef, LinkTable, SEAL_STEP,
};

/// Chains every row that has no hash yet, in id order (history rows, then
/// journals), a step of [`SEAL_STEP`] rows at a time.
pub(super) fn seal_pending(conn: &Connection) -> rusqlite::Result<()> {
    loop {
        let mut pending = all_rows(conn, sql::UNSEALED_HISTORY, [SEAL_STEP], |row| history_link(row))?;
        let full = pending.len() as i64 == SEAL_STEP;
        let mut journals = all_rows(conn, sql::UNSEALED_JOURNALS, [SEAL_STEP], |row| journal_link(row))?;
        if pending.is_empty() && journals.is_empty() {
            return Ok(());
        }
        let full = full || journals.len() as i64 == SEAL_STEP;
        if !journals.is_empty() {
            with_postings(&mut journals, all_rows(conn, sql::UNSEALED_POSTINGS, [SEAL_STEP], |row| posting(row))?);
        }
        pending.append(&mut journals);
        let mut heads = BTreeMap::new();
        for partner in crate::store::chain::partners(&pending) {
            if let Some(found) = optional_row(conn, sql::HEAD, [partner], |row| head(row))? {
                heads.insert(partner, found);
            }
        }
        let moved = seal(&mut pending, &mut heads);
        for link in &pending {
            match link.row.table {
                LinkTable::History => conn.prepare_cached(sql::SEAL_HISTORY)?.execute(params![
                    link.partner,
                    link.seq,
                    link.prev,
                    link.hash,
                    link.row.id
                ])?,
                LinkTable::Journal => conn.prepare_cached(sql::SEAL_JOURNAL)?.execute(params![
                    link.seq,
                    link.prev,
                    link.hash,
                    link.row.id
                ])?,
            };
        }
        for partner in moved {
            let head = &heads[&partner];
            conn.prepare_cached(sql::SET_HEAD)?.execute(params![head.partner, head.seq, head.last, head.hash])?;
        }
        if !full {
            return Ok(());
        }
    }
}

#[async_trait]
impl ChainStore for SqliteStore {
    async fn chain_heads(&self) -> StoreResult<Vec<ChainHead>> {
        self.read(|conn| all_rows(conn, sql::HEADS, [], |row| head(row)))
    }

    async fn chain_links(&self, table: LinkTable, after: LinkCursor, limit: u32) -> StoreResult<Vec<Link>> {
        self.read(|conn| {
            let at = params![after.partner, after.seq, limit];
            match table {
                LinkTable::History => all_rows(conn, sql::HISTORY_LINKS, at, |row| history_link(row)),
                LinkTable::Journal => {
                    let mut journals = all_rows(conn, sql::JOURNAL_LINKS, at, |row| journal_link(row))?;
                    with_postings(&mut journals, all_rows(conn, sql::JOURNAL_LINK_POSTINGS, at, |row| posting(row))?);
                    Ok(journals)
                }
            }
        })
    }

    async fn unsealed_links(&self, limit: u32) -> StoreResult<Vec<LinkRef>> {
        self.read(|conn| all_rows(conn, sql::UNSEALED_ROWS, [limit], |row| unsealed_row(row)))
    }
}
