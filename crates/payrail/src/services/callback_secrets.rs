//! A partner's callback secret: its own, made when its callback URL is first
//! set, shown once, sealed at rest like the token secret (under a different
//! associated data, see [`MasterKey::seal_callback`]), rotatable with an
//! overlap during which callbacks carry both signatures. It is never the
//! partner's API token secret: whoever receives callbacks must not be able
//! to sign API requests.

use secrecy::{ExposeSecret as _, SecretString};

use super::secrets::{new_partner_secret, MasterKey, OpenError};
use crate::domain::event::CallbackSecrets;
use crate::domain::{Clock, RegistrationId, Timestamp};
use crate::store::{CallbackSecretInstall, PartnerStore, Store, StoreError};

/// Why a callback secret was not made or set.
#[derive(Debug, thiserror::Error)]
pub enum CallbackSecretError {
    /// There is no such partner.
    #[error("no partner {0}")]
    UnknownPartner(RegistrationId),
    /// The secret could not be sealed.
    #[error("the callback secret could not be sealed")]
    Seal(#[source] anyhow::Error),
    /// The store could not read the partner or keep the URL or secret.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sets the partner's callback URL and, if it has no callback secret yet,
/// makes one: returned this once (`None` when it already had one, which
/// keeps working).
pub async fn set_callback(
    store: &dyn Store,
    clock: &dyn Clock,
    key: &MasterKey,
    partner: RegistrationId,
    url: String,
) -> Result<Option<SecretString>, CallbackSecretError> {
    let now = clock.now();
    if !store.set_callback_url(partner, Some(url), now).await? {
        return Err(CallbackSecretError::UnknownPartner(partner));
    }
    install(store, clock, key, partner, false, None).await
}

/// Makes the partner's callback secret if it has none (the demo's, before
/// any URL is set); returned this once.
pub async fn ensure_secret(
    store: &dyn Store,
    clock: &dyn Clock,
    key: &MasterKey,
    partner: RegistrationId,
) -> Result<Option<SecretString>, CallbackSecretError> {
    install(store, clock, key, partner, false, None).await
}

/// Gives the partner a new callback secret; the old one also signs
/// callbacks for `overlap` (none: it stops at once). The new secret and
/// when the old one stops.
pub async fn rotate_secret(
    store: &dyn Store,
    clock: &dyn Clock,
    key: &MasterKey,
    partner: RegistrationId,
    overlap: std::time::Duration,
) -> Result<(SecretString, Timestamp), CallbackSecretError> {
    let until = clock.now().plus_secs(overlap.as_secs() as i64);
    let previous_until = (!overlap.is_zero()).then_some(until);
    let secret = install(store, clock, key, partner, true, previous_until).await?;
    let secret = secret.ok_or(CallbackSecretError::UnknownPartner(partner))?;
    Ok((secret, until))
}

async fn install(
    store: &dyn PartnerStore,
    clock: &dyn Clock,
    key: &MasterKey,
    partner: RegistrationId,
    replace: bool,
    previous_until: Option<Timestamp>,
) -> Result<Option<SecretString>, CallbackSecretError> {
    let secret = new_partner_secret();
    let sealed = key.seal_callback(partner, secret.expose_secret().as_bytes()).map_err(CallbackSecretError::Seal)?;
    let install = CallbackSecretInstall { partner, secret: sealed, replace, previous_until, at: clock.now() };
    match store.install_callback_secret(install).await? {
        None => Err(CallbackSecretError::UnknownPartner(partner)),
        Some(installed) => Ok(installed.then_some(secret)),
    }
}

/// The secrets that sign a callback at `now`: the current one, then the
/// previous one while its overlap lasts.
pub fn signing_keys(
    key: &MasterKey,
    partner: RegistrationId,
    secrets: &CallbackSecrets,
    now: Timestamp,
) -> Result<Vec<Vec<u8>>, OpenError> {
    let mut keys = vec![key.open_callback(partner, &secrets.current)?];
    if let Some((previous, until)) = &secrets.previous {
        if now <= *until {
            keys.push(key.open_callback(partner, previous)?);
        }
    }
    Ok(keys)
}
