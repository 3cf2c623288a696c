//! Secrets a command takes without showing them to `ps`: from the
//! environment (each flag names its variable), from a file, or from
//! standard input (`--secret-file -`). A value on the command line still
//! works, as `--secret VALUE` or `--secret=VALUE`.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use secrecy::SecretString;

/// The secret given as a value (flag or environment) or read from `file`
/// (`-`: standard input), without its trailing line break; `None` if neither.
pub fn read(value: Option<&SecretString>, file: Option<&Path>) -> anyhow::Result<Option<SecretString>> {
    let Some(file) = file else {
        return Ok(value.cloned());
    };
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).context("Failed to read the secret from standard input")?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("Failed to read {}", file.display()))?;
    }
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        anyhow::bail!(
            "{}: the secret is empty",
            if file == Path::new("-") { "standard input".into() } else { file.display().to_string() }
        );
    }
    Ok(Some(SecretString::from(secret.to_owned())))
}
