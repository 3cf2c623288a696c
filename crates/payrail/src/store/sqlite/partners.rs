//! Partners and their credentials: registration, status, token secrets, the master key check, token `reqid` replay windows, callback URLs and callback signing secrets.
//!
//! The SQL both engines share is in [`crate::store::partners::sql`]; the
//! recent token `reqid`s are in [`super::reqids`].

use super::*;
use crate::store::partners::callback_secrets_from_row;
use crate::store::partners::sql::*;
pub(super) use crate::store::partners::{partner_at, partner_from_row};
use crate::store::partners::{partner_columns as col, partner_list_p};

/// How many partner columns a joined row starts with: where its transaction starts.
pub(super) const PARTNER_WIDTH: usize = col::WIDTH;
/// The partner columns qualified for a join (`p.id, p.name, …`).
pub(super) const PARTNER_COLUMNS_P: &str = partner_list_p!();

/// The next free partner number above 1000. (SQLite's many-argument `MAX`
/// is PostgreSQL's `GREATEST`.)
const NEXT_PARTNER_NUMBER: &str = "SELECT MAX(COALESCE(MAX(id), 0), 1000) + 1 FROM partners";
/// Stores the master key's check value `$1` at `$2` unless there is one.
/// (PostgreSQL does this and the read back in one statement, a data-changing
/// `WITH` that SQLite does not have.)
const CLAIM_KEY_CHECK: &str =
    "INSERT INTO master_key_check (id, mac, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING";
/// Clears partner `$1`'s callback URL. (PostgreSQL clears it and cancels
/// the events in one data-changing `WITH`, which SQLite does not have.)
const CLEAR_CALLBACK: &str = "DELETE FROM partner_callbacks WHERE partner_id = $1";
/// Cancels the pending events of partner `$1` (its URL was cleared). A
/// lease is kept, so that an attempt in flight is still recorded.
const CANCEL_EVENTS: &str =
    "UPDATE partner_events SET state = 'cancelled', next_attempt_at = NULL WHERE partner_id = $1 AND state = 'pending'";

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn find_partner(&self, id: RegistrationId) -> StoreResult<Option<Partner>> {
        self.read(|conn| {
            conn.prepare_cached(FIND_PARTNER)?.query_row([id.number()], |row| partner_from_row(row)).optional()
        })
    }

    async fn insert_partner(&self, new: NewPartner) -> StoreResult<Partner> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let number = match new.number {
                Some(n) => n,
                None => tx.query_row(NEXT_PARTNER_NUMBER, [], |r| r.get(0)).map_err(store_error)?,
            };
            let partner = tx
                .query_row(
                    INSERT_PARTNER,
                    params![
                        number,
                        new.name,
                        new.require_token,
                        new.allowlist.to_stored(),
                        new.secret.0,
                        new.authorised_key_hash,
                        new.created_at.unix()
                    ],
                    |row| partner_from_row(row),
                )
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(partner)
        })
        .await
    }

    async fn list_partners(&self) -> StoreResult<Vec<Partner>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(LIST_PARTNERS)?;
            let rows = stmt.query_map([], |row| partner_from_row(row))?;
            rows.collect()
        })
    }

    async fn set_partner_status(&self, id: RegistrationId, status: PartnerStatus) -> StoreResult<bool> {
        self.write(move |conn| {
            conn.execute(SET_PARTNER_STATUS, params![status.as_str(), id.number()]).map(|n| n == 1).map_err(store_error)
        })
        .await
    }

    async fn set_partner_access(&self, id: RegistrationId, access: PartnerAccess) -> StoreResult<bool> {
        let PartnerAccess { require_token, allowlist } = access;
        self.write(move |conn| {
            conn.execute(SET_PARTNER_ACCESS, params![require_token, allowlist.to_stored(), id.number()])
                .map(|n| n == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn set_authorised_key_hash(&self, id: RegistrationId, hash: Option<Vec<u8>>) -> StoreResult<bool> {
        self.write(move |conn| {
            conn.execute(SET_AUTHORISED_KEY, params![hash, id.number()]).map(|n| n == 1).map_err(store_error)
        })
        .await
    }

    async fn rotate_partner_secret(&self, id: RegistrationId, rotation: SecretRotation) -> StoreResult<bool> {
        let SecretRotation { secret, previous_until } = rotation;
        self.write(move |conn| {
            conn.execute(ROTATE_PARTNER_SECRET, params![previous_until.unix(), secret.0, id.number()])
                .map(|n| n == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn key_check(&self) -> StoreResult<Option<Vec<u8>>> {
        self.read(|conn| conn.query_row(KEY_CHECK, [], |r| r.get(0)).optional())
    }

    async fn claim_key_check(&self, mac: &[u8], at: Timestamp) -> StoreResult<Vec<u8>> {
        let mac = mac.to_vec();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            tx.execute(CLAIM_KEY_CHECK, params![mac, at.unix()]).map_err(store_error)?;
            let stored = tx.query_row(KEY_CHECK, [], |r| r.get(0));
            let stored = stored.map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(stored)
        })
        .await
    }

    async fn remember_reqid(&self, seen: SeenReqid<'_>) -> StoreResult<bool> {
        let SeenReqid { partner, reqid, now, cutoff } = seen;
        self.reqids.remember(partner.number(), reqid, now.unix(), cutoff.unix())
    }

    async fn remember_upstream_reqid(&self, reqid: &str, now: Timestamp, cutoff: Timestamp) -> StoreResult<bool> {
        let reqid = reqid.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            tx.execute(FORGET_UPSTREAM_REQIDS, [cutoff.unix()]).map_err(store_error)?;
            let inserted = tx.execute(REMEMBER_UPSTREAM_REQID, params![reqid, now.unix()]).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn forget_upstream_reqid(&self, reqid: &str) -> StoreResult<()> {
        let reqid = reqid.to_owned();
        self.write(move |conn| conn.execute(FORGET_UPSTREAM_REQID, params![reqid]).map(|_| ()).map_err(store_error))
            .await
    }

    async fn set_callback_url(&self, partner: RegistrationId, url: Option<String>, at: Timestamp) -> StoreResult<bool> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            if !partner_exists(&tx, partner).map_err(store_error)? {
                return Ok(false);
            }
            let written = match &url {
                Some(url) => tx
                    .prepare_cached(SET_CALLBACK)
                    .and_then(|mut s| s.execute(params![partner.number(), url, at.unix()])),
                None => tx
                    .prepare_cached(CLEAR_CALLBACK)
                    .and_then(|mut s| s.execute([partner.number()]))
                    .and_then(|_| tx.prepare_cached(CANCEL_EVENTS))
                    .and_then(|mut s| s.execute([partner.number()])),
            };
            written.map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(true)
        })
        .await
    }

    async fn callback_url(&self, partner: RegistrationId) -> StoreResult<Option<String>> {
        self.read(|conn| conn.prepare_cached(CALLBACK_URL)?.query_row([partner.number()], |r| r.get(0)).optional())
    }

    async fn callback_secrets(&self, partner: RegistrationId) -> StoreResult<Option<CallbackSecrets>> {
        self.read(|conn| optional_row(conn, CALLBACK_SECRETS, [partner.number()], |row| callback_secrets_from_row(row)))
    }

    async fn install_callback_secret(&self, install: CallbackSecretInstall) -> StoreResult<Option<bool>> {
        let CallbackSecretInstall { partner, secret, replace, previous_until, at } = install;
        self.write(move |conn| {
            let tx = immediate(conn)?;
            if !partner_exists(&tx, partner).map_err(store_error)? {
                return Ok(None);
            }
            let until = previous_until.map(Timestamp::unix);
            let changed = if replace {
                tx.prepare_cached(REPLACE_CALLBACK_SECRET)
                    .and_then(|mut s| s.execute(params![partner.number(), secret.0, at.unix(), until]))
            } else {
                tx.prepare_cached(FIRST_CALLBACK_SECRET)
                    .and_then(|mut s| s.execute(params![partner.number(), secret.0, at.unix()]))
            };
            let changed = changed.map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(Some(changed == 1))
        })
        .await
    }
}
