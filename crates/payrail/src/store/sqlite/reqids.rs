//! Token `reqid`s seen recently (the replay check of a status lookup): held
//! in memory, sharded, and written behind in batches to a file of their own
//! ([`ReqidFile`]) by the [`ReqidFlusher`] thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rusqlite::{params, Connection};

use super::{connection, poisoned, private_database, store_error, StoreResult};

/// `reqid`s seen within the replay window, in two generations per shard:
/// entries move to `previous` when a window has passed and are dropped a
/// window later, so every operation is O(1) and memory holds at most two
/// windows of traffic. Sharded so that concurrent requests rarely contend.
///
/// Memory is the check; the [`ReqidFile`] makes it outlive a restart. A
/// new `reqid` is also queued as its [`reqid_fingerprint`] (`unflushed`, in
/// its shard, under the lock already held) for the [`ReqidFlusher`], which
/// writes the queue as ONE row every [`REQID_FLUSH_INTERVAL`]: a status
/// lookup never waits for a write, and the store pays one small blob insert
/// per interval, not one indexed row per lookup (that cost a fifth of the
/// lookup rate). Fingerprints read back at start-up are checked beside the
/// keys (`restored`).
pub(super) struct RecentReqids {
    shards: Vec<Mutex<Generations>>,
    /// The latest cutoff asked for: batches seen before it can be pruned.
    cutoff: std::sync::atomic::AtomicI64,
}

/// A `reqid` seen: (its fingerprint, unix seconds).
type Seen = (u64, i64);

#[derive(Default)]
struct Generations {
    current: HashMap<(i64, String), i64>,
    previous: HashMap<(i64, String), i64>,
    rotated_at: i64,
    /// Fingerprints read back from the table at start-up, with when they were seen.
    restored: HashMap<u64, i64>,
    unflushed: Vec<Seen>,
}

impl Default for RecentReqids {
    fn default() -> Self {
        RecentReqids {
            shards: (0..16).map(|_| Mutex::new(Generations::default())).collect(),
            cutoff: std::sync::atomic::AtomicI64::new(0),
        }
    }
}

/// A stable 64-bit fingerprint of a partner's `reqid` (FNV-1a), what the
/// table keeps. Two reqids sharing one would only make the later one look
/// like a replay in the window after a restart; a partner cannot aim that at
/// another partner's token without knowing its `reqid` in advance.
pub fn reqid_fingerprint(partner: i64, reqid: &str) -> u64 {
    partner
        .to_le_bytes()
        .iter()
        .chain([0xff].iter())
        .chain(reqid.as_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

impl RecentReqids {
    /// The shard of a fingerprint: the same for every call with its key.
    fn shard(&self, fingerprint: u64) -> StoreResult<std::sync::MutexGuard<'_, Generations>> {
        self.shards[(fingerprint % 16) as usize].lock().map_err(|_| poisoned())
    }

    /// Records `reqid`; `false` if it was seen at or after `cutoff`.
    pub(super) fn remember(&self, partner: i64, reqid: &str, now: i64, cutoff: i64) -> StoreResult<bool> {
        // A read first: the cutoff moves once a second, and a write on every
        // lookup would bounce the cache line between cores.
        if cutoff > self.cutoff.load(std::sync::atomic::Ordering::Relaxed) {
            self.cutoff.fetch_max(cutoff, std::sync::atomic::Ordering::Relaxed);
        }
        let fingerprint = reqid_fingerprint(partner, reqid);
        let mut generations = self.shard(fingerprint)?;
        let window = now - cutoff;
        if now - generations.rotated_at >= window {
            generations.previous = std::mem::take(&mut generations.current);
            generations.restored.retain(|_, at| *at >= cutoff);
            generations.rotated_at = now;
        }
        let key = (partner, reqid.to_owned());
        let seen_at = generations.current.get(&key).or_else(|| generations.previous.get(&key)).copied();
        let restored_at = || generations.restored.get(&fingerprint).copied();
        if seen_at.or_else(restored_at).is_some_and(|at| at >= cutoff) {
            return Ok(false);
        }
        generations.current.insert(key, now);
        generations.unflushed.push((fingerprint, now));
        Ok(true)
    }

    /// Loads fingerprints read back from the table (at start-up), unqueued.
    pub(super) fn load(&self, rows: Vec<Seen>) -> StoreResult<()> {
        for (fingerprint, seen_at) in rows {
            let mut generations = self.shard(fingerprint)?;
            let at = generations.restored.entry(fingerprint).or_insert(seen_at);
            *at = (*at).max(seen_at);
        }
        Ok(())
    }

    /// Takes everything queued for the table.
    fn take_unflushed(&self) -> StoreResult<Vec<Seen>> {
        let mut taken = Vec::new();
        for shard in &self.shards {
            taken.append(&mut shard.lock().map_err(|_| poisoned())?.unflushed);
        }
        Ok(taken)
    }

    /// The latest cutoff asked for (0 before the first request).
    fn cutoff(&self) -> i64 {
        self.cutoff.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How often new token `reqid`s are written to their file. A `kill -9` (or
/// a power cut) forgets at most the `reqid`s of this last interval, and the
/// next start accepts those tokens once more while they are fresh.
pub const REQID_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The file of written `reqid` batches, beside the database: `payrail.db`
/// keeps them in `payrail.reqids.db`.
///
/// A file of its own because every commit to the database makes each read
/// connection drop its whole page cache (SQLite resets a connection's cache
/// when it sees the database changed), and the batches are written ten
/// times a second even when nothing else is: in the database, they emptied
/// the readers' caches that often, and a status lookup read the pages of
/// its B-trees back from the file (BENCHMARKS.md, "The `reqid` batches in a
/// file of their own").
pub(super) struct ReqidFile {
    /// The connection, and the rows a failed write handed back (tried again
    /// with the next batch).
    inner: Mutex<(Connection, Vec<Seen>)>,
}

/// Where the `reqid` batches of the database at `db` are kept.
pub fn reqid_file_path(db: &Path) -> PathBuf {
    let stem = db.file_stem().map_or_else(|| "payrail".into(), |stem| stem.to_string_lossy().into_owned());
    db.with_file_name(format!("{stem}.reqids.db"))
}

impl ReqidFile {
    /// Opens (creating if need be) the file of the database at `db`, moves
    /// into it the batches an older payrail kept in the database itself
    /// (`main`, the writer connection, before it serves), and answers every
    /// fingerprint it holds.
    pub(super) fn open(db: &Path, main: &mut Connection) -> anyhow::Result<(Self, Vec<Seen>)> {
        let path = reqid_file_path(db);
        private_database(&path)?;
        let mut conn = connection(&path)?;
        // Each batch is synced: what a lookup accepted 100 ms ago survives a power cut.
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS seen_reqid_batches (
                 id           INTEGER PRIMARY KEY,
                 last_seen_at INTEGER NOT NULL,
                 fingerprints BLOB    NOT NULL
             );",
        )
        .with_context(|| format!("Failed to prepare {}", path.display()))?;
        move_batches(main, &mut conn).context("Failed to move the token reqids out of the database")?;
        let rows = stored_reqids(&conn).context("Failed to read the recent token reqids")?;
        Ok((ReqidFile { inner: Mutex::new((conn, Vec::new())) }, rows))
    }

    /// Writes the `reqid`s queued in `reqids` as one batch and prunes the
    /// batches older than the cutoff, in one synced transaction. On failure
    /// the rows are kept, to be tried with the next batch.
    pub(super) fn flush(&self, reqids: &RecentReqids) -> StoreResult<()> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        let (conn, carried) = &mut *inner;
        carried.append(&mut reqids.take_unflushed()?);
        if carried.is_empty() {
            return Ok(());
        }
        let (batch, last_seen_at) = encode_reqids(carried);
        write_reqids(conn, &batch, last_seen_at, reqids.cutoff()).map_err(store_error)?;
        carried.clear();
        Ok(())
    }
}

/// Moves the batches of `seen_reqid_batches` in the database (where payrail
/// kept them before they had a file of their own) into `file`: copied and
/// committed there first, then deleted from the database, so a crash
/// between the two leaves them in both, which reads the same.
fn move_batches(main: &mut Connection, file: &mut Connection) -> rusqlite::Result<()> {
    if copy_batches(main, file)? > 0 {
        main.execute("DELETE FROM seen_reqid_batches", [])?;
    }
    Ok(())
}

/// Copies every batch of `seen_reqid_batches` in `from` into the same table
/// in `to`, in one transaction there; how many.
fn copy_batches(from: &Connection, to: &mut Connection) -> rusqlite::Result<usize> {
    let batches = {
        let mut stmt = from.prepare("SELECT last_seen_at, fingerprints FROM seen_reqid_batches")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    if batches.is_empty() {
        return Ok(0);
    }
    let tx = to.transaction()?;
    for (last_seen_at, fingerprints) in &batches {
        tx.prepare_cached(INSERT_BATCH)?.execute(params![last_seen_at, fingerprints])?;
    }
    tx.commit()?;
    Ok(batches.len())
}

/// Copies the `reqid` batches kept beside the database at `db` into the
/// `seen_reqid_batches` table of `snapshot`, a copy of that database just
/// made (`payrail backup`): a store opened from the copy moves them into a
/// file of its own as it would an older payrail's ([`ReqidFile::open`]), so
/// a token used before the backup is still refused after a restore. Read
/// once the copy is complete, they hold every `reqid` the copy's store had
/// written (and perhaps later ones, which refuse nothing a partner may
/// still use). How many batches.
pub(super) fn copy_batches_into(db: &Path, snapshot: &mut Connection) -> anyhow::Result<usize> {
    let path = reqid_file_path(db);
    if !path.exists() {
        return Ok(0);
    }
    let file = connection(&path)?;
    copy_batches(&file, snapshot).with_context(|| format!("Failed to copy the batches of {}", path.display()))
}

/// A batch's blob: 16 bytes a `reqid` (fingerprint, seen at; little-endian),
/// and the latest time in it.
fn encode_reqids(rows: &[Seen]) -> (Vec<u8>, i64) {
    let mut blob = Vec::with_capacity(rows.len() * 16);
    for (fingerprint, seen_at) in rows {
        blob.extend_from_slice(&fingerprint.to_le_bytes());
        blob.extend_from_slice(&seen_at.to_le_bytes());
    }
    (blob, rows.iter().map(|(_, at)| *at).max().unwrap_or_default())
}

/// What [`encode_reqids`] wrote (a torn tail is ignored).
fn decode_reqids(blob: &[u8]) -> impl Iterator<Item = Seen> + '_ {
    blob.chunks_exact(16).map(|entry| {
        let (fingerprint, seen_at) = entry.split_at(8);
        let word = |bytes: &[u8]| bytes.try_into().map(u64::from_le_bytes).unwrap_or_default();
        (word(fingerprint), word(seen_at) as i64)
    })
}

const INSERT_BATCH: &str = "INSERT INTO seen_reqid_batches (last_seen_at, fingerprints) VALUES (?1, ?2)";

/// One batch in, the batches older than `cutoff` out, in one transaction.
fn write_reqids(conn: &mut Connection, batch: &[u8], last_seen_at: i64, cutoff: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.prepare_cached(INSERT_BATCH)?.execute(params![last_seen_at, batch])?;
    tx.prepare_cached("DELETE FROM seen_reqid_batches WHERE last_seen_at < ?1")?.execute([cutoff])?;
    tx.commit()
}

/// The thread that writes new `reqid`s every [`REQID_FLUSH_INTERVAL`]; on
/// drop it is told to stop, writes what is left, and is joined.
pub(super) struct ReqidFlusher {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReqidFlusher {
    pub(super) fn start(file: Arc<ReqidFile>, reqids: Arc<RecentReqids>) -> anyhow::Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("payrail-reqids".into())
            .spawn(move || loop {
                let stopping = !matches!(stopped.recv_timeout(REQID_FLUSH_INTERVAL), Err(RecvTimeoutError::Timeout));
                if let Err(error) = file.flush(&reqids) {
                    tracing::warn!(%error, "token reqids not written yet");
                }
                if stopping {
                    return;
                }
            })
            .context("Failed to start the token reqid writer")?;
        Ok(ReqidFlusher { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for ReqidFlusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every `reqid` fingerprint in the file (it holds about one window: older
/// batches are pruned as new ones are written).
fn stored_reqids(conn: &Connection) -> rusqlite::Result<Vec<Seen>> {
    let mut stmt = conn.prepare("SELECT fingerprints FROM seen_reqid_batches")?;
    let blobs = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(blobs.iter().flat_map(|blob| decode_reqids(blob)).collect())
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use super::*;

    #[test]
    fn a_reqid_is_a_replay_within_the_window_and_fresh_after_it() {
        let reqids = RecentReqids::default();
        let check = |now: i64| reqids.remember(7, "r1", now, now - 600).unwrap_or_else(|e| panic!("{e}"));
        assert!(check(1_000));
        assert!(!check(1_300), "seen 300 s ago");
        assert!(!check(1_600), "seen exactly at the cutoff");
        assert!(check(2_000), "seen 1,000 s ago: outside the window");
        assert!(reqids.remember(8, "r1", 2_001, 1_401).unwrap_or_else(|e| panic!("{e}")), "another partner");
    }

    #[test]
    fn reqids_outlive_the_store_and_old_ones_are_pruned_when_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("payrail.db");
        let remember = |store: &SqliteStore, reqid: &str, now: i64| {
            store.reqids.remember(7, reqid, now, now - 600).unwrap_or_else(|e| panic!("{e}"))
        };
        let batches = |store: &SqliteStore| {
            let inner = store.reqid_file.inner.lock().unwrap_or_else(|e| panic!("{e}"));
            inner.0.query_row("SELECT COUNT(*) FROM seen_reqid_batches", [], |r| r.get::<_, i64>(0))
        };
        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(remember(&store, "old", 1_000));
        drop(store); // the flusher writes what is left
        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!remember(&store, "old", 1_100), "seen before the restart");
        assert!(remember(&store, "new", 1_700));
        drop(store); // writes 'new' and prunes the batch of 'old', outside the window
        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(batches(&store).unwrap_or_else(|e| panic!("{e}")), 1, "the old batch was pruned");
        assert!(!remember(&store, "new", 1_800), "seen before the restart");
        assert!(remember(&store, "old", 1_800), "outside the window");
        assert!(remember(&store, "other", 1_800), "never seen");
    }

    #[test]
    fn batches_an_older_payrail_kept_in_the_database_move_to_the_file_and_still_count() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("payrail.db");
        drop(SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e:#}")));
        let (blob, last) = encode_reqids(&[(reqid_fingerprint(7, "before"), 1_000)]);
        let main = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let legacy = |conn: &Connection| {
            conn.query_row("SELECT COUNT(*) FROM seen_reqid_batches", [], |r| r.get::<_, i64>(0))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        main.execute(INSERT_BATCH, params![last, blob]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(legacy(&main), 1);
        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!store.reqids.remember(7, "before", 1_100, 500).unwrap_or_else(|e| panic!("{e}")), "a replay");
        assert_eq!(legacy(&main), 0, "moved out of the database");
        drop(store);
        let file = Connection::open(reqid_file_path(&path)).unwrap_or_else(|e| panic!("{e}"));
        let rows = stored_reqids(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(rows.contains(&(reqid_fingerprint(7, "before"), 1_000)), "kept in the file: {rows:?}");
        assert_eq!(reqid_file_path(&path), dir.path().join("payrail.reqids.db"));
    }

    #[test]
    fn a_reqid_flush_commits_nothing_to_the_database() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = SqliteStore::open(&dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e:#}"));
        let version = |store: &SqliteStore| {
            store
                .read(|c| c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let before = version(&store);
        assert!(store.reqids.remember(7, "r", 1_000, 400).unwrap_or_else(|e| panic!("{e}")));
        store.reqid_file.flush(&store.reqids).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version(&store), before, "the readers' page caches stay valid");
    }

    #[test]
    fn reqid_batches_read_back_what_they_hold() {
        let rows = vec![(reqid_fingerprint(1, "a"), 10), (reqid_fingerprint(2, "a"), 12), (u64::MAX, -1)];
        let (blob, last) = encode_reqids(&rows);
        assert_eq!((blob.len(), last), (48, 12));
        assert_eq!(decode_reqids(&blob).collect::<Vec<_>>(), rows);
        assert_ne!(reqid_fingerprint(1, "a"), reqid_fingerprint(2, "a"), "the partner is part of it");
    }
}
