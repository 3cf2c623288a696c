//! The tamper-evident history (issue 15, item 6): every status-history row
//! and every journal is a link of its partner's hash chain.
//!
//! A link's hash is SHA-256 over the previous link's hash, the link's
//! number in its chain (`chain_seq`, from 1), the name of the previous link
//! (`chain_prev`, e.g. `history:41`) and the row's content: every column a
//! partner or an auditor reads (for a journal, its postings too). Changing
//! a row breaks its own link; removing one leaves a gap in the numbers that
//! the next link names (its `chain_prev`), and removing the last one leaves
//! the chain short of its head (`chain_heads`). `payrail anchor` prints the
//! heads for an auditor to keep elsewhere, so that even a chain rewritten
//! from its start is caught (`payrail verify --anchor FILE`).
//!
//! **When rows are chained.** Inside the transaction that writes them, as
//! its last step before the commit (`seal`): the writer of SQLite seals
//! every unsealed row before each group commit; PostgreSQL seals the rows
//! its own transaction wrote (`xid = pg_current_xact_id()`), locking the
//! partners' head rows in partner order (one upsert). Nothing is locked
//! after a head, so the heads cannot take part in a deadlock, and a
//! partner's writes already queue on its wallet row, so the head lock costs
//! little more. A row is never visible without its hash. Rows written before
//! the chain existed are chained by the migration (in id order).
//!
//! The chains are per partner: a history row belongs to its record's partner
//! (kept in `chain_partner`; 0 for a row whose record is gone), a journal to
//! its `partner_id`.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use super::columns::StoredRow;
use super::StoreResult;

/// The two tables whose rows are links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkTable {
    /// `status_history`.
    History,
    /// `journals` (with their `postings`).
    Journal,
}

impl LinkTable {
    /// How a link names its table (`chain_prev`, `chain_heads.last`, [`sql::UNSEALED_ROWS`]).
    fn key(self) -> &'static str {
        match self {
            LinkTable::History => "history",
            LinkTable::Journal => "journal",
        }
    }

    /// Reads what [`LinkTable::key`] wrote.
    fn from_key(key: &str) -> Option<LinkTable> {
        match key {
            "history" => Some(LinkTable::History),
            "journal" => Some(LinkTable::Journal),
            _ => None,
        }
    }
}

/// Which row a link is: its table and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkRef {
    /// The table.
    pub table: LinkTable,
    /// The row's id.
    pub id: i64,
}

impl LinkRef {
    /// As stored in `chain_prev` and `chain_heads.last`: `history:41`, `journal:7`.
    pub fn encode(self) -> String {
        format!("{}:{}", self.table.key(), self.id)
    }

    /// Reads what [`LinkRef::encode`] wrote.
    pub fn decode(text: &str) -> Option<LinkRef> {
        let (table, id) = text.split_once(':')?;
        Some(LinkRef { table: LinkTable::from_key(table)?, id: id.parse().ok()? })
    }
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.table {
            LinkTable::History => write!(f, "status_history row {}", self.id),
            LinkTable::Journal => write!(f, "journal {}", self.id),
        }
    }
}

/// A stored `chain_prev` or `chain_heads.last` as a reader names it.
pub fn describe(stored: Option<&str>) -> String {
    match stored {
        None => "the start of the chain".to_owned(),
        Some(text) => LinkRef::decode(text).map_or_else(|| format!("{text:?}"), |link| link.to_string()),
    }
}

/// A chain's head as stored: its last link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The partner (0: rows whose record is gone).
    pub partner: i64,
    /// The last link's number.
    pub seq: i64,
    /// The last link's row (`LinkRef::encode`).
    pub last: String,
    /// The last link's hash, hex.
    pub hash: String,
}

/// A sealed link as stored, with the content its hash covers.
#[derive(Debug, Clone)]
pub struct Link {
    /// The row.
    pub row: LinkRef,
    /// Whose chain.
    pub partner: i64,
    /// Its number in the chain.
    pub seq: i64,
    /// The previous link's row (`chain_prev`), `None` for the first.
    pub prev: Option<String>,
    /// Its stored hash, hex.
    pub hash: String,
    /// The row's content as hashed.
    pub content: Vec<u8>,
}

/// Where a page of links starts: after this partner's link number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkCursor {
    /// The partner.
    pub partner: i64,
    /// The link number.
    pub seq: i64,
}

/// What `payrail verify` and `payrail anchor` read.
#[async_trait]
pub trait ChainStore: Send + Sync + 'static {
    /// Every chain's head, by partner.
    async fn chain_heads(&self) -> StoreResult<Vec<ChainHead>>;
    /// At most `limit` sealed links of `table` after `after`, in (partner, number) order.
    async fn chain_links(&self, table: LinkTable, after: LinkCursor, limit: u32) -> StoreResult<Vec<Link>>;
    /// At most `limit` rows that carry no hash (none, unless changed outside payrail).
    async fn unsealed_links(&self, limit: u32) -> StoreResult<Vec<LinkRef>>;
}

/// A link's hash (hex): over the previous hash, the link's number, the
/// previous link's name and the content.
pub fn link_hash(prev_hash: Option<&str>, seq: i64, prev: Option<&str>, content: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(b"payrail-chain-v1\0");
    digest.update(prev_hash.unwrap_or("").as_bytes());
    digest.update([0]);
    digest.update(seq.to_be_bytes());
    digest.update(prev.unwrap_or("").as_bytes());
    digest.update([0]);
    digest.update(content);
    hex(&digest.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)] as char, DIGITS[usize::from(b & 15)] as char]).collect()
}

/// A row's content in one unambiguous byte string: every field tagged
/// (present or NULL) and length-prefixed.
#[derive(Default)]
struct Content(Vec<u8>);

impl Content {
    fn int(mut self, value: Option<i64>) -> Self {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.0.extend_from_slice(&v.to_be_bytes());
            }
        }
        self
    }

    fn text(mut self, value: Option<&str>) -> Self {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(2);
                self.0.extend_from_slice(&(v.len() as u64).to_be_bytes());
                self.0.extend_from_slice(v.as_bytes());
            }
        }
        self
    }
}

/// The shared SQL of the chains. Every link query reads the row's content
/// columns first, then its chain columns (see [`history_link`], [`journal_link`]).
pub(crate) mod sql {
    /// The columns of a history row a link covers, after `h.id` and its partner.
    macro_rules! history_link_sql {
        ($partner:expr, $from:expr, $where:literal, $order:literal) => {
            concat!(
                "SELECT h.id, ",
                $partner,
                ", h.kind, h.txn_id, h.from_status, h.to_status, h.at, h.source, h.reason, \
                 h.chain_seq, h.chain_prev, h.chain_hash FROM status_history h ",
                $from,
                " WHERE ",
                $where,
                " ORDER BY ",
                $order
            )
        };
    }
    /// The columns of a journal a link covers.
    macro_rules! journal_link_sql {
        ($where:literal, $order:literal) => {
            concat!(
                "SELECT j.id, j.partner_id, j.purpose, j.kind, j.txn_id, j.memo, j.at, \
                 j.chain_seq, j.chain_prev, j.chain_hash FROM journals j WHERE ",
                $where,
                " ORDER BY ",
                $order
            )
        };
    }
    /// The postings of the journals `$journals` selects (`journal_id, id, account, amount`).
    macro_rules! postings_of {
        ($journals:literal) => {
            concat!(
                "SELECT p.journal_id, p.id, p.account, p.amount FROM postings p WHERE p.journal_id IN (",
                $journals,
                ") ORDER BY p.journal_id, p.id"
            )
        };
    }
    /// The partner whose chain a history row (`h`) not chained yet joins:
    /// its record's, through [`history_records`] (0 for a row without one).
    macro_rules! history_partner {
        () => {
            "COALESCE(d.partner_id, b.partner_id, 0)"
        };
    }
    /// Joins a history row (`h`) to its record: `d` a transfer, `b` a bill payment.
    macro_rules! history_records {
        () => {
            "LEFT JOIN dmt_transfers d ON h.kind = 'dmt' AND d.ackno = h.txn_id \
             LEFT JOIN bill_payments b ON h.kind = 'bbps' AND b.txnid = h.txn_id"
        };
    }
    /// History rows not chained yet that `$where` selects, with their partner.
    macro_rules! unsealed_history {
        ($where:literal) => {
            history_link_sql!(history_partner!(), history_records!(), $where, "h.id LIMIT $1")
        };
    }
    pub(crate) use {
        history_link_sql, history_partner, history_records, journal_link_sql, postings_of, unsealed_history,
    };

    /// History rows not chained yet, `$1` of them, oldest first.
    pub(crate) const UNSEALED_HISTORY: &str = unsealed_history!("h.chain_hash IS NULL");
    /// Journals not chained yet, `$1` of them, oldest first.
    pub(crate) const UNSEALED_JOURNALS: &str = journal_link_sql!("j.chain_hash IS NULL", "j.id LIMIT $1");
    /// The postings of the journals not chained yet.
    pub(crate) const UNSEALED_POSTINGS: &str =
        postings_of!("SELECT id FROM journals WHERE chain_hash IS NULL ORDER BY id LIMIT $1");
    /// Sealed history links after (`$1` partner, `$2` number), `$3` of them.
    pub(crate) const HISTORY_LINKS: &str = history_link_sql!(
        "h.chain_partner",
        "",
        "h.chain_hash IS NOT NULL AND (h.chain_partner, h.chain_seq) > ($1, $2)",
        "h.chain_partner, h.chain_seq LIMIT $3"
    );
    /// Sealed journal links after (`$1` partner, `$2` number), `$3` of them.
    pub(crate) const JOURNAL_LINKS: &str = journal_link_sql!(
        "j.chain_hash IS NOT NULL AND (j.partner_id, j.chain_seq) > ($1, $2)",
        "j.partner_id, j.chain_seq LIMIT $3"
    );
    /// The postings of the journals [`JOURNAL_LINKS`] reads with the same parameters.
    pub(crate) const JOURNAL_LINK_POSTINGS: &str = postings_of!(
        "SELECT id FROM journals WHERE chain_hash IS NOT NULL AND (partner_id, chain_seq) > ($1, $2) \
         ORDER BY partner_id, chain_seq LIMIT $3"
    );
    /// Rows without a hash, `$1` of them: `'history'` or `'journal'`, id.
    pub(crate) const UNSEALED_ROWS: &str = "SELECT t, id FROM (\
         SELECT 'history' AS t, id FROM status_history WHERE chain_hash IS NULL \
         UNION ALL SELECT 'journal', id FROM journals WHERE chain_hash IS NULL) u ORDER BY t, id LIMIT $1";
    /// Every chain head.
    pub(crate) const HEADS: &str =
        "SELECT partner_id, seq, last, hash FROM chain_heads WHERE seq > 0 ORDER BY partner_id";
    /// One partner's head (`$1`).
    pub(crate) const HEAD: &str = "SELECT partner_id, seq, last, hash FROM chain_heads WHERE partner_id = $1";
    /// Chains a history row (`$1` partner, `$2` number, `$3` previous, `$4` hash, `$5` id).
    pub(crate) const SEAL_HISTORY: &str = "UPDATE status_history SET chain_partner = $1, chain_seq = $2, \
         chain_prev = $3, chain_hash = $4 WHERE id = $5";
    /// Chains a journal (`$1` number, `$2` previous, `$3` hash, `$4` id).
    pub(crate) const SEAL_JOURNAL: &str =
        "UPDATE journals SET chain_seq = $1, chain_prev = $2, chain_hash = $3 WHERE id = $4";
    /// Moves a partner's head (`$1` partner, `$2` number, `$3` last row, `$4` hash).
    pub(crate) const SET_HEAD: &str = "INSERT INTO chain_heads (partner_id, seq, last, hash) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (partner_id) DO UPDATE SET seq = excluded.seq, last = excluded.last, hash = excluded.hash";
}

/// Where a link's chain columns start in a link row.
const HISTORY_CHAIN_AT: usize = 9;
const JOURNAL_CHAIN_AT: usize = 7;

/// A history row as a link: its row, partner, content and chain columns.
pub(crate) fn history_link<R: StoredRow>(row: &R) -> Result<Link, R::Error> {
    let id = row.int(0)?;
    let partner = row.opt_int(1)?.unwrap_or(0);
    let content = Content::default()
        .int(Some(id))
        .int(Some(partner))
        .text(row.opt_text(2)?.as_deref())
        .int(row.opt_int(3)?)
        .text(row.opt_text(4)?.as_deref())
        .text(row.opt_text(5)?.as_deref())
        .int(row.opt_int(6)?)
        .text(row.opt_text(7)?.as_deref())
        .text(row.opt_text(8)?.as_deref());
    link(row, LinkRef { table: LinkTable::History, id }, partner, content.0, HISTORY_CHAIN_AT)
}

/// A journal as a link, without its postings yet ([`with_postings`] adds them).
pub(crate) fn journal_link<R: StoredRow>(row: &R) -> Result<Link, R::Error> {
    let id = row.int(0)?;
    let partner = row.int(1)?;
    let content = Content::default()
        .int(Some(id))
        .int(Some(partner))
        .text(row.opt_text(2)?.as_deref())
        .text(row.opt_text(3)?.as_deref())
        .int(row.opt_int(4)?)
        .text(row.opt_text(5)?.as_deref())
        .int(row.opt_int(6)?);
    link(row, LinkRef { table: LinkTable::Journal, id }, partner, content.0, JOURNAL_CHAIN_AT)
}

fn link<R: StoredRow>(row: &R, link: LinkRef, partner: i64, content: Vec<u8>, at: usize) -> Result<Link, R::Error> {
    Ok(Link {
        row: link,
        partner,
        seq: row.opt_int(at)?.unwrap_or(0),
        prev: row.opt_text(at + 1)?,
        hash: row.opt_text(at + 2)?.unwrap_or_default(),
        content,
    })
}

/// A row of [`sql::UNSEALED_ROWS`]: which row carries no hash.
pub(crate) fn unsealed_row<R: StoredRow>(row: &R) -> Result<LinkRef, R::Error> {
    let table = row.parsed(0, |key| LinkTable::from_key(key).ok_or_else(|| super::columns::BadState(key.into())))?;
    Ok(LinkRef { table, id: row.int(1)? })
}

/// A `chain_heads` row (`partner_id, seq, last, hash`).
pub(crate) fn head<R: StoredRow>(row: &R) -> Result<ChainHead, R::Error> {
    Ok(ChainHead { partner: row.int(0)?, seq: row.int(1)?, last: row.text(2)?, hash: row.text(3)? })
}

/// A posting row (`journal_id, id, account, amount`): its journal and its content.
pub(crate) fn posting<R: StoredRow>(row: &R) -> Result<(i64, Vec<u8>), R::Error> {
    let content = Content::default().int(Some(row.int(1)?)).text(row.opt_text(2)?.as_deref()).int(row.opt_int(3)?);
    Ok((row.int(0)?, content.0))
}

/// Appends each journal's postings (`(journal id, content)` in journal and
/// posting order) to its content; the count first, so none can move between journals.
pub(crate) fn with_postings(journals: &mut [Link], postings: Vec<(i64, Vec<u8>)>) {
    let mut by_journal: BTreeMap<i64, Vec<Vec<u8>>> = BTreeMap::new();
    for (journal, content) in postings {
        by_journal.entry(journal).or_default().push(content);
    }
    for journal in journals {
        let postings = by_journal.remove(&journal.row.id).unwrap_or_default();
        journal.content.extend_from_slice(&(postings.len() as u64).to_be_bytes());
        for posting in postings {
            journal.content.extend_from_slice(&posting);
        }
    }
}

/// The partners whose heads sealing `pending` moves, in order (the order
/// PostgreSQL locks them in).
pub(crate) fn partners(pending: &[Link]) -> Vec<i64> {
    let mut partners: Vec<i64> = pending.iter().map(|link| link.partner).collect();
    partners.sort_unstable();
    partners.dedup();
    partners
}

/// Chains `pending` (history rows, then journals, each oldest first) onto
/// `heads`: fills in each link's number, previous link and hash, and moves
/// the heads. Returns the partners whose heads moved.
pub(crate) fn seal(pending: &mut [Link], heads: &mut BTreeMap<i64, ChainHead>) -> Vec<i64> {
    for link in pending.iter_mut() {
        let head = heads.entry(link.partner).or_insert_with(|| ChainHead {
            partner: link.partner,
            seq: 0,
            last: String::new(),
            hash: String::new(),
        });
        let (prev, prev_hash) = if head.seq == 0 { (None, None) } else { (Some(head.last.clone()), Some(&*head.hash)) };
        link.seq = head.seq + 1;
        link.hash = link_hash(prev_hash, link.seq, prev.as_deref(), &link.content);
        link.prev = prev;
        head.seq = link.seq;
        head.last = link.row.encode();
        head.hash.clone_from(&link.hash);
    }
    partners(pending)
}

/// How many rows one sealing step reads at most (the migration of a large
/// store seals in steps of this many).
pub(crate) const SEAL_STEP: i64 = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(table: LinkTable, id: i64, partner: i64, content: &str) -> Link {
        Link {
            row: LinkRef { table, id },
            partner,
            seq: 0,
            prev: None,
            hash: String::new(),
            content: content.as_bytes().to_vec(),
        }
    }

    #[test]
    fn sealing_numbers_each_partner_chain_from_its_head() {
        let mut heads = BTreeMap::new();
        let mut first = vec![
            pending(LinkTable::History, 1, 7, "a"),
            pending(LinkTable::History, 2, 8, "b"),
            pending(LinkTable::Journal, 1, 7, "c"),
        ];
        assert_eq!(seal(&mut first, &mut heads), vec![7, 8]);
        assert_eq!((first[0].seq, first[0].prev.as_deref()), (1, None));
        assert_eq!((first[2].seq, first[2].prev.as_deref()), (2, Some("history:1")));
        assert_eq!(first[2].hash, link_hash(Some(&first[0].hash), 2, Some("history:1"), b"c"));
        assert_eq!(first[1].seq, 1, "partner 8 has its own chain");
        let mut second = vec![pending(LinkTable::History, 3, 7, "d")];
        seal(&mut second, &mut heads);
        assert_eq!((second[0].seq, second[0].prev.as_deref()), (3, Some("journal:1")));
        assert_eq!(heads[&7].hash, second[0].hash);
    }

    #[test]
    fn a_hash_covers_every_part_of_a_link() {
        let base = link_hash(Some("ab"), 3, Some("history:1"), b"x");
        assert_ne!(base, link_hash(Some("ac"), 3, Some("history:1"), b"x"));
        assert_ne!(base, link_hash(Some("ab"), 4, Some("history:1"), b"x"));
        assert_ne!(base, link_hash(Some("ab"), 3, Some("history:2"), b"x"));
        assert_ne!(base, link_hash(Some("ab"), 3, Some("history:1"), b"y"));
        assert_eq!(base.len(), 64);
        let a = Content::default().text(Some("ab")).text(Some("c")).0;
        let b = Content::default().text(Some("a")).text(Some("bc")).0;
        assert_ne!(a, b, "fields cannot run into each other");
        assert_ne!(Content::default().text(None).0, Content::default().text(Some("")).0);
    }

    #[test]
    fn link_names_read_back() {
        for link in [LinkRef { table: LinkTable::History, id: 41 }, LinkRef { table: LinkTable::Journal, id: 7 }] {
            assert_eq!(LinkRef::decode(&link.encode()), Some(link));
        }
        assert_eq!(LinkRef::decode("ledger:1"), None);
        assert_eq!(describe(Some("history:41")), "status_history row 41");
        assert_eq!(describe(None), "the start of the chain");
    }

    #[test]
    fn shared_sql_names_its_parameters_in_order() {
        for sql in [
            sql::UNSEALED_HISTORY,
            sql::UNSEALED_JOURNALS,
            sql::HISTORY_LINKS,
            sql::JOURNAL_LINKS,
            sql::JOURNAL_LINK_POSTINGS,
            sql::UNSEALED_ROWS,
            sql::UNSEALED_POSTINGS,
            sql::HEAD,
            sql::SEAL_HISTORY,
            sql::SEAL_JOURNAL,
            sql::SET_HEAD,
        ] {
            super::super::columns::assert_parameters_in_order(sql);
        }
    }
}
