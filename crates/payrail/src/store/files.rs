//! The data directory's files are private to their owner: the store holds
//! remitters' names, mobiles and account numbers, and the directory the
//! master key. Every file payrail makes there goes through these.

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

/// Creates `dir` if need be and makes it 0700.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    std::fs::set_permissions(dir, Permissions::from_mode(0o700))
        .with_context(|| format!("Failed to make {} private (0700)", dir.display()))
}

/// Opens `path` for writing, creating it with mode 0600, and makes it 0600 if
/// it already existed with a wider mode. Its contents are kept.
pub fn private_file(path: &Path) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("Failed to open {}", path.display()))?;
    file.set_permissions(Permissions::from_mode(0o600))
        .with_context(|| format!("Failed to make {} private (0600)", path.display()))?;
    Ok(file)
}

/// Makes `path` 0600 if it exists.
pub fn make_private_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::set_permissions(path, Permissions::from_mode(0o600)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("Failed to make {} private (0600)", path.display()))
        }
        _ => Ok(()),
    }
}
