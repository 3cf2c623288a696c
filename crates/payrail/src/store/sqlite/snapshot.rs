//! Online snapshots of the SQLite store, for `payrail backup` and `restore`.
//!
//! SQLite's backup API copies the database page by page. The copy runs
//! inside one read transaction on the source: in WAL mode that transaction
//! sees the store as it was when it began, whatever a running server commits
//! meanwhile (its commits go to the WAL, which this reader does not see and
//! which does not restart the copy), so the snapshot is the store at one
//! instant and the server is never blocked.

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
