//! Partners and their credentials: registration, status, token secrets, the master key check, token `reqid` replay windows, callback URLs and callback signing secrets.

use super::*;

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn find_partner(&self, id: RegistrationId) -> Result<Option<Partner>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {PARTNER_COLUMNS} FROM partners WHERE id = ?1"))?
                .query_row([id.number()], partner_from_row)
                .optional()
        })
    }

    async fn insert_partner(&self, new: NewPartner) -> Result<Partner, StoreError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let number = match new.number {
                Some(n) => n,
                None => tx
                    .query_row("SELECT MAX(COALESCE(MAX(id), 0), 1000) + 1 FROM partners", [], |r| r.get(0))
                    .map_err(store_error)?,
            };
            tx.execute(
                "INSERT INTO partners (id, name, status, require_token, allow_ips, secret, authorised_key_hash, created_at) \
                 VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?6, ?7)",
                params![
                    number,
                    new.name,
                    new.require_token,
                    new.allowlist.to_stored(),
                    new.secret.0,
                    new.authorised_key_hash,
                    new.created_at.unix()
                ],
            )
            .map_err(store_error)?;
            let partner = tx
                .query_row(&format!("SELECT {PARTNER_COLUMNS} FROM partners WHERE id = ?1"), [number], partner_from_row)
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(partner)
        })
        .await
    }

    async fn list_partners(&self) -> Result<Vec<Partner>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {PARTNER_COLUMNS} FROM partners ORDER BY id"))?;
            let rows = stmt.query_map([], partner_from_row)?;
            rows.collect()
        })
    }

    async fn set_partner_status(&self, id: RegistrationId, status: PartnerStatus) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.execute("UPDATE partners SET status = ?1 WHERE id = ?2", params![status.as_str(), id.number()])
                .map(|n| n == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn rotate_partner_secret(
        &self,
        id: RegistrationId,
        secret: SealedSecret,
        previous_until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE partners SET previous_secret = secret, previous_secret_until = ?1, secret = ?2 WHERE id = ?3",
                params![previous_until.unix(), secret.0, id.number()],
            )
            .map(|n| n == 1)
            .map_err(store_error)
        })
        .await
    }

    async fn key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|conn| conn.query_row("SELECT mac FROM master_key_check WHERE id = 1", [], |r| r.get(0)).optional())
    }

    async fn claim_key_check(&self, mac: &[u8], at: Timestamp) -> Result<Vec<u8>, StoreError> {
        let mac = mac.to_vec();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            tx.execute(
                "INSERT INTO master_key_check (id, mac, created_at) VALUES (1, ?1, ?2) ON CONFLICT (id) DO NOTHING",
                params![mac, at.unix()],
            )
            .map_err(store_error)?;
            let stored = tx.query_row("SELECT mac FROM master_key_check WHERE id = 1", [], |r| r.get(0));
            let stored = stored.map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(stored)
        })
        .await
    }

    async fn remember_reqid(
        &self,
        partner: RegistrationId,
        reqid: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> Result<bool, StoreError> {
        self.reqids.remember(partner.number(), reqid, now.unix(), cutoff.unix())
    }

    async fn remember_upstream_reqid(
        &self,
        reqid: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> Result<bool, StoreError> {
        let reqid = reqid.to_owned();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            tx.execute("DELETE FROM upstream_reqids WHERE seen_at < ?1", [cutoff.unix()]).map_err(store_error)?;
            let inserted = tx
                .execute(
                    "INSERT INTO upstream_reqids (reqid, seen_at) VALUES (?1, ?2) ON CONFLICT (reqid) DO NOTHING",
                    params![reqid, now.unix()],
                )
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn set_callback_url(
        &self,
        partner: RegistrationId,
        url: Option<String>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            if !partner_exists(&tx, partner).map_err(store_error)? {
                return Ok(false);
            }
            let written = match &url {
                Some(url) => tx
                    .prepare_cached(
                        "INSERT INTO partner_callbacks (partner_id, url, updated_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (partner_id) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at",
                    )
                    .and_then(|mut s| s.execute(params![partner.number(), url, at.unix()])),
                None => tx
                    .prepare_cached("DELETE FROM partner_callbacks WHERE partner_id = ?1")
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

    async fn callback_url(&self, partner: RegistrationId) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT url FROM partner_callbacks WHERE partner_id = ?1")?
                .query_row([partner.number()], |r| r.get(0))
                .optional()
        })
    }

    async fn callback_secrets(&self, partner: RegistrationId) -> Result<Option<CallbackSecrets>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT secret, previous_secret, previous_secret_until FROM partner_callback_secrets \
                 WHERE partner_id = ?1",
            )?
            .query_row([partner.number()], |row| {
                let previous: Option<Vec<u8>> = row.get(1)?;
                let until: Option<i64> = row.get(2)?;
                Ok(CallbackSecrets {
                    current: SealedSecret(row.get(0)?),
                    previous: previous.zip(until).map(|(s, t)| (SealedSecret(s), Timestamp::from_unix(t))),
                })
            })
            .optional()
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
        self.write(move |conn| {
            let tx = immediate(conn)?;
            if !partner_exists(&tx, partner).map_err(store_error)? {
                return Ok(None);
            }
            let sql = if replace { REPLACE_CALLBACK_SECRET } else { FIRST_CALLBACK_SECRET };
            let until = previous_until.map(Timestamp::unix);
            let changed = tx
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(params![partner.number(), secret.0, until, at.unix()]))
                .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(Some(changed == 1))
        })
        .await
    }
}
