//! Partners and their credentials: registration, status, token secrets, the master key check, token `reqid` replay windows, callback URLs and callback signing secrets.

use super::*;

#[async_trait]
impl PartnerStore for PostgresStore {
    async fn find_partner(&self, id: RegistrationId) -> Result<Option<Partner>, StoreError> {
        let client = self.client().await?;
        let row = query_opt(&client, FIND_PARTNER, &[&id.number()], "Failed to find the partner").await?;
        decode(row, partner_from_row)
    }

    async fn insert_partner(&self, new: NewPartner) -> Result<Partner, StoreError> {
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

    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError> {
        let client = self.client().await?;
        let rows = query(&client, LIST_PARTNERS, &[], "Failed to list the partners").await?;
        let partners = rows.iter().map(partner_from_row).collect::<anyhow::Result<_>>();
        Ok(partners.context("Failed to read a partner")?)
    }

    async fn set_partner_status(&self, id: RegistrationId, status: PartnerStatus) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let sql = "UPDATE partners SET status = $1 WHERE id = $2";
        let params: [&(dyn ToSql + Sync); 2] = [&status.as_str(), &id.number()];
        Ok(execute(&client, sql, &params, "Failed to set the partner status").await? == 1)
    }

    async fn rotate_partner_secret(
        &self,
        id: RegistrationId,
        secret: SealedSecret,
        previous_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let sql = "UPDATE partners SET previous_secret = secret, previous_secret_until = $1, secret = $2 WHERE id = $3";
        let params: [&(dyn ToSql + Sync); 3] = [&previous_until.unix(), &secret.0, &id.number()];
        Ok(execute(&client, sql, &params, "Failed to rotate the partner secret").await? == 1)
    }

    async fn key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let sql = "SELECT mac FROM master_key_check WHERE id = 1";
        let row = query_opt(&client, sql, &[], "Failed to read the key check value").await?;
        row.map(|row| row.try_get(0)).transpose().store_context("Failed to read the key check value")
    }

    async fn claim_key_check(&self, mac: &[u8], at: Timestamp) -> Result<Vec<u8>, StoreError> {
        // One statement: the insert's row if it won, else the row already there.
        // (A claim racing another's uncommitted one finds neither and fails;
        // the command that made it can simply be run again.)
        let sql = "WITH claimed AS (INSERT INTO master_key_check (id, mac, created_at) VALUES (1, $1, $2) \
                   ON CONFLICT (id) DO NOTHING RETURNING mac) \
                   SELECT mac FROM claimed UNION ALL SELECT mac FROM master_key_check WHERE id = 1 LIMIT 1";
        let client = self.client().await?;
        let what = "Failed to store the key check value";
        let row = query_one(&client, sql, &[&mac, &at.unix()], what).await?;
        row.try_get(0).store_context(what)
    }

    async fn remember_reqid(
        &self,
        partner: RegistrationId,
        reqid: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> Result<bool, StoreError> {
        self.record_reqid(partner, reqid, now, cutoff).await
    }

    async fn remember_upstream_reqid(
        &self,
        reqid: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let what = "Failed to record the upstream callback reqid";
        execute(&client, "DELETE FROM upstream_reqids WHERE seen_at < $1", &[&cutoff.unix()], what).await?;
        // Committed with the server's own durability: a callback moves money.
        let sql = "INSERT INTO upstream_reqids (reqid, seen_at) VALUES ($1, $2) ON CONFLICT (reqid) DO NOTHING";
        Ok(execute(&client, sql, &[&reqid, &now.unix()], what).await? == 1)
    }

    async fn set_callback_url(
        &self,
        partner: RegistrationId,
        url: Option<String>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let what = "Failed to set the callback URL";
        let Some(url) = url else {
            let row = query_one(&client, CLEAR_CALLBACK, &[&partner.number()], what).await?;
            return row.try_get(0).store_context(what);
        };
        let params: [&(dyn ToSql + Sync); 3] = [&partner.number(), &url, &at.unix()];
        Ok(execute(&client, SET_CALLBACK, &params, what).await? == 1)
    }

    async fn callback_url(&self, partner: RegistrationId) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = query_opt(&client, CALLBACK_URL, &[&partner.number()], "Failed to read the callback URL").await?;
        row.map(|row| row.try_get(0)).transpose().store_context("Failed to read the callback URL")
    }

    async fn callback_secrets(&self, partner: RegistrationId) -> Result<Option<CallbackSecrets>, StoreError> {
        let client = self.client().await?;
        let what = "Failed to read the callback secrets";
        let row = query_opt(&client, CALLBACK_SECRETS, &[&partner.number()], what).await?;
        decode(row, |row| {
            let previous: Option<Vec<u8>> = row.try_get(1)?;
            let until: Option<i64> = row.try_get(2)?;
            Ok(CallbackSecrets {
                current: SealedSecret(row.try_get(0)?),
                previous: previous.zip(until).map(|(s, t)| (SealedSecret(s), Timestamp::from_unix(t))),
            })
        })
    }

    async fn install_callback_secret(
        &self,
        partner: RegistrationId,
        secret: SealedSecret,
        replace: bool,
        previous_until: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<Option<bool>, StoreError> {
        let client = self.client().await?;
        let what = "Failed to install the callback secret";
        let exists = query_opt(&client, "SELECT 1 FROM partners WHERE id = $1", &[&partner.number()], what).await?;
        if exists.is_none() {
            return Ok(None);
        }
        let until = previous_until.map(Timestamp::unix);
        let changed = if replace {
            let params: [&(dyn ToSql + Sync); 4] = [&partner.number(), &secret.0, &until, &at.unix()];
            execute(&client, REPLACE_CALLBACK_SECRET, &params, what).await?
        } else {
            let params: [&(dyn ToSql + Sync); 3] = [&partner.number(), &secret.0, &at.unix()];
            execute(&client, FIRST_CALLBACK_SECRET, &params, what).await?
        };
        Ok(Some(changed == 1))
    }
}
