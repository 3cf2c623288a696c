//! Adding, listing, suspending partners and rotating their secrets.

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::secrets::{new_partner_secret, MasterKey};
use crate::domain::{Clock, IpAllowlist, Partner, PartnerStatus, RegistrationId, Timestamp};
use crate::store::{NewPartner, PartnerAccess, PartnerStore, SecretRotation, Store};

/// What `partner add` asks for.
#[derive(Debug, Clone)]
pub struct PartnerRequest {
    /// A fixed registration number, or the next free one.
    pub number: Option<i64>,
    /// A name for operators.
    pub name: String,
    /// Where the partner may call from; empty for anywhere.
    pub allowlist: IpAllowlist,
    /// Whether a token is required.
    pub require_token: bool,
    /// An `Authorisedkey` the partner must send, if any.
    pub authorised_key: Option<SecretString>,
}

/// A partner just added, with the secret that is shown this once.
pub struct AddedPartner {
    /// The stored partner.
    pub partner: Partner,
    /// The token secret, never stored in the clear.
    pub secret: SecretString,
}

/// SHA-256 of an `Authorisedkey`, the form the store keeps.
pub fn authorised_key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A partner that would be refused as asked. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PartnerRuleError {
    /// No token and no allowlist: anyone who guesses its sequential
    /// RegistrationID could act as the partner.
    #[error(
        "a partner without tokens must have an IP allowlist: without either, anyone who guesses its \
         sequential RegistrationID can act as it. Give the partner's addresses with --allow-ip \
         (0.0.0.0/0 and ::/0 count as no list), or require tokens (drop --no-token)"
    )]
    OpenWithoutToken,
}

/// Checks the rules every partner obeys, whoever adds or changes it.
pub fn check_access(require_token: bool, allowlist: &IpAllowlist) -> Result<(), PartnerRuleError> {
    if !require_token && !allowlist.restricts_callers() {
        return Err(PartnerRuleError::OpenWithoutToken);
    }
    Ok(())
}

/// Adds a partner with a fresh secret; refused (nothing written) if it
/// breaks [`check_access`].
pub async fn add_partner(
    store: &dyn Store,
    clock: &dyn Clock,
    key: &MasterKey,
    request: PartnerRequest,
) -> anyhow::Result<AddedPartner> {
    check_access(request.require_token, &request.allowlist)?;
    let secret = new_partner_secret();
    // The secret is sealed with the partner's number as associated data, so
    // the number must be known first: take the next free one up front.
    let number = match request.number {
        Some(n) => n,
        None => next_free_number(store).await?,
    };
    let registration_id = RegistrationId::new(number);
    let new = NewPartner {
        number: Some(number),
        name: request.name,
        require_token: request.require_token,
        allowlist: request.allowlist,
        secret: key.seal(registration_id, secret.expose_secret().as_bytes())?,
        authorised_key_hash: request.authorised_key.as_ref().map(|k| authorised_key_hash(k.expose_secret())),
        created_at: clock.now(),
    };
    let partner = store.insert_partner(new).await.context("Failed to store the partner")?;
    Ok(AddedPartner { partner, secret })
}

async fn next_free_number(store: &dyn PartnerStore) -> anyhow::Result<i64> {
    let partners = store.list_partners().await.context("Failed to list partners")?;
    let highest = partners.iter().map(|p| p.registration_id.number()).max().unwrap_or(0);
    Ok(highest.max(1000) + 1)
}

/// Suspends or reactivates a partner; an error if there is none.
pub async fn set_status(store: &dyn PartnerStore, id: RegistrationId, status: PartnerStatus) -> anyhow::Result<()> {
    if !store.set_partner_status(id, status).await.context("Failed to update the partner")? {
        anyhow::bail!("no partner {id}");
    }
    Ok(())
}

/// Gives a partner a new secret; the old one keeps working for `overlap`.
pub async fn rotate_secret(
    store: &dyn PartnerStore,
    clock: &dyn Clock,
    key: &MasterKey,
    id: RegistrationId,
    overlap: std::time::Duration,
) -> anyhow::Result<(SecretString, Timestamp)> {
    let secret = new_partner_secret();
    let sealed = key.seal(id, secret.expose_secret().as_bytes())?;
    let until = clock.now().plus_secs(overlap.as_secs() as i64);
    if !store
        .rotate_partner_secret(id, SecretRotation { secret: sealed, previous_until: until })
        .await
        .context("Failed to rotate the secret")?
    {
        anyhow::bail!("no partner {id}");
    }
    Ok((secret, until))
}

/// Sets whether a partner needs tokens and where it may call from;
/// refused (nothing written) if that breaks [`check_access`], an error if
/// there is no such partner.
pub async fn set_access(
    store: &dyn PartnerStore,
    id: RegistrationId,
    require_token: bool,
    allowlist: IpAllowlist,
) -> anyhow::Result<()> {
    check_access(require_token, &allowlist)?;
    if !store
        .set_partner_access(id, PartnerAccess { require_token, allowlist })
        .await
        .context("Failed to update the partner")?
    {
        anyhow::bail!("no partner {id}");
    }
    Ok(())
}

/// Sets the `Authorisedkey` a partner must send (kept only as its SHA-256),
/// or with `None` stops requiring one; an error if there is no such partner.
pub async fn set_authorised_key(
    store: &dyn PartnerStore,
    id: RegistrationId,
    key: Option<&SecretString>,
) -> anyhow::Result<()> {
    let hash = key.map(|k| authorised_key_hash(k.expose_secret()));
    if !store.set_authorised_key_hash(id, hash).await.context("Failed to update the partner")? {
        anyhow::bail!("no partner {id}");
    }
    Ok(())
}

/// A partner as operators see it and the audit log records it: never a
/// secret nor a key, only whether one is set and until when a rotated-out
/// secret still works.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PartnerView {
    /// `AOP-<n>`.
    pub registration_id: String,
    /// A name for operators.
    pub name: String,
    /// `active` or `suspended`.
    pub status: &'static str,
    /// Whether every request must carry a `Token` header.
    pub require_token: bool,
    /// Where it may call from; empty for anywhere.
    pub allow_ips: Vec<String>,
    /// Whether it must send an `Authorisedkey`.
    pub authorised_key_set: bool,
    /// Until when the secret before the last rotation still works (India time).
    pub previous_secret_valid_until: Option<String>,
    /// When it was added (India time).
    pub created_at: String,
}

impl PartnerView {
    /// The view of `partner`.
    pub fn new(partner: &Partner) -> Self {
        PartnerView {
            registration_id: partner.registration_id.to_string(),
            name: partner.name.clone(),
            status: partner.status.as_str(),
            require_token: partner.require_token,
            allow_ips: partner.allowlist.to_stored().split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            authorised_key_set: partner.authorised_key_hash.is_some(),
            previous_secret_valid_until: partner.previous_secret.as_ref().map(|(_, until)| until.to_ist_string()),
            created_at: partner.created_at.to_ist_string(),
        }
    }

    /// The view as JSON, for the audit log.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
