//! Operators: adding and changing accounts, passwords, personal API tokens,
//! telling who a bearer token belongs to, and the audit log.
//!
//! Passwords are hashed with argon2id at the `argon2` crate's default
//! parameters (19 MiB of memory, 2 passes, 1 lane: OWASP's minimum for
//! argon2id), each with its own random 16-byte salt, kept in PHC string
//! form so that stronger parameters later still verify old hashes.
//!
//! Personal tokens are `prt_<id>_<secret>`: a random public id (8 bytes, in
//! hex) the store looks the token up by, and a 32-byte random secret of
//! which only the SHA-256 is stored. A fast hash is enough here, unlike for
//! passwords: 256 random bits cannot be guessed, so there is nothing for a
//! slow hash to slow down; a stolen table still yields no usable token.
//! The lookup is by the public id alone, and the secret's hash is compared
//! in constant time, so a wrong secret teaches nothing about any token.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::domain::operator::{
    split_token, Actor, ApiToken, Email, NewAuditEntry, OperatorAccount, OperatorChange, Role, TOKEN_PREFIX,
};
use crate::domain::{Clock, Timestamp};
use crate::store::operators::NewOperator;
use crate::store::{OperatorEdit, Store, StoreError};

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The most characters a password may have (argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Why an operator command was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// An operator with this address exists already.
    #[error("an operator with email {0} already exists")]
    Exists(Email),
    /// No operator has this address.
    #[error("no operator with email {0}")]
    NoSuchOperator(Email),
    /// No token has this id.
    #[error("no token with id {0}")]
    NoSuchToken(String),
    /// The password does not meet the rules.
    #[error(
        "the password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, without control characters"
    )]
    WeakPassword,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error("failed to hash the password: {0}")]
    Hash(String),
}

/// Checks `password` against the rules: 12 to 256 characters, no control characters.
pub fn check_password(password: &str) -> Result<(), OperatorError> {
    let chars = password.chars().count();
    let fine = (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) && !password.chars().any(char::is_control);
    fine.then_some(()).ok_or(OperatorError::WeakPassword)
}

/// A new random password: 24 characters from 64, 144 bits.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The argon2id hash of `password` (checked first), in PHC string form.
pub fn hash_password(password: &str) -> Result<String, OperatorError> {
    check_password(password)?;
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| OperatorError::Hash(e.to_string()))?;
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt);
    Ok(hash.map_err(|e| OperatorError::Hash(e.to_string()))?.to_string())
}

/// Whether `password` matches the stored `hash` (argon2 compares in constant time).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Adds an operator (audited as `actor`'s).
pub async fn add(
    store: &dyn Store,
    clock: &dyn Clock,
    email: Email,
    role: Role,
    password: &str,
    actor: &Actor,
) -> Result<OperatorAccount, OperatorError> {
    let password_hash = hash_password(password)?;
    let now = clock.now();
    let new = NewOperator { email: email.clone(), role, password_hash, created_at: now };
    let view = serde_json::json!({ "email": email.as_str(), "role": role.as_str(), "disabled": false });
    let audit = NewAuditEntry::new(now, actor, "operator.add", format!("operator:{email}"))
        .changed(&serde_json::Value::Null, &view);
    store.insert_operator(new, audit).await?.ok_or(OperatorError::Exists(email))
}

/// Changes an operator (audited as `actor`'s); the account before and after.
pub async fn change(
    store: &dyn Store,
    clock: &dyn Clock,
    email: &Email,
    change: OperatorChange,
    actor: &Actor,
) -> Result<(OperatorAccount, OperatorAccount), OperatorError> {
    let found = store.change_operator(OperatorEdit { email, change, at: clock.now(), actor }).await?;
    found.ok_or_else(|| OperatorError::NoSuchOperator(email.clone()))
}

/// The operator with this address, or [`OperatorError::NoSuchOperator`].
pub async fn find(store: &dyn Store, email: &Email) -> Result<OperatorAccount, OperatorError> {
    store.find_operator(email).await?.ok_or_else(|| OperatorError::NoSuchOperator(email.clone()))
}

/// A token just made: the full token (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// `prt_<id>_<secret>`; only its hash is kept.
    pub token: String,
    /// What the store keeps.
    pub stored: ApiToken,
}

/// The SHA-256 of a token's secret part.
fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes a personal token for the operator with this address.
pub async fn create_token(
    store: &dyn Store,
    clock: &dyn Clock,
    email: &Email,
    name: String,
    expires_at: Option<Timestamp>,
    actor: &Actor,
) -> Result<(OperatorAccount, IssuedToken), OperatorError> {
    let owner = find(store, email).await?;
    let (id, secret) = (random_hex(8), random_hex(32));
    let now = clock.now();
    let stored = ApiToken {
        id: id.clone(),
        operator_id: owner.id,
        name,
        secret_hash: secret_hash(&secret),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    let after = serde_json::json!({
        "operator": email.as_str(),
        "name": stored.name,
        "expires_at": expires_at.map(Timestamp::to_ist_string),
    });
    let audit =
        NewAuditEntry::new(now, actor, "token.create", format!("token:{id}")).changed(&serde_json::Value::Null, &after);
    store.insert_token(stored.clone(), audit).await?;
    Ok((owner, IssuedToken { token: format!("{TOKEN_PREFIX}{id}_{secret}"), stored }))
}

/// Revokes a token; it stops working at once.
pub async fn revoke_token(
    store: &dyn Store,
    clock: &dyn Clock,
    id: &str,
    actor: &Actor,
) -> Result<ApiToken, OperatorError> {
    let revoked = store.revoke_token(id, clock.now(), actor).await?;
    revoked.ok_or_else(|| OperatorError::NoSuchToken(id.to_owned()))
}

/// The operator a personal token belongs to, read afresh on every call: `None`
/// for a token that is malformed, unknown, wrong, revoked or expired, or
/// whose operator is disabled.
pub async fn authenticate_token(store: &dyn Store, now: Timestamp, token: &str) -> Result<Option<Actor>, StoreError> {
    let Some((id, secret)) = split_token(token) else { return Ok(None) };
    // Hashed before the lookup: an unknown id and a wrong secret cost the same.
    let sent = secret_hash(secret);
    let Some((stored, operator)) = store.token_with_operator(id).await? else { return Ok(None) };
    let matches: bool = sent.ct_eq(&stored.secret_hash).into();
    let live = matches && stored.is_live(now) && operator_may_act(&operator);
    Ok(live.then_some(Actor::Operator { id: operator.id, email: operator.email, role: operator.role }))
}

/// Whether an operator may act at all: checked on every request, by
/// tokens now and by console sessions later, so that disabling takes
/// effect at once.
pub fn operator_may_act(operator: &OperatorAccount) -> bool {
    !operator.disabled
}

/// The demo's admin operator.
pub const DEMO_ADMIN: &str = "admin@demo.payrail";

/// Adds the demo's admin operator ([`DEMO_ADMIN`]) with a generated
/// password, returned to be shown once; `None` if it exists already.
pub async fn add_demo_admin(store: &dyn Store, clock: &dyn Clock) -> Result<Option<String>, OperatorError> {
    let email = Email::parse(DEMO_ADMIN).map_err(|e| OperatorError::Hash(e.to_string()))?;
    if store.find_operator(&email).await?.is_some() {
        return Ok(None);
    }
    let password = generate_password();
    match add(store, clock, email, Role::Admin, &password, &Actor::Cli).await {
        Ok(_) => Ok(Some(password)),
        Err(OperatorError::Exists(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_is_argon2id_and_verifies_only_its_password() {
        let hash = hash_password("correct horse battery").unwrap_or_else(|e| panic!("{e}"));
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
    }

    #[test]
    fn passwords_must_be_long_enough_and_printable() {
        assert!(check_password("short").is_err());
        assert!(check_password(&"x".repeat(257)).is_err());
        assert!(check_password("twelve chars\n").is_err());
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password(&generate_password()).is_ok());
    }
}
