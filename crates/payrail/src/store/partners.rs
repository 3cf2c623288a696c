//! Partners and their credentials: registration, status, token secrets, the master key check, token `reqid` replay windows, callback URLs and callback signing secrets.

use std::convert::Infallible;

use super::columns::{columns, StoredRow};
use super::*;

columns! {
    /// The `partners` columns a [`Partner`] is read from, in order (both engines).
    pub(crate) mod partner_columns, list partner_list, qualified partner_list_p as "p" {
        id, name, status, require_token, allow_ips, secret, previous_secret, previous_secret_until, authorised_key_hash,
        created_at
    }
}
pub(crate) use partner_list;
pub(crate) use partner_list_p;

/// Reads a row of the partner columns ([`partner_columns`]), on either engine.
pub(crate) fn partner_from_row<R: StoredRow>(row: &R) -> Result<Partner, R::Error> {
    partner_at(row, 0)
}

/// Reads the partner columns starting at column `base` of a joined row, on either engine.
pub(crate) fn partner_at<R: StoredRow>(row: &R, base: usize) -> Result<Partner, R::Error> {
    use partner_columns as c;
    let previous = row.opt_bytes(base + c::previous_secret)?.zip(row.opt_int(base + c::previous_secret_until)?);
    // An unknown status must not grant access.
    let status = |text: &str| Ok::<_, Infallible>(PartnerStatus::from_stored(text).unwrap_or(PartnerStatus::Suspended));
    Ok(Partner {
        registration_id: RegistrationId::new(row.int(base + c::id)?),
        name: row.text(base + c::name)?,
        status: row.parsed(base + c::status, status)?,
        require_token: row.flag(base + c::require_token)?,
        allowlist: row.parsed(base + c::allow_ips, IpAllowlist::from_stored)?,
        secret: SealedSecret(row.bytes(base + c::secret)?),
        previous_secret: previous.map(|(secret, until)| (SealedSecret(secret), Timestamp::from_unix(until))),
        authorised_key_hash: row.opt_bytes(base + c::authorised_key_hash)?,
        created_at: Timestamp::from_unix(row.int(base + c::created_at)?),
    })
}

/// Reads a row of [`sql::CALLBACK_SECRETS`] (current secret, previous
/// secret, previous secret's end), on either engine.
pub(crate) fn callback_secrets_from_row<R: StoredRow>(row: &R) -> Result<CallbackSecrets, R::Error> {
    let previous = row.opt_bytes(1)?.zip(row.opt_int(2)?);
    Ok(CallbackSecrets {
        current: SealedSecret(row.bytes(0)?),
        previous: previous.map(|(secret, until)| (SealedSecret(secret), Timestamp::from_unix(until))),
    })
}

/// The partners' SQL that both engines run as it is. Parameters are `$n`
/// and first appear in order (`$1` before `$2`): SQLite numbers `$n`
/// parameters by first appearance, not by their digits.
pub(crate) mod sql {

    /// The partner with id `$1`.
    pub(crate) const FIND_PARTNER: &str = concat!("SELECT ", partner_list!(), " FROM partners WHERE id = $1");
    /// Whether partner `$1` exists.
    pub(crate) const PARTNER_EXISTS: &str = "SELECT 1 FROM partners WHERE id = $1";
    /// Every partner, by id.
    pub(crate) const LIST_PARTNERS: &str = concat!("SELECT ", partner_list!(), " FROM partners ORDER BY id");
    /// Adds an active partner and returns it.
    pub(crate) const INSERT_PARTNER: &str = concat!(
        "INSERT INTO partners (id, name, status, require_token, allow_ips, secret, authorised_key_hash, created_at) \
         VALUES ($1, $2, 'active', $3, $4, $5, $6, $7) RETURNING ",
        partner_list!()
    );
    /// Sets partner `$2`'s status to `$1`.
    pub(crate) const SET_PARTNER_STATUS: &str = "UPDATE partners SET status = $1 WHERE id = $2";
    /// Sets partner `$3`'s token requirement to `$1` and its allowlist to `$2`.
    pub(crate) const SET_PARTNER_ACCESS: &str = "UPDATE partners SET require_token = $1, allow_ips = $2 WHERE id = $3";
    /// Sets partner `$2`'s `Authorisedkey` hash to `$1` (NULL: none).
    pub(crate) const SET_AUTHORISED_KEY: &str = "UPDATE partners SET authorised_key_hash = $1 WHERE id = $2";
    /// Installs secret `$2` for partner `$3`; the current one stays valid until `$1`.
    pub(crate) const ROTATE_PARTNER_SECRET: &str =
        "UPDATE partners SET previous_secret = secret, previous_secret_until = $1, secret = $2 WHERE id = $3";
    /// The master key's check value.
    pub(crate) const KEY_CHECK: &str = "SELECT mac FROM master_key_check WHERE id = 1";
    /// Forgets upstream callback `reqid`s seen before `$1`.
    pub(crate) const FORGET_UPSTREAM_REQIDS: &str = "DELETE FROM upstream_reqids WHERE seen_at < $1";
    /// Forgets the one upstream callback key `$1` (its callback was not acted on).
    pub(crate) const FORGET_UPSTREAM_REQID: &str = "DELETE FROM upstream_reqids WHERE reqid = $1";
    /// Records upstream callback `reqid` `$1` seen at `$2`; no row if it is known.
    pub(crate) const REMEMBER_UPSTREAM_REQID: &str =
        "INSERT INTO upstream_reqids (reqid, seen_at) VALUES ($1, $2) ON CONFLICT (reqid) DO NOTHING";
    /// Sets partner `$1`'s callback URL to `$2` at `$3`; affects no row if
    /// there is no such partner. (The `WHERE` also keeps SQLite from reading
    /// `ON CONFLICT` as part of the `SELECT`.)
    pub(crate) const SET_CALLBACK: &str = "INSERT INTO partner_callbacks (partner_id, url, updated_at) \
         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM partners WHERE id = $1) \
         ON CONFLICT (partner_id) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at";
    /// Partner `$1`'s callback URL.
    pub(crate) const CALLBACK_URL: &str = "SELECT url FROM partner_callbacks WHERE partner_id = $1";
    /// Partner `$1`'s callback signing secrets.
    pub(crate) const CALLBACK_SECRETS: &str = "SELECT secret, previous_secret, previous_secret_until \
         FROM partner_callback_secrets WHERE partner_id = $1";
    /// Gives partner `$1` callback secret `$2` at `$3` unless it has one.
    pub(crate) const FIRST_CALLBACK_SECRET: &str = "INSERT INTO partner_callback_secrets (partner_id, secret, \
         updated_at) VALUES ($1, $2, $3) ON CONFLICT (partner_id) DO NOTHING";
    /// Gives partner `$1` callback secret `$2` at `$3`; the one it replaces
    /// stays valid until `$4` (NULL: not at all). The casts tell PostgreSQL
    /// the type of a parameter that may be NULL.
    pub(crate) const REPLACE_CALLBACK_SECRET: &str = "INSERT INTO partner_callback_secrets (partner_id, secret, \
         updated_at) VALUES ($1, $2, $3) ON CONFLICT (partner_id) DO UPDATE SET \
         previous_secret = CASE WHEN CAST($4 AS BIGINT) IS NULL THEN NULL ELSE partner_callback_secrets.secret END, \
         previous_secret_until = CAST($4 AS BIGINT), secret = excluded.secret, updated_at = excluded.updated_at";

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::columns::assert_parameters_in_order;

        #[test]
        fn parameters_first_appear_in_order() {
            for sql in [
                FIND_PARTNER,
                PARTNER_EXISTS,
                LIST_PARTNERS,
                INSERT_PARTNER,
                SET_PARTNER_STATUS,
                SET_PARTNER_ACCESS,
                SET_AUTHORISED_KEY,
                ROTATE_PARTNER_SECRET,
                KEY_CHECK,
                FORGET_UPSTREAM_REQIDS,
                FORGET_UPSTREAM_REQID,
                REMEMBER_UPSTREAM_REQID,
                CALLBACK_URL,
                CALLBACK_SECRETS,
                SET_CALLBACK,
                FIRST_CALLBACK_SECRET,
                REPLACE_CALLBACK_SECRET,
            ] {
                assert_parameters_in_order(sql);
            }
        }
    }
}

/// How a partner may call: whether its requests need a token, and from
/// which addresses (an empty list: any).
#[derive(Debug, Clone)]
pub struct PartnerAccess {
    pub require_token: bool,
    pub allowlist: IpAllowlist,
}

/// A partner's new token secret; the current one stays valid until `previous_until`.
#[derive(Debug, Clone)]
pub struct SecretRotation {
    pub secret: SealedSecret,
    pub previous_until: Timestamp,
}

/// A token `reqid` the partner used at `now`; a use of it since `cutoff`
/// makes this one a replay.
#[derive(Debug, Clone, Copy)]
pub struct SeenReqid<'a> {
    pub partner: RegistrationId,
    pub reqid: &'a str,
    pub now: Timestamp,
    pub cutoff: Timestamp,
}

/// A callback signing secret to install for `partner` at `at`: only if it
/// has none, or, with `replace`, in place of its current one, which then
/// stays valid until `previous_until` (`None`: not at all).
#[derive(Debug, Clone)]
pub struct CallbackSecretInstall {
    pub partner: RegistrationId,
    pub secret: SealedSecret,
    pub replace: bool,
    pub previous_until: Option<Timestamp>,
    pub at: Timestamp,
}

/// Partners and their credentials: registration, status, token secrets, the master key check, token `reqid` replay windows, callback URLs and callback signing secrets.
#[async_trait]
pub trait PartnerStore: Send + Sync + 'static {
    /// The partner with this registration id.
    async fn find_partner(&self, id: RegistrationId) -> StoreResult<Option<Partner>>;
    /// The partner with this registration id for a partner call, recording
    /// the token `reqid` that `precheck` gives for it in the same round trip
    /// where the engine can (see [`super::lookup`]); SQLite records nothing.
    async fn find_partner_checked(
        &self,
        id: RegistrationId,
        precheck: super::lookup::Precheck<'_>,
    ) -> StoreResult<Option<(Partner, super::lookup::ReqidOutcome)>> {
        let _ = precheck;
        Ok(self.find_partner(id).await?.map(|partner| (partner, super::lookup::ReqidOutcome::NotRecorded)))
    }
    /// Adds a partner and returns it with its registration id.
    async fn insert_partner(&self, new: NewPartner) -> StoreResult<Partner>;
    /// Every partner, by registration id.
    async fn list_partners(&self) -> StoreResult<Vec<Partner>>;
    /// Suspends or reactivates; `false` if there is no such partner.
    async fn set_partner_status(&self, id: RegistrationId, status: PartnerStatus) -> StoreResult<bool>;
    /// Sets whether tokens are required and where the partner may call
    /// from; `false` if there is no such partner.
    async fn set_partner_access(&self, id: RegistrationId, access: PartnerAccess) -> StoreResult<bool>;
    /// Sets (or with `None` clears) the SHA-256 of the partner's
    /// `Authorisedkey`; `false` if there is no such partner.
    async fn set_authorised_key_hash(&self, id: RegistrationId, hash: Option<Vec<u8>>) -> StoreResult<bool>;
    /// Installs a new secret, keeping the current one valid until `previous_until`.
    async fn rotate_partner_secret(&self, id: RegistrationId, rotation: SecretRotation) -> StoreResult<bool>;
    /// The master key's check value, if the store has one yet.
    async fn key_check(&self) -> StoreResult<Option<Vec<u8>>>;
    /// Stores `mac` as the master key's check value if the store has none,
    /// atomically, and returns the value stored (`mac`, or the one another
    /// process stored first).
    async fn claim_key_check(&self, mac: &[u8], at: Timestamp) -> StoreResult<Vec<u8>>;
    /// Records a token `reqid`; `false` if the partner used it since `cutoff` (a replay).
    async fn remember_reqid(&self, seen: SeenReqid<'_>) -> StoreResult<bool>;
    /// Records the `reqid` of an upstream callback's token, durably, and
    /// forgets those seen before `cutoff`; `false` (nothing written) if it
    /// was seen since `cutoff` (a replay).
    async fn remember_upstream_reqid(&self, reqid: &str, now: Timestamp, cutoff: Timestamp) -> StoreResult<bool>;
    /// Forgets one key [`PartnerStore::remember_upstream_reqid`] recorded:
    /// the callback it stood for could not be acted on, and its retry must be.
    async fn forget_upstream_reqid(&self, reqid: &str) -> StoreResult<()>;
    /// Sets or clears the partner's callback URL; `false` if there is no such partner.
    async fn set_callback_url(&self, partner: RegistrationId, url: Option<String>, at: Timestamp) -> StoreResult<bool>;
    /// The partner's callback URL.
    async fn callback_url(&self, partner: RegistrationId) -> StoreResult<Option<String>>;
    /// The partner's callback signing secrets (kept when its URL is cleared).
    async fn callback_secrets(&self, partner: RegistrationId) -> StoreResult<Option<CallbackSecrets>>;
    /// Installs a callback secret for the partner. With `replace` false it
    /// is installed only if the partner has none; with `replace` true it
    /// replaces the current one, which stays valid until `previous_until`
    /// (`None`: not at all). `None` if there is no such partner, else
    /// whether it was installed.
    async fn install_callback_secret(&self, install: CallbackSecretInstall) -> StoreResult<Option<bool>>;
}
