//! Partners and their credentials: registration, status, token secrets, the master key check, token `reqid` replay windows, callback URLs and callback signing secrets.
//!
//! The SQL both engines share is in [`crate::store::partners::sql`].

use super::*;
use crate::store::partners::callback_secrets_from_row;
use crate::store::partners::partner_columns as col;
use crate::store::partners::sql::*;
pub(super) use crate::store::partners::{partner_at, partner_from_row};

/// How many partner columns a joined row starts with: where its transaction starts.
pub(super) const PARTNER_WIDTH: usize = col::WIDTH;

/// Stores the master key's check value `$1` at `$2` unless there is one,
/// and answers the value stored, in one statement: the insert's row if it
/// won, else the row already there. (A data-changing `WITH`, which SQLite
/// does not have.) A claim racing another's uncommitted one finds neither
/// and fails; the command that made it can simply be run again.
const CLAIM_KEY_CHECK: &str = "WITH claimed AS (INSERT INTO master_key_check (id, mac, created_at) \
     VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING RETURNING mac) \
     SELECT mac FROM claimed UNION ALL SELECT mac FROM master_key_check WHERE id = 1 LIMIT 1";

/// Clears partner `$1`'s callback URL and cancels its pending events (a
/// lease is kept, so that an attempt in flight is still recorded); answers
/// whether the partner exists. (A data-changing `WITH`, which SQLite does
/// not have.)
const CLEAR_CALLBACK: &str = "WITH cleared AS (DELETE FROM partner_callbacks WHERE partner_id = $1), \
     cancelled AS (UPDATE partner_events SET state = 'cancelled', next_attempt_at = NULL \
     WHERE partner_id = $1 AND state = 'pending') \
     SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1)";

/// The next free partner number above 1000. The table lock makes two
/// instances adding partners at once queue rather than pick the same number.
async fn next_partner_number(tx: &Transaction<'_>) -> StoreResult<i64> {
    tx.batch_execute("LOCK TABLE partners IN EXCLUSIVE MODE").await.store_context("Failed to lock the partners")?;
    let sql = "SELECT GREATEST(COALESCE(MAX(id), 0), 1000) + 1 FROM partners";
    let row = query_one(tx, sql, &[], "Failed to pick a partner number").await?;
    row.try_get(0).store_context("Failed to read the new partner number")
}

#[async_trait]
impl PartnerStore for PostgresStore {
    async fn find_partner(&self, id: RegistrationId) -> StoreResult<Option<Partner>> {
        let client = self.client().await?;
        let row = query_opt(&client, FIND_PARTNER, &[&id.number()], "Failed to find the partner").await?;
        decode(row, partner_from_row)
    }

    async fn find_partner_checked(
        &self,
        id: RegistrationId,
        precheck: crate::store::lookup::Precheck<'_>,
    ) -> StoreResult<Option<(Partner, crate::store::lookup::ReqidOutcome)>> {
        self.partner_checked(id, precheck).await
    }

    async fn insert_partner(&self, new: NewPartner) -> StoreResult<Partner> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin adding the partner")?;
        let number = match new.number {
            Some(number) => number,
            None => next_partner_number(&tx).await?,
        };
        let allow_ips = new.allowlist.to_stored();
        let created_at = new.created_at.unix();
        let params: [&(dyn ToSql + Sync); 7] =
            [&number, &new.name, &new.require_token, &allow_ips, &new.secret.0, &new.authorised_key_hash, &created_at];
        let row = query_one(&tx, INSERT_PARTNER, &params, "Failed to add the partner").await?;
        let partner = partner_from_row(&row).context("Failed to read the new partner")?;
        tx.commit().await.store_context("Failed to commit the new partner")?;
        Ok(partner)
    }

    async fn list_partners(&self) -> StoreResult<Vec<Partner>> {
        let client = self.client().await?;
        let rows = query(&client, LIST_PARTNERS, &[], "Failed to list the partners").await?;
        decode_all(&rows, partner_from_row, "Failed to read a partner")
    }

    async fn set_partner_status(&self, id: RegistrationId, status: PartnerStatus) -> StoreResult<bool> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&status.as_str(), &id.number()];
        Ok(execute(&client, SET_PARTNER_STATUS, &params, "Failed to set the partner status").await? == 1)
    }

    async fn set_partner_access(&self, id: RegistrationId, access: PartnerAccess) -> StoreResult<bool> {
        let PartnerAccess { require_token, allowlist } = access;
        let client = self.client().await?;
        let allow_ips = allowlist.to_stored();
        let params: [&(dyn ToSql + Sync); 3] = [&require_token, &allow_ips, &id.number()];
        Ok(execute(&client, SET_PARTNER_ACCESS, &params, "Failed to set the partner's access").await? == 1)
    }

    async fn set_authorised_key_hash(&self, id: RegistrationId, hash: Option<Vec<u8>>) -> StoreResult<bool> {
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 2] = [&hash, &id.number()];
        Ok(execute(&client, SET_AUTHORISED_KEY, &params, "Failed to set the partner's Authorisedkey").await? == 1)
    }

    async fn rotate_partner_secret(&self, id: RegistrationId, rotation: SecretRotation) -> StoreResult<bool> {
        let SecretRotation { secret, previous_until } = rotation;
        let client = self.client().await?;
        let params: [&(dyn ToSql + Sync); 3] = [&previous_until.unix(), &secret.0, &id.number()];
        Ok(execute(&client, ROTATE_PARTNER_SECRET, &params, "Failed to rotate the partner secret").await? == 1)
    }

    async fn key_check(&self) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = query_opt(&client, KEY_CHECK, &[], "Failed to read the key check value").await?;
        row.map(|row| row.try_get(0)).transpose().store_context("Failed to read the key check value")
    }

    async fn claim_key_check(&self, mac: &[u8], at: Timestamp) -> StoreResult<Vec<u8>> {
        let client = self.client().await?;
        let what = "Failed to store the key check value";
        let row = query_one(&client, CLAIM_KEY_CHECK, &[&mac, &at.unix()], what).await?;
        row.try_get(0).store_context(what)
    }

    async fn remember_reqid(&self, seen: SeenReqid<'_>) -> StoreResult<bool> {
        let SeenReqid { partner, reqid, now, cutoff } = seen;
        // On a lookup lane: a status lookup records its `reqid` (see `lookup.rs`).
        let client = self.lanes.client(&self.pool).await?;
        let params: [&(dyn ToSql + Sync); 4] = [&partner.number(), &reqid, &now.unix(), &cutoff.unix()];
        let sql = super::lookup::REMEMBER_REQID;
        let affected = execute(&*client, sql, &params, "Failed to record the token reqid").await?;
        self.prune_reqids_now_and_then(cutoff);
        Ok(affected == 1)
    }

    async fn remember_upstream_reqid(&self, reqid: &str, now: Timestamp, cutoff: Timestamp) -> StoreResult<bool> {
        let client = self.client().await?;
        let what = "Failed to record the upstream callback reqid";
        execute(&client, FORGET_UPSTREAM_REQIDS, &[&cutoff.unix()], what).await?;
        // Committed with the server's own durability: a callback moves money.
        Ok(execute(&client, REMEMBER_UPSTREAM_REQID, &[&reqid, &now.unix()], what).await? == 1)
    }

    async fn forget_upstream_reqid(&self, reqid: &str) -> StoreResult<()> {
        let client = self.client().await?;
        execute(&client, FORGET_UPSTREAM_REQID, &[&reqid], "Failed to forget an upstream callback key").await?;
        Ok(())
    }

    async fn set_callback_url(&self, partner: RegistrationId, url: Option<String>, at: Timestamp) -> StoreResult<bool> {
        let client = self.client().await?;
        let what = "Failed to set the callback URL";
        let Some(url) = url else {
            let row = query_one(&client, CLEAR_CALLBACK, &[&partner.number()], what).await?;
            return row.try_get(0).store_context(what);
        };
        let params: [&(dyn ToSql + Sync); 3] = [&partner.number(), &url, &at.unix()];
        Ok(execute(&client, SET_CALLBACK, &params, what).await? == 1)
    }

    async fn callback_url(&self, partner: RegistrationId) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let row = query_opt(&client, CALLBACK_URL, &[&partner.number()], "Failed to read the callback URL").await?;
        row.map(|row| row.try_get(0)).transpose().store_context("Failed to read the callback URL")
    }

    async fn callback_secrets(&self, partner: RegistrationId) -> StoreResult<Option<CallbackSecrets>> {
        let client = self.client().await?;
        let what = "Failed to read the callback secrets";
        let row = query_opt(&client, CALLBACK_SECRETS, &[&partner.number()], what).await?;
        decode(row, callback_secrets_from_row)
    }

    async fn install_callback_secret(&self, install: CallbackSecretInstall) -> StoreResult<Option<bool>> {
        let CallbackSecretInstall { partner, secret, replace, previous_until, at } = install;
        let client = self.client().await?;
        let what = "Failed to install the callback secret";
        let exists = query_opt(&client, PARTNER_EXISTS, &[&partner.number()], what).await?;
        if exists.is_none() {
            return Ok(None);
        }
        let until = previous_until.map(Timestamp::unix);
        let changed = if replace {
            let params: [&(dyn ToSql + Sync); 4] = [&partner.number(), &secret.0, &at.unix(), &until];
            execute(&client, REPLACE_CALLBACK_SECRET, &params, what).await?
        } else {
            let params: [&(dyn ToSql + Sync); 3] = [&partner.number(), &secret.0, &at.unix()];
            execute(&client, FIRST_CALLBACK_SECRET, &params, what).await?
        };
        Ok(Some(changed == 1))
    }
}

#[cfg(test)]
mod tests {
    //! These run against a real server: set `PAYRAIL_TEST_DATABASE_URL` to a
    //! role that may create databases. Each test gets a database of its own.

    use super::super::tests::new_partner;
    use super::*;
    use crate::store::postgres::test_db::postgres_tests;

    postgres_tests!(
        partners_are_numbered_above_1000_unless_a_number_is_given,
        a_reqid_is_a_replay_until_the_cutoff_passes_it
    );

    /// The bodies of the tests above, each run on a store of its own.
    mod cases {
        use super::*;

        pub(super) async fn partners_are_numbered_above_1000_unless_a_number_is_given(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            assert_eq!(store.insert_partner(new_partner(Some(554))).await?.registration_id.number(), 554);
            assert_eq!(store.insert_partner(new_partner(None)).await?.registration_id.number(), 1001);
            assert_eq!(store.insert_partner(new_partner(None)).await?.registration_id.number(), 1002);
            let found = store.find_partner(RegistrationId::new(554)).await?;
            assert!(found.is_some_and(|p| p.require_token && p.secret.0 == vec![1, 2, 3]));
            assert!(store.set_partner_status(RegistrationId::new(1001), PartnerStatus::Suspended).await?);
            assert!(!store.set_partner_status(RegistrationId::new(9), PartnerStatus::Suspended).await?);
            let until = Timestamp::from_unix(1_700_000_000);
            assert!(
                store
                    .rotate_partner_secret(
                        RegistrationId::new(554),
                        SecretRotation { secret: SealedSecret(vec![9]), previous_until: until }
                    )
                    .await?
            );
            let partners = store.list_partners().await?;
            let numbers: Vec<i64> = partners.iter().map(|p| p.registration_id.number()).collect();
            assert_eq!(numbers, vec![554, 1001, 1002]);
            assert_eq!(partners[1].status, PartnerStatus::Suspended);
            assert_eq!(partners[0].secret, SealedSecret(vec![9]));
            assert_eq!(partners[0].previous_secret, Some((SealedSecret(vec![1, 2, 3]), until)));
            Ok(())
        }

        pub(super) async fn a_reqid_is_a_replay_until_the_cutoff_passes_it(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            let partner = RegistrationId::new(554);
            let at = Timestamp::from_unix;
            let seen = |partner, now, cutoff| SeenReqid { partner, reqid: "q1", now: at(now), cutoff: at(cutoff) };
            assert!(store.remember_reqid(seen(partner, 1_000, 700)).await?);
            assert!(!store.remember_reqid(seen(partner, 1_100, 800)).await?);
            assert!(store.remember_reqid(seen(RegistrationId::new(555), 1_100, 800)).await?);
            assert!(store.remember_reqid(seen(partner, 2_000, 1_500)).await?);
            assert!(!store.remember_reqid(seen(partner, 2_001, 1_501)).await?);
            Ok(())
        }
    }
}
