//! `payrail backup --out FILE` and `payrail restore FILE --data-dir DIR`.
//!
//! A backup is one file: a consistent snapshot of the SQLite store, taken
//! while the server runs (see `store::sqlite::snapshot`). It does not hold
//! the master key: the key seals the partners' secrets in the store, so a
//! snapshot kept with its key is no longer sealed. Back the key up apart.
//! A restore fills an empty data directory, and only once the snapshot has
//! opened as a payrail store and passed `payrail verify`'s checks: it is
//! built in a directory beside DIR, renamed into place at the end, and
//! removed if anything fails, so DIR is never left half restored.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Cli;
use crate::domain::SystemClock;
use crate::services::secrets::{check_master_key, MasterKey, MissingKey};
use crate::store::sqlite::snapshot::{self, Progress};
use crate::store::{self, files, StoreLocation, SQLITE_FILE};

/// `payrail backup` options.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The snapshot file to write; it must not exist yet.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `payrail restore` options.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A snapshot written by `payrail backup`. Restored into --data-dir,
    /// which must be empty or not exist.
    #[arg(value_name = "FILE")]
    pub snapshot: PathBuf,
}

/// Runs `backup`.
pub async fn backup(cli: &Cli, args: &BackupArgs) -> anyhow::Result<()> {
    let dir = match cli.store_location()? {
        StoreLocation::Sqlite(dir) => dir,
        StoreLocation::Postgres(_) => anyhow::bail!(
            "payrail backup snapshots a SQLite store, and this store is PostgreSQL: back it up with pg_dump \
             (see README, \"Backups\"), e.g. pg_dump --format=custom --file=payrail.dump \"$PAYRAIL_DATABASE_URL\""
        ),
    };
    let out = args.out.clone();
    refuse_existing(&out)?;
    let db = dir.join(SQLITE_FILE);
    anyhow::ensure!(db.is_file(), "no SQLite store in {}: {} does not exist", dir.display(), db.display());
    let partial = sibling(&out, "partial")?;
    // A partial left by a backup that was killed (same pid, after a reboot) is not ours to extend.
    let _ = std::fs::remove_file(&partial);
    files::private_file(&partial)?;
    let bar = progress_bar();
    let shown = bar.clone();
    let copy = (db.clone(), partial.clone());
    let copied = tokio::task::spawn_blocking(move || {
        snapshot::snapshot(&copy.0, &copy.1, |at: Progress| {
            shown.set_length(at.total);
            shown.set_position(at.copied);
        })
    })
    .await
    .context("the snapshot task failed");
    bar.finish_and_clear();
    let finished = copied.and_then(|copied| copied).and_then(|copied| publish(&partial, &out).map(|()| copied));
    let _ = std::fs::remove_file(&partial);
    let copied = finished?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!("snapshot of {} written to {} ({} pages, {bytes} bytes)", db.display(), out.display(), copied.total);
    eprintln!(
        "note: the snapshot does not hold the master key ({}); back the key up separately, and keep it apart from the snapshot",
        key_location(cli, &dir)
    );
    Ok(())
}

/// Runs `restore`.
pub async fn restore(cli: &Cli, args: &RestoreArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        cli.database_url.is_none(),
        "payrail restore fills a SQLite data directory (--data-dir); a PostgreSQL store is restored with pg_restore (see README, \"Backups\")"
    );
    let dir = cli.data_dir.clone();
    anyhow::ensure!(args.snapshot.is_file(), "{} is not a file", args.snapshot.display());
    if dir.exists() {
        let mut entries = std::fs::read_dir(&dir).with_context(|| format!("Failed to read {}", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: restore only into an empty or new data directory",
            dir.display()
        );
    }
    let staging = sibling(&dir, "restoring")?;
    if let Some(parent) = staging.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("Failed to create {}", parent.display()))?;
    }
    std::fs::create_dir(&staging).with_context(|| format!("Failed to create {}", staging.display()))?;
    let checked = restore_into(cli, &staging, &args.snapshot).await;
    let finished = checked.and_then(|journals| {
        std::fs::rename(&staging, &dir)
            .with_context(|| format!("Failed to move the restored store into {}", dir.display()))
            .map(|()| journals)
    });
    let journals = match finished {
        Ok(journals) => journals,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    println!(
        "restored {} into {}: {journals} journals checked, ledger sums to zero, wallets match their postings",
        args.snapshot.display(),
        dir.display()
    );
    eprintln!(
        "note: the master key is not in the snapshot: put it in {} (mode 0600) or give --master-key-file / PAYRAIL_MASTER_KEY",
        dir.join("master.key").display()
    );
    Ok(())
}

/// Copies the snapshot into `staging`, opens it as a store (migrating an
/// older one), checks a given master key against it, and runs `verify`'s checks.
async fn restore_into(cli: &Cli, staging: &Path, snapshot_file: &Path) -> anyhow::Result<i64> {
    files::private_dir(staging)?;
    let db = staging.join(SQLITE_FILE);
    files::private_file(&db)?;
    std::fs::copy(snapshot_file, &db).with_context(|| format!("Failed to copy {}", snapshot_file.display()))?;
    snapshot::check_database(&db).with_context(|| format!("{} is not a usable snapshot", snapshot_file.display()))?;
    let store = store::open(&StoreLocation::Sqlite(staging.to_owned()))
        .await
        .with_context(|| format!("{} does not open as a payrail store", snapshot_file.display()))?;
    let source = cli.key_source();
    if source.is_given() {
        let key = MasterKey::load(&source, staging, MissingKey::Refuse)?;
        check_master_key(&*store, &SystemClock, &key)
            .await
            .context("the master key given does not open this snapshot")?;
    }
    let checked = crate::services::verify::check(&*store, None).await?;
    let (journals, violations) = (checked.journals, checked.violations);
    store.flush().await?;
    drop(store);
    if let Some(first) = violations.first() {
        anyhow::bail!(
            "{} fails payrail verify ({} violation(s)), first: {first}; nothing was restored",
            snapshot_file.display(),
            violations.len()
        );
    }
    Ok(journals)
}

/// Refuses to write over `path`.
fn refuse_existing(path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::fs::symlink_metadata(path).is_err(),
        "{} already exists: payrail backup never overwrites a file; give a new name",
        path.display()
    );
    Ok(())
}

/// Puts the finished snapshot at `out` without ever replacing a file there
/// (a hard link fails if `out` exists, even one made since the check).
fn publish(partial: &Path, out: &Path) -> anyhow::Result<()> {
    std::fs::hard_link(partial, out).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} appeared during the backup; not overwritten", out.display())
        }
        _ => anyhow::Error::new(e).context(format!("Failed to write {}", out.display())),
    })
}

/// `.NAME.WHAT-PID` beside `path`: on the same file system, so it can be renamed or linked into place.
fn sibling(path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok(parent.join(format!(".{}.{what}-{}", name.to_string_lossy(), std::process::id())))
}

/// Where this command's master key came from, as the backup's note names
/// it: the environment, the file given, or the data directory's.
fn key_location(cli: &Cli, dir: &Path) -> String {
    let given = cli.key_source();
    if given.env.is_some() {
        return "given in PAYRAIL_MASTER_KEY".into();
    }
    given.file.unwrap_or_else(|| dir.join("master.key")).display().to_string()
}

/// Pages copied, on standard error (hidden when it is not a terminal).
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} pages {elapsed}") {
        bar.set_style(style);
    }
    bar
}
