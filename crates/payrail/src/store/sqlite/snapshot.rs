//! Online snapshots of the SQLite store, for `payrail backup` and `restore`.
//!
//! SQLite's backup API copies the database page by page. The copy runs
//! inside one read transaction on the source: in WAL mode that transaction
//! sees the store as it was when it began, whatever a running server commits
//! meanwhile (its commits go to the WAL, which this reader does not see and
//! which does not restart the copy), so the snapshot is the store at one
//! instant and the server is never blocked. The token `reqid`s, kept in a
//! file of their own, are then copied into the snapshot's database, where a
//! store opened from it finds them (`reqids.rs`, `copy_batches_into`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// Pages copied per step (4 KiB each): small enough for a moving progress bar.
const PAGES_PER_STEP: std::ffi::c_int = 256;

/// How far a snapshot has got, in pages.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub copied: u64,
    pub total: u64,
}

/// Copies the database at `db` into a new database file at `out` (which
/// must not be in use), calling `progress` after each step.
pub fn snapshot(db: &Path, out: &Path, mut progress: impl FnMut(Progress)) -> anyhow::Result<Progress> {
    // Read-write without CREATE: a reader of a WAL database must be able to
    // use its shared-memory index; a missing store is an error, not a new one.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let source = Connection::open_with_flags(db, flags).with_context(|| format!("Failed to open {}", db.display()))?;
    source.busy_timeout(Duration::from_secs(5))?;
    source.execute_batch("BEGIN").context("Failed to begin the snapshot's read transaction")?;
    // The first read fixes the transaction's view of the store.
    let _: i64 = source
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .with_context(|| format!("{} is not a readable SQLite database", db.display()))?;
    let mut target = Connection::open(out).with_context(|| format!("Failed to create {}", out.display()))?;
    let copied = {
        let backup = Backup::new(&source, &mut target).context("Failed to start the SQLite backup")?;
        loop {
            let step = backup.step(PAGES_PER_STEP).context("SQLite backup step failed")?;
            let at = backup.progress();
            let total = u64::try_from(at.pagecount).unwrap_or(0);
            let now = Progress { copied: total.saturating_sub(u64::try_from(at.remaining).unwrap_or(0)), total };
            progress(now);
            match step {
                StepResult::Done => break now,
                StepResult::More => {}
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    };
    source.execute_batch("COMMIT").context("Failed to end the snapshot's read transaction")?;
    super::reqids::copy_batches_into(db, &mut target).context("Failed to copy the token reqids")?;
    target.close().map_err(|(_, e)| e).context("Failed to close the snapshot")?;
    Ok(copied)
}

/// Checks that `db` is a sound SQLite database (`PRAGMA quick_check`), before
/// payrail opens (and migrates) it.
pub fn check_database(db: &Path) -> anyhow::Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).with_context(|| format!("Failed to open {}", db.display()))?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .with_context(|| format!("{} is not a SQLite database", db.display()))?;
    anyhow::ensure!(verdict == "ok", "{} is damaged: {verdict}", db.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A copy in several steps while another connection commits: it
    /// finishes, and holds the rows of one instant between its start and end.
    #[test]
    fn a_snapshot_taken_during_writes_is_the_store_at_one_instant() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = dir.path().join("s.db");
        let writer = Connection::open(&db).unwrap_or_else(|e| panic!("{e}"));
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
                 INSERT INTO t (pad) SELECT zeroblob(1000) FROM n;",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let writing = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    writer.execute("INSERT INTO t (pad) VALUES (zeroblob(1000))", []).unwrap_or_else(|e| panic!("{e}"));
                }
                writer
            })
        };
        let reader = Connection::open(&db).unwrap_or_else(|e| panic!("{e}"));
        let before = rows(&reader);
        let mut steps = 0;
        let out = dir.path().join("copy.db");
        let copied = snapshot(&db, &out, |_| {
            steps += 1;
            std::thread::sleep(Duration::from_millis(20));
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        let after = rows(&reader);
        stop.store(true, Ordering::SeqCst);
        drop(writing.join());
        assert!(steps > 1 && copied.copied == copied.total, "{steps} steps, {copied:?}");
        assert!(after > before, "the writer committed during the copy");
        check_database(&out).unwrap_or_else(|e| panic!("{e:#}"));
        let copy = rows(&Connection::open(&out).unwrap_or_else(|e| panic!("{e}")));
        assert!((before..after).contains(&copy), "{before} <= {copy} < {after}");
    }

    #[test]
    fn a_file_that_is_not_a_database_fails_the_check() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("x.db");
        std::fs::write(&path, b"not a database at all, just text ".repeat(200)).unwrap_or_else(|e| panic!("{e}"));
        assert!(check_database(&path).is_err());
    }
}
