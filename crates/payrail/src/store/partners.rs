//! Partners and their credentials: registration, status, token secrets, the master key check, token `reqid` replay windows, callback URLs and callback signing secrets.

use super::*;

/// Partners and their credentials: registration, status, token secrets, the master key check, token `reqid` replay windows, callback URLs and callback signing secrets.
#[async_trait]
pub trait PartnerStore: Send + Sync + 'static {
    /// The partner with this registration id.
    async fn find_partner(&self, id: RegistrationId) -> Result<Option<Partner>, StoreError>;
    /// Adds a partner and returns it with its registration id.
    async fn insert_partner(&self, new: NewPartner) -> Result<Partner, StoreError>;
    /// Every partner, by registration id.
    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError>;
    /// Suspends or reactivates; `false` if there is no such partner.
    async fn set_partner_status(&self, id: RegistrationId, status: PartnerStatus) -> Result<bool, StoreError>;
    /// Installs a new secret, keeping the current one valid until `previous_until`.
    async fn rotate_partner_secret(
        &self,
        id: RegistrationId,
        secret: SealedSecret,
        previous_until: Timestamp,
    ) -> Result<bool, StoreError>;
    /// The master key's check value, if the store has one yet.
    async fn key_check(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `mac` as the master key's check value if the store has none,
    /// atomically, and returns the value stored (`mac`, or the one another
    /// process stored first).
    async fn claim_key_check(&self, mac: &[u8], at: Timestamp) -> Result<Vec<u8>, StoreError>;
    /// Records a token `reqid`; `false` if the partner used it since `cutoff` (a replay).
    async fn remember_reqid(
        &self,
        partner: RegistrationId,
        reqid: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Records the `reqid` of an upstream callback's token, durably, and
    /// forgets those seen before `cutoff`; `false` (nothing written) if it
    /// was seen since `cutoff` (a replay).
    async fn remember_upstream_reqid(&self, reqid: &str, now: Timestamp, cutoff: Timestamp)
        -> Result<bool, StoreError>;
    /// Sets or clears the partner's callback URL; `false` if there is no such partner.
    async fn set_callback_url(
        &self,
        partner: RegistrationId,
        url: Option<String>,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// The partner's callback URL.
    async fn callback_url(&self, partner: RegistrationId) -> Result<Option<String>, StoreError>;
    /// The partner's callback signing secrets (kept when its URL is cleared).
    async fn callback_secrets(&self, partner: RegistrationId) -> Result<Option<CallbackSecrets>, StoreError>;
    /// Installs a callback secret for the partner. With `replace` false it
    /// is installed only if the partner has none; with `replace` true it
    /// replaces the current one, which stays valid until `previous_until`
    /// (`None`: not at all). `None` if there is no such partner, else
    /// whether it was installed.
    async fn install_callback_secret(
        &self,
        partner: RegistrationId,
        secret: SealedSecret,
        replace: bool,
        previous_until: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<Option<bool>, StoreError>;
}
