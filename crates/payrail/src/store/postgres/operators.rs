//! Operators: their accounts, personal API tokens and the append-only audit log.
//!
//! The SQL both engines share is in [`crate::store::operators::sql`].

use super::*;
use crate::domain::operator::{
    Actor, ApiToken, AuditEntry, AuditFilter, ConsoleSession, Email, NewAuditEntry, OperatorAccount,
};
use crate::store::operators::sql::*;
use crate::store::operators::{
    already_appended, audit_from_row, change_audit, operator_from_row, operator_list, revoke_audit,
    session_and_operator, token_and_operator, token_from_row, token_list, NewOperator, OperatorStore,
};

/// The operator with address `$1`, locked until the transaction ends.
const LOCK_OPERATOR: &str = concat!("SELECT ", operator_list!(), " FROM operators WHERE email = $1 FOR UPDATE");
/// The token with id `$1`, locked until the transaction ends.
const LOCK_TOKEN: &str = concat!("SELECT ", token_list!(), " FROM operator_tokens WHERE id = $1 FOR UPDATE");

/// Serialises [`OperatorStore::append_audit_once`] for action `$2` and
/// target `$3` until the transaction ends (`$1`: [`AUDIT_ONCE_LOCK_CLASS`]).
const LOCK_AUDIT_TARGET: &str =
    "SELECT pg_advisory_xact_lock($1, hashtext(CAST($2 AS TEXT) || ' ' || CAST($3 AS TEXT)))";

/// The advisory lock class of [`LOCK_AUDIT_TARGET`] (beside the per-mobile
/// classes of `store::remittance` and `store::kyc`).
const AUDIT_ONCE_LOCK_CLASS: i32 = 0x7072_0012;

/// Appends `entry` inside the caller's transaction; its id.
pub(super) async fn append(client: &impl GenericClient, entry: &NewAuditEntry) -> StoreResult<i64> {
    let at = entry.at.unix();
    let params: [&(dyn ToSql + Sync); 6] =
        [&at, &entry.actor, &entry.action, &entry.target, &entry.before, &entry.after];
    let what = "Failed to append to the audit log";
    query_one(client, APPEND_AUDIT, &params, what).await?.try_get(0).store_context(what)
}

#[async_trait]
impl OperatorStore for PostgresStore {
    async fn insert_operator(&self, new: NewOperator, audit: NewAuditEntry) -> StoreResult<Option<OperatorAccount>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin adding the operator")?;
        let created_at = new.created_at.unix();
        let params: [&(dyn ToSql + Sync); 4] =
            [&new.email.as_str(), &new.role.as_str(), &new.password_hash, &created_at];
        let row = query_opt(&tx, INSERT_OPERATOR, &params, "Failed to add the operator").await?;
        let added = decode(row, operator_from_row)?;
        if added.is_some() {
            append(&tx, &audit).await?;
        }
        tx.commit().await.store_context("Failed to commit the new operator")?;
        Ok(added)
    }

    async fn find_operator(&self, email: &Email) -> StoreResult<Option<OperatorAccount>> {
        let client = self.client().await?;
        let row = query_opt(&client, FIND_OPERATOR, &[&email.as_str()], "Failed to find the operator").await?;
        decode(row, operator_from_row)
    }

    async fn list_operators(&self) -> StoreResult<Vec<OperatorAccount>> {
        let client = self.client().await?;
        let rows = query(&client, LIST_OPERATORS, &[], "Failed to list the operators").await?;
        decode_all(&rows, operator_from_row, "Failed to read an operator")
    }

    async fn change_operator(&self, edit: OperatorEdit<'_>) -> StoreResult<Option<(OperatorAccount, OperatorAccount)>> {
        let OperatorEdit { email, change, at, actor } = edit;
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin changing the operator")?;
        let row = query_opt(&tx, LOCK_OPERATOR, &[&email.as_str()], "Failed to find the operator").await?;
        let Some(before) = decode(row, operator_from_row)? else { return Ok(None) };
        let after = change.apply(&before, at);
        let (role, updated) = (after.role.as_str(), at.unix());
        let params: [&(dyn ToSql + Sync); 5] = [&role, &after.disabled, &after.password_hash, &updated, &after.id];
        execute(&tx, UPDATE_OPERATOR, &params, "Failed to change the operator").await?;
        append(&tx, &change_audit(&change, &before, &after, actor)).await?;
        tx.commit().await.store_context("Failed to commit the operator change")?;
        Ok(Some((before, after)))
    }

    async fn insert_token(&self, token: ApiToken, audit: NewAuditEntry) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin adding the token")?;
        let (created, expires) = (token.created_at.unix(), token.expires_at.map(Timestamp::unix));
        let params: [&(dyn ToSql + Sync); 6] =
            [&token.id, &token.operator_id, &token.name, &token.secret_hash, &created, &expires];
        execute(&tx, INSERT_TOKEN, &params, "Failed to add the token").await?;
        append(&tx, &audit).await?;
        tx.commit().await.store_context("Failed to commit the new token")
    }

    async fn list_tokens(&self, operator_id: i64) -> StoreResult<Vec<ApiToken>> {
        let client = self.client().await?;
        let rows = query(&client, LIST_TOKENS, &[&operator_id], "Failed to list the tokens").await?;
        decode_all(&rows, token_from_row, "Failed to read a token")
    }

    async fn revoke_token(&self, id: &str, at: Timestamp, actor: &Actor) -> StoreResult<Option<ApiToken>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin revoking the token")?;
        let row = query_opt(&tx, LOCK_TOKEN, &[&id], "Failed to find the token").await?;
        let Some(mut token) = decode(row, token_from_row)? else { return Ok(None) };
        if token.revoked_at.is_none() {
            execute(&tx, REVOKE_TOKEN, &[&at.unix(), &id], "Failed to revoke the token").await?;
            token.revoked_at = Some(at);
            append(&tx, &revoke_audit(&token, at, actor)).await?;
        }
        tx.commit().await.store_context("Failed to commit the revocation")?;
        Ok(Some(token))
    }

    async fn token_with_operator(&self, id: &str) -> StoreResult<Option<(ApiToken, OperatorAccount)>> {
        let client = self.client().await?;
        let row = query_opt(&client, TOKEN_WITH_OPERATOR, &[&id], "Failed to find the token").await?;
        decode(row, token_and_operator)
    }

    async fn insert_console_session(&self, login: ConsoleLogin) -> StoreResult<()> {
        let ConsoleLogin { session, stale_before, audit } = login;
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin adding the session")?;
        execute(&tx, PRUNE_SESSIONS, &[&stale_before.unix()], "Failed to drop stale sessions").await?;
        let created = session.created_at.unix();
        let params: [&(dyn ToSql + Sync); 3] = [&session.id_hash, &session.operator_id, &created];
        execute(&tx, INSERT_SESSION, &params, "Failed to add the session").await?;
        append(&tx, &audit).await?;
        tx.commit().await.store_context("Failed to commit the new session")
    }

    async fn console_session(&self, id_hash: &[u8]) -> StoreResult<Option<(ConsoleSession, OperatorAccount)>> {
        let client = self.client().await?;
        let row = query_opt(&client, SESSION_WITH_OPERATOR, &[&id_hash], "Failed to find the session").await?;
        decode(row, session_and_operator)
    }

    async fn touch_console_session(&self, id_hash: &[u8], at: Timestamp) -> StoreResult<()> {
        let client = self.client().await?;
        execute(&client, TOUCH_SESSION, &[&at.unix(), &id_hash], "Failed to touch the session").await?;
        Ok(())
    }

    async fn end_console_session(&self, id_hash: &[u8], audit: Option<NewAuditEntry>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin ending the session")?;
        let ended = execute(&tx, DELETE_SESSION, &[&id_hash], "Failed to end the session").await?;
        if let (1, Some(audit)) = (ended, audit) {
            append(&tx, &audit).await?;
        }
        tx.commit().await.store_context("Failed to commit the session's end")
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<i64> {
        let client = self.client().await?;
        append(&client, &entry).await
    }

    async fn append_audit_once(&self, entry: NewAuditEntry, key: &'static str) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the audit entry")?;
        // Transactions run side by side here (SQLite's writer takes one at
        // a time): the lock makes the check and the append one step.
        let params: [&(dyn ToSql + Sync); 3] = [&AUDIT_ONCE_LOCK_CLASS, &entry.action, &entry.target];
        execute(&tx, LOCK_AUDIT_TARGET, &params, "Failed to lock the audit target").await?;
        let rows = query(&tx, AUDIT_AFTERS, &[&entry.target, &entry.action], "Failed to read the audit log").await?;
        let kept: Vec<Option<String>> = decode_all(&rows, |row| Ok(row.try_get(0)?), "Failed to read an audit entry")?;
        if already_appended(&entry, key, &kept) {
            return Ok(false);
        }
        append(&tx, &entry).await?;
        tx.commit().await.store_context("Failed to commit the audit entry")?;
        Ok(true)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let client = self.client().await?;
        let (from, to) = (filter.from.map(Timestamp::unix), filter.to.map(Timestamp::unix));
        let params: [&(dyn ToSql + Sync); 6] =
            [&filter.actor, &filter.target, &from, &to, &filter.before, &filter.limit];
        let rows = query(&client, LIST_AUDIT, &params, "Failed to list the audit log").await?;
        decode_all(&rows, audit_from_row, "Failed to read an audit entry")
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::TestDb;
    use super::*;
    use crate::store::postgres::test_db::postgres_tests;

    postgres_tests!(an_audit_entry_is_appended_once_by_callers_at_once);

    mod cases {
        use super::super::*;

        pub(super) async fn an_audit_entry_is_appended_once_by_callers_at_once(
            store: &PostgresStore,
        ) -> anyhow::Result<()> {
            crate::store::operators::conformance::an_audit_entry_is_appended_once_by_callers_at_once(store).await
        }
    }

    #[tokio::test]
    async fn the_audit_log_refuses_updates_deletes_and_truncation() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = PostgresStore::connect_with(db.config.clone()).await?;
        let entry = NewAuditEntry::new(Timestamp::from_unix(1), &Actor::Cli, "operator.add", "operator:a@b.in");
        store.append_audit(entry).await?;
        let client = store.client().await?;
        for sql in ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"] {
            let refused = client.batch_execute(sql).await;
            assert!(refused.is_err(), "{sql} was allowed");
        }
        assert_eq!(store.list_audit(&AuditFilter { limit: 10, ..Default::default() }).await?.len(), 1);
        drop(client);
        store.pool.close();
        db.finish().await
    }
}
