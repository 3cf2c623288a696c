//! The pool of read connections, and the read snapshots that status
//! lookups keep between requests.
//!
//! In WAL mode every statement outside a transaction begins and ends a read
//! transaction of its own: a process-wide mutex and `fcntl` locks on the
//! `-shm` file each way, about a fifth of the time a status lookup spends
//! in SQLite (BENCHMARKS.md, "Status lookups on a held snapshot"). A lookup
//! instead runs inside a read transaction its connection keeps open
//! ([`Readers::recent`]) for as long as nothing was committed since it began,
//! and at most [`HOLD`].
//!
//! Why that still reads what it must:
//! - Every write of this process goes through the writer thread, which
//!   counts its commits ([`Readers::committed`]) before it answers any write
//!   of the group, and a kept snapshot is used only while that count is what
//!   it was before the snapshot began. So a lookup holds every write this
//!   server acknowledged before it, and the partner as last changed here.
//! - Other processes write too: `payrail partner add`, `suspend` and the
//!   like write the database file while the server runs. A snapshot is kept
//!   at most [`HOLD`], a millisecond, so such a write is seen by every lookup
//!   that starts a millisecond after its commit; a command that starts a
//!   process, opens the store and syncs its commit takes longer than that,
//!   so anything done after the command returns sees its write.
//! - After every commit the writer also ends the snapshots of the
//!   connections waiting in the pool, so a quiet pool keeps no old snapshot
//!   that would stop a checkpoint from reaching the end of the WAL. (One
//!   left behind by a write of another process lasts until the pool's next
//!   use or commit: it delays that checkpoint and loses nothing.)
//!
//! ## Mapping the file while the store is quiet
//!
//! A read connection that maps the database file into memory
//! (`PRAGMA mmap_size`) reads a page without a `pread` or a copy into its
//! page cache: on a store of millions of records, where a lookup's leaf
//! pages are rarely cached, that is 12–15% more lookups a second.
//! But SQLite unmaps the whole file whenever a connection begins a read
//! after the database changed, and faulting the pages back in costs more
//! than reading them: with bill payments committed alongside, mapped
//! readers answered a third fewer lookups (BENCHMARKS.md, "Mapping the
//! file while the store is quiet"). So a reader maps the file only while
//! nothing was committed in the last [`QUIET`] (or since the pool was
//! made), decided each time it begins a snapshot. A write of another
//! process is not counted: it costs one unmap, as it always did.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{connection, poisoned, store_error};
use crate::domain::clock::SharedMoment;
use crate::store::{StoreError, StoreResult};

/// How many read connections the pool keeps.
const READERS: usize = 8;

/// Each read connection's page cache, in KiB: enough for the inner pages
/// of the lookups' B-trees on a store of millions of records (about 8 MB at
/// 2,000,000), which SQLite's default of 2 MB is not. It is filled only as
/// pages are read, and kept across lookups while the database does not
/// change (see `reqids.rs` for why `reqid` batches no longer change it).
const READER_CACHE_KIB: i64 = 32 * 1024;

/// How long the store must go without a commit before readers map the
/// database file (see "Mapping the file" in the module's documentation).
const QUIET: Duration = Duration::from_secs(1);

/// The most of the database file a reader maps: SQLite's compile-time
/// maximum as built here (`SQLITE_MAX_MMAP_SIZE`, just under 2 GiB), which
/// caps any larger setting. Pages past it are read with `pread` as before.
const READER_MMAP_BYTES: i64 = 0x7fff_0000;

/// The longest a read snapshot is kept for status lookups (see the
/// module's documentation for why it is this short).
pub(super) const HOLD: Duration = Duration::from_millis(1);

/// A read connection and the snapshot it keeps, if any.
struct Reader {
    conn: Connection,
    /// The commit count when its read transaction began, and when.
    snapshot: Option<(u64, Instant)>,
    /// Whether it maps the database file (`PRAGMA mmap_size`).
    mapped: bool,
}

impl Reader {
    /// Maps the database file, or stops mapping it; between snapshots only.
    fn map(&mut self, on: bool) -> rusqlite::Result<()> {
        if self.mapped != on {
            self.conn.pragma_update(None, "mmap_size", if on { READER_MMAP_BYTES } else { 0 })?;
            self.mapped = on;
        }
        Ok(())
    }

    /// Ends the kept read transaction, or any other left open.
    fn release(&mut self) -> rusqlite::Result<()> {
        self.snapshot = None;
        if !self.conn.is_autocommit() {
            self.conn.prepare_cached("COMMIT")?.execute([])?;
        }
        Ok(())
    }
}

/// The pool (see the module's documentation).
pub(super) struct Readers {
    pool: Mutex<Vec<Reader>>,
    path: PathBuf,
    /// Commits made by the writer thread.
    commits: AtomicU64,
    /// When the last of them was counted (unset before the first).
    last_commit: SharedMoment,
    /// [`QUIET`], but for tests.
    quiet: Duration,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Self::quiet_after(path, QUIET)
    }

    /// A pool whose readers map the file after `quiet` without a commit.
    fn quiet_after(path: &Path, quiet: Duration) -> Self {
        Readers {
            pool: Mutex::new(Vec::new()),
            path: path.to_owned(),
            commits: AtomicU64::new(0),
            last_commit: SharedMoment::unset(),
            quiet,
        }
    }

    /// Whether nothing was committed in the last [`QUIET`].
    fn quiet(&self) -> bool {
        self.last_commit.elapsed().is_none_or(|since| since >= self.quiet)
    }

    /// The database file.
    #[cfg(test)]
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn take(&self) -> StoreResult<Reader> {
        match self.pool.lock().map_err(|_| poisoned())?.pop() {
            Some(reader) => Ok(reader),
            None => {
                let conn = connection(&self.path).map_err(StoreError::Unavailable)?;
                conn.pragma_update(None, "cache_size", -READER_CACHE_KIB).map_err(store_error)?;
                Ok(Reader { conn, snapshot: None, mapped: false })
            }
        }
    }

    fn give_back(&self, reader: Reader) -> StoreResult<()> {
        let mut pool = self.pool.lock().map_err(|_| poisoned())?;
        if pool.len() < READERS {
            pool.push(reader);
        }
        Ok(())
    }

    /// Runs `f` on a pooled connection, outside any transaction (so `f`
    /// may open one, and each of its statements reads the latest commit).
    pub(super) fn fresh<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let mut reader = self.take()?;
        reader.release().map_err(store_error)?;
        let result = f(&reader.conn).map_err(store_error);
        self.give_back(reader)?;
        result
    }

    /// Runs `f` (one statement's read) on a pooled connection inside its
    /// kept read snapshot, begun again first if anything was committed since
    /// it began or it is older than [`HOLD`].
    pub(super) fn recent<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let mut reader = self.take()?;
        // Read before the snapshot begins, so the snapshot holds at least
        // every commit counted here.
        let commits = self.commits.load(Ordering::Acquire);
        let kept = reader.snapshot.is_some_and(|(at, since)| at == commits && since.elapsed() < HOLD);
        if !kept {
            reader.release().map_err(store_error)?;
            reader.map(self.quiet()).map_err(store_error)?;
            reader.conn.prepare_cached("BEGIN").and_then(|mut begin| begin.execute([])).map_err(store_error)?;
            reader.snapshot = Some((commits, Instant::now()));
        }
        let result = f(&reader.conn).map_err(store_error);
        // Whatever failed, the next use starts from a clean connection, or
        // from a new one if this one cannot end its transaction.
        if result.is_err() && reader.release().is_err() {
            return result;
        }
        self.give_back(reader)?;
        result
    }

    /// Called by the writer thread after each commit (or rollback), before
    /// it answers the group's writes: later lookups begin a new snapshot,
    /// and the connections waiting in the pool end theirs now.
    pub(super) fn committed(&self) {
        self.last_commit.mark();
        self.commits.fetch_add(1, Ordering::Release);
        if let Ok(mut pool) = self.pool.lock() {
            // One that cannot end its transaction is dropped: closing it ends it.
            pool.retain_mut(|reader| reader.release().is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::tests::lifecycle::{ok, open, partner, send, top_up};
    use crate::domain::{PartnerStatus, RegistrationId};
    use crate::store::{PartnerStore, RecordStore};

    /// `PRAGMA wal_checkpoint(TRUNCATE)` from a connection of its own that
    /// does not wait: whether a reader still holds an old snapshot (`busy`).
    fn truncate_is_blocked(store: &super::super::SqliteStore) -> bool {
        let conn = ok(super::connection(store.readers.path()));
        ok(conn.busy_timeout(std::time::Duration::ZERO));
        let busy: i64 = ok(conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0)));
        busy != 0
    }

    async fn found(store: &super::super::SqliteStore, p: RegistrationId, reference: &str) -> bool {
        let (_, record) = ok(store.lookup_dmt(p, reference).await).unwrap_or_else(|| panic!("no partner {p:?}"));
        record.is_some()
    }

    #[test]
    fn sqlite_is_built_with_a_page_cache_per_connection() {
        let conn = ok(rusqlite::Connection::open_in_memory());
        let mut options = ok(conn.prepare("PRAGMA compile_options"));
        let options: Vec<String> = ok(ok(options.query_map([], |row| row.get(0))).collect());
        // Set by LIBSQLITE3_FLAGS in .cargo/config.toml.
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "one shared page cache: {options:?}");
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "memory statistics kept: {options:?}");
    }

    fn mapped(readers: &super::Readers) -> i64 {
        ok(readers.recent(|conn| conn.query_row("PRAGMA mmap_size", [], |row| row.get(0))))
    }

    #[test]
    fn readers_map_the_file_until_something_is_committed_and_not_within_the_quiet_time_after() {
        let (_dir, store) = open();
        let readers = super::Readers::quiet_after(store.readers.path(), std::time::Duration::from_secs(3600));
        assert_eq!(mapped(&readers), super::READER_MMAP_BYTES, "nothing committed yet: the file is mapped");
        readers.committed();
        assert_eq!(mapped(&readers), 0, "committed within the quiet time: not mapped");
        assert_eq!(mapped(&readers), 0, "still within it");
    }

    #[test]
    fn readers_map_the_file_again_once_the_quiet_time_has_passed() {
        let (_dir, store) = open();
        let readers = super::Readers::quiet_after(store.readers.path(), std::time::Duration::ZERO);
        readers.committed();
        assert_eq!(mapped(&readers), super::READER_MMAP_BYTES);
    }

    #[test]
    fn a_read_connection_keeps_a_page_cache_large_enough_for_the_inner_pages() {
        let (_dir, store) = open();
        let kib: i64 = ok(store.read(|conn| conn.query_row("PRAGMA cache_size", [], |row| row.get(0))));
        assert_eq!(kib, -super::READER_CACHE_KIB, "SQLite's default is -2000 (2 MB)");
    }

    #[tokio::test]
    async fn a_lookup_reads_every_write_acknowledged_before_it() {
        let (_dir, store) = open();
        let p = partner(&store).await;
        top_up(&store, p, 100_000, 1).await;
        for i in 0..40 {
            // A lookup first, so that its connection keeps a snapshot from before the payment.
            assert!(!found(&store, p, &format!("R{i}")).await, "R{i} before it was paid");
            ok(send(&store, p, &format!("R{i}"), 100).await);
            assert!(found(&store, p, &format!("R{i}")).await, "R{i} paid, then looked up");
        }
    }

    #[tokio::test]
    async fn a_lookup_after_a_suspension_reads_the_partner_suspended() {
        let (_dir, store) = open();
        let p = partner(&store).await;
        let status = |store: Arc<super::super::SqliteStore>| async move {
            ok(store.lookup_dmt(p, "X1").await).map(|(partner, _)| partner.status)
        };
        assert_eq!(status(Arc::clone(&store)).await, Some(PartnerStatus::Active));
        assert!(ok(store.set_partner_status(p, PartnerStatus::Suspended).await));
        assert_eq!(status(Arc::clone(&store)).await, Some(PartnerStatus::Suspended));
    }

    #[tokio::test]
    async fn a_write_of_another_process_is_seen_once_the_hold_has_passed() {
        let (_dir, store) = open();
        let p = partner(&store).await;
        let status = || async { ok(store.lookup_dmt(p, "X1").await).map(|(partner, _)| partner.status) };
        assert_eq!(status().await, Some(PartnerStatus::Active));
        // As `payrail partner suspend` does while the server runs: its own
        // connection, not this store's writer.
        let other = ok(super::connection(store.readers.path()));
        let suspend = crate::store::partners::sql::SET_PARTNER_STATUS;
        assert_eq!(ok(other.execute(suspend, rusqlite::params!["suspended", p.number()])), 1);
        std::thread::sleep(super::HOLD * 2);
        assert_eq!(status().await, Some(PartnerStatus::Suspended));
    }

    #[tokio::test]
    async fn a_lookup_keeps_its_snapshot_until_a_commit_ends_it() {
        let (_dir, store) = open();
        let p = partner(&store).await;
        top_up(&store, p, 1_000, 1).await;
        ok(send(&store, p, "K0", 100).await);
        assert!(!found(&store, p, "K1").await);
        // The idle connection still reads the WAL as of that lookup, so a
        // checkpoint that must wait for every reader cannot finish.
        assert!(truncate_is_blocked(&store), "the lookup's snapshot was not kept");
        ok(send(&store, p, "K2", 100).await);
        // The payment's commit ended the idle snapshot: the WAL can be emptied.
        assert!(!truncate_is_blocked(&store), "a snapshot was left open in the pool after a commit");
        assert!(found(&store, p, "K2").await);
    }
}
