//! Partner secrets at rest: sealed with ChaCha20-Poly1305 under the server's
//! master key. HS256 needs the raw secret to verify a token, so a hash would
//! not do; the partner's registration id is bound in as associated data so a
//! sealed secret copied onto another partner does not open.

use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::domain::partner::SealedSecret;
use crate::domain::RegistrationId;

/// The file name of a generated key inside the data directory.
pub const KEY_FILE: &str = "master.key";

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

    /// Loads the key: from `configured` (PAYRAIL_MASTER_KEY) if given, else
    /// from `DATA_DIR/master.key`; when neither exists and `generate` is set
    /// (demo mode) a new key is written there with mode 0600.
    pub fn load(configured: Option<&SecretString>, data_dir: &Path, generate: bool) -> anyhow::Result<Self> {
        if let Some(hex) = configured {
            return Self::from_hex(hex.expose_secret());
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(&text).with_context(|| format!("Failed to read {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => Self::generate_into(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no master key: set PAYRAIL_MASTER_KEY (64 hex digits, e.g. `openssl rand -hex 32`) or run `payrail serve --demo` once to generate {}",
                path.display()
            ),
            Err(e) => Err(e).with_context(|| format!("Failed to read {}", path.display())),
        }
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
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = partner.number().to_be_bytes();
        let ciphertext = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad: &aad })
            .map_err(|_| anyhow::anyhow!("Failed to seal a partner secret"))?;
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
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = callback_aad(partner);
        let ciphertext = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad: &aad })
            .map_err(|_| anyhow::anyhow!("Failed to seal a callback secret"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(SealedSecret(sealed))
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
        let first = MasterKey::load(None, dir.path(), true).unwrap_or_else(|e| panic!("{e}"));
        let again = MasterKey::load(None, dir.path(), false).unwrap_or_else(|e| panic!("{e}"));
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
        let error = MasterKey::load(None, dir.path(), false).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("PAYRAIL_MASTER_KEY"), "{error}");
    }
}
