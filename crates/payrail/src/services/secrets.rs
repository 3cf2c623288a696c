//! Partner secrets at rest: sealed with ChaCha20-Poly1305 under the server's
//! master key. HS256 needs the raw secret to verify a token, so a hash would
//! not do; the partner's registration id is bound in as associated data so a
//! sealed secret copied onto another partner does not open.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use subtle::ConstantTimeEq as _;

use crate::domain::partner::SealedSecret;
use crate::domain::{Clock, RegistrationId};
use crate::store::{Store, StoreError};

/// What [`MasterKey::load`] does when no key is given and the data
/// directory holds none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKey {
    /// Writes a new one (demo mode only: a real store's key is the operator's).
    Generate,
    /// Refuses, explaining how to give one.
    Refuse,
}

/// The file name of a generated key inside the data directory.
pub const KEY_FILE: &str = "master.key";

/// What the key check value is a MAC of.
const KEY_CHECK_LABEL: &[u8] = b"payrail master key check v1";

/// Where the master key is given, if anywhere: never on the command line,
/// where `ps` would show it to every user of the machine.
#[derive(Debug, Default)]
pub struct KeySource {
    /// `PAYRAIL_MASTER_KEY`: 64 hex digits.
    pub env: Option<SecretString>,
    /// `--master-key-file PATH`: a file holding the 64 hex digits, mode 0600 or 0400.
    pub file: Option<PathBuf>,
}

impl KeySource {
    /// Whether a key was given (not just found in the data directory).
    pub fn is_given(&self) -> bool {
        self.env.is_some() || self.file.is_some()
    }
}

/// The master key does not match the store.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    /// The store was set up with a different key.
    #[error(
        "this master key is not the one this store was set up with (its key check value differs), so \
         partner secrets sealed in it would not open; nothing was written. Use the store's own key \
         (PAYRAIL_MASTER_KEY or --master-key-file)"
    )]
    WrongKey,
    /// The store has partners but no check value, and this key does not open their secrets.
    #[error(
        "this master key does not open the secret of partner {0}, so it is not the key this store's \
         partners were sealed with; nothing was written. Use the store's own key \
         (PAYRAIL_MASTER_KEY or --master-key-file)"
    )]
    OpensNoPartner(RegistrationId),
    /// The store could not be read while checking the key against it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks `key` against the store's key check value; a store without one
/// takes this key's, after making sure the key opens an existing partner's
/// secret (a store made before check values existed).
pub async fn check_master_key(store: &dyn Store, clock: &dyn Clock, key: &MasterKey) -> Result<(), KeyCheckError> {
    let mine = key.check_value();
    if let Some(stored) = store.key_check().await? {
        return if bool::from(stored.ct_eq(&mine)) { Ok(()) } else { Err(KeyCheckError::WrongKey) };
    }
    if let Some(partner) = store.list_partners().await?.first() {
        if key.open(partner.registration_id, &partner.secret).is_err() {
            return Err(KeyCheckError::OpensNoPartner(partner.registration_id));
        }
    }
    let stored = store.claim_key_check(&mine, clock.now()).await?;
    if bool::from(stored.ct_eq(&mine)) {
        Ok(())
    } else {
        // Another process claimed the store with another key just now.
        Err(KeyCheckError::WrongKey)
    }
}

/// The 32-byte key that seals partner secrets.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// A secret that failed to open: wrong master key or tampered data.
#[derive(Debug, thiserror::Error)]
#[error("a partner secret could not be opened with this master key")]
pub struct OpenError;

impl MasterKey {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("the master key must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`");
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).context("Failed to read the master key")?;
        }
        Ok(MasterKey(SecretBox::new(Box::new(key))))
    }

    /// Loads the key from `source` (the environment or a private file), else
    /// from `DATA_DIR/master.key`; when neither exists, `missing` says
    /// whether a new key is written there (mode 0600) or it is an error.
    pub fn load(source: &KeySource, data_dir: &Path, missing: MissingKey) -> anyhow::Result<Self> {
        match (&source.env, &source.file) {
            (Some(_), Some(_)) => bail!("give the master key once: PAYRAIL_MASTER_KEY or --master-key-file, not both"),
            (Some(hex), None) => return Self::from_hex(hex.expose_secret()).context("PAYRAIL_MASTER_KEY"),
            (None, Some(path)) => return Self::read_private_file(path),
            (None, None) => {}
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Self::read_private_file(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing == MissingKey::Generate => {
                Self::generate_into(&path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no master key. payrail seals partner secrets with a 32-byte key: make one with \
                 `openssl rand -hex 32` and give it in the environment as PAYRAIL_MASTER_KEY, or write it \
                 to a file only you can read (chmod 600) and pass --master-key-file PATH \
                 (or put it at {}). Keep it safe: partner secrets cannot be opened without it",
                path.display()
            ),
            Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
        }
    }

    /// Reads a key file, refused unless only its owner can read it (mode
    /// 0600 or 0400): a key others can read is a key others have.
    fn read_private_file(path: &Path) -> anyhow::Result<Self> {
        let metadata = std::fs::metadata(path).with_context(|| format!("Failed to read {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = metadata.permissions().mode() & 0o777;
            if mode != 0o600 && mode != 0o400 {
                bail!(
                    "{} has mode {mode:04o}: a master key file must be readable by its owner only \
                     (chmod 600 {})",
                    path.display(),
                    path.display()
                );
            }
        }
        #[cfg(not(unix))]
        let _ = metadata;
        let text = std::fs::read_to_string(path).with_context(|| format!("Failed to read {}", path.display()))?;
        Self::from_hex(&text).with_context(|| format!("Failed to read {}", path.display()))
    }

    /// The key check value the store keeps: HMAC-SHA256 of a fixed label
    /// under the key. It tells keys apart without revealing the key.
    pub fn check_value(&self) -> Vec<u8> {
        use hmac::Mac;
        type HmacSha256 = hmac::Hmac<sha2::Sha256>;
        // HMAC takes a key of any length; 32 bytes cannot fail.
        let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(self.0.expose_secret()) else {
            return Vec::new();
        };
        mac.update(KEY_CHECK_LABEL);
        mac.finalize().into_bytes().to_vec()
    }

    fn generate_into(path: &Path) -> anyhow::Result<Self> {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(dir) = path.parent() {
            crate::store::files::private_dir(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).with_context(|| format!("Failed to create {}", path.display()))?;
        file.write_all(hex.as_bytes()).with_context(|| format!("Failed to write {}", path.display()))?;
        tracing::info!(path = %path.display(), "generated a demo master key");
        Ok(MasterKey(SecretBox::new(Box::new(key))))
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.0.expose_secret()))
    }

    /// Seals `secret` for `partner`: a random nonce followed by the ciphertext.
    pub fn seal(&self, partner: RegistrationId, secret: &[u8]) -> anyhow::Result<SealedSecret> {
        self.seal_with(&partner.number().to_be_bytes(), secret).context("Failed to seal a partner secret")
    }

    /// Seals `secret` under the associated data `aad`: a random nonce
    /// followed by the ciphertext.
    fn seal_with(&self, aad: &[u8], secret: &[u8]) -> anyhow::Result<SealedSecret> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad })
            .map_err(|_| anyhow::anyhow!("the cipher refused the secret"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(SealedSecret(sealed))
    }

    /// Opens a secret sealed for `partner`.
    pub fn open(&self, partner: RegistrationId, sealed: &SealedSecret) -> Result<Vec<u8>, OpenError> {
        let (nonce, ciphertext) = sealed.0.split_at_checked(12).ok_or(OpenError)?;
        let aad = partner.number().to_be_bytes();
        self.cipher().decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| OpenError)
    }

    /// Seals a partner's callback secret. Its associated data names the
    /// purpose as well as the partner, so that a sealed callback secret
    /// copied into the token secret's column does not open there (whoever
    /// receives callbacks knows it, and must not sign API tokens with it).
    pub fn seal_callback(&self, partner: RegistrationId, secret: &[u8]) -> anyhow::Result<SealedSecret> {
        self.seal_with(&callback_aad(partner), secret).context("Failed to seal a callback secret")
    }

    /// Opens a callback secret sealed for `partner`.
    pub fn open_callback(&self, partner: RegistrationId, sealed: &SealedSecret) -> Result<Vec<u8>, OpenError> {
        let (nonce, ciphertext) = sealed.0.split_at_checked(12).ok_or(OpenError)?;
        let aad = callback_aad(partner);
        self.cipher().decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| OpenError)
    }
}

/// The associated data of a sealed callback secret.
fn callback_aad(partner: RegistrationId) -> Vec<u8> {
    [b"payrail callback secret:".as_slice(), &partner.number().to_be_bytes()].concat()
}

/// A new partner secret: 32 random bytes, base64url, 43 characters. The
/// characters themselves are the HMAC key, as partners paste them.
///
/// A secret never starts with `-`: one in 64 would, and a command line
/// (`payrail token --secret -x…`, clap, curl) reads that as a flag. Such a
/// draw is thrown away and another made.
pub fn new_partner_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    loop {
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let text = URL_SAFE_NO_PAD.encode(bytes);
        if !text.starts_with('-') {
            return SecretString::from(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_secret_opens_only_as_a_callback_secret_of_its_partner() {
        let key = MasterKey::from_hex(&"ab".repeat(32)).unwrap_or_else(|e| panic!("{e}"));
        let partner = RegistrationId::new(1001);
        let sealed = key.seal_callback(partner, b"cb-secret").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.open_callback(partner, &sealed).ok(), Some(b"cb-secret".to_vec()));
        assert!(key.open(partner, &sealed).is_err(), "not as a token secret");
        assert!(key.open_callback(RegistrationId::new(1002), &sealed).is_err(), "not for another partner");
        let token = key.seal(partner, b"token-secret").unwrap_or_else(|e| panic!("{e}"));
        assert!(key.open_callback(partner, &token).is_err(), "a token secret is not a callback secret");
    }

    #[test]
    fn partner_secrets_never_start_with_a_dash() {
        // Unfixed, one draw in 64 starts with '-': 4,000 draws all missing it
        // would happen with probability below 1e-27.
        for _ in 0..4_000 {
            let secret = new_partner_secret();
            let text = secret.expose_secret();
            assert!(!text.starts_with('-'), "{text}");
            assert_eq!(text.len(), 43);
        }
    }

    fn key(byte: u8) -> MasterKey {
        MasterKey(SecretBox::new(Box::new([byte; 32])))
    }

    #[test]
    fn sealed_secrets_open_for_their_partner_only() {
        let sealed = key(1).seal(RegistrationId::new(7), b"s3cret").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key(1).open(RegistrationId::new(7), &sealed).ok(), Some(b"s3cret".to_vec()));
        assert!(key(1).open(RegistrationId::new(8), &sealed).is_err());
        assert!(key(2).open(RegistrationId::new(7), &sealed).is_err());
        assert!(!sealed.0.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn hex_keys_are_checked() {
        assert!(MasterKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn demo_key_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let none = KeySource::default();
        let first = MasterKey::load(&none, dir.path(), MissingKey::Generate).unwrap_or_else(|e| panic!("{e}"));
        let again = MasterKey::load(&none, dir.path(), MissingKey::Refuse).unwrap_or_else(|e| panic!("{e}"));
        let sealed = first.seal(RegistrationId::new(1), b"x").unwrap_or_else(|e| panic!("{e}"));
        assert!(again.open(RegistrationId::new(1), &sealed).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).map(|m| m.permissions().mode()).unwrap_or(0);
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn production_without_a_key_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let none = KeySource::default();
        let error = MasterKey::load(&none, dir.path(), MissingKey::Refuse)
            .err()
            .map(|e| e.to_string())
            .expect("loading without a key fails");
        assert!(error.contains("PAYRAIL_MASTER_KEY") && error.contains("openssl rand -hex 32"), "{error}");
        assert!(error.contains("--master-key-file") && !error.contains("--demo"), "{error}");
    }

    #[test]
    fn check_values_tell_keys_apart() {
        assert_eq!(key(1).check_value(), key(1).check_value());
        assert_ne!(key(1).check_value(), key(2).check_value());
        assert_eq!(key(1).check_value().len(), 32);
    }
}
