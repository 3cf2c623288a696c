//! Operators: their accounts, personal API tokens and the append-only audit log.
//!
//! The SQL both engines share is in [`crate::store::operators::sql`].

use super::*;
use crate::domain::operator::{
    Actor, ApiToken, AuditEntry, AuditFilter, ConsoleSession, Email, NewAuditEntry, OperatorAccount,
};
use crate::store::operators::sql::*;
use crate::store::operators::{
    already_appended, audit_from_row, change_audit, operator_from_row, revoke_audit, session_and_operator,
    token_and_operator, token_from_row, NewOperator, OperatorStore,
};

/// Appends `entry` inside the caller's transaction; its id.
pub(super) fn append(conn: &Connection, entry: &NewAuditEntry) -> rusqlite::Result<i64> {
    conn.prepare_cached(APPEND_AUDIT)?
        .query_row(params![entry.at.unix(), entry.actor, entry.action, entry.target, entry.before, entry.after], |r| {
            r.get(0)
        })
}

#[async_trait]
impl OperatorStore for SqliteStore {
    async fn insert_operator(&self, new: NewOperator, audit: NewAuditEntry) -> StoreResult<Option<OperatorAccount>> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let params = params![new.email.as_str(), new.role.as_str(), new.password_hash, new.created_at.unix()];
            let added =
                optional_row(&tx, INSERT_OPERATOR, params, |row| operator_from_row(row)).map_err(store_error)?;
            if added.is_some() {
                append(&tx, &audit).map_err(store_error)?;
            }
            tx.commit().map_err(store_error)?;
            Ok(added)
        })
        .await
    }

    async fn find_operator(&self, email: &Email) -> StoreResult<Option<OperatorAccount>> {
        self.read(|conn| optional_row(conn, FIND_OPERATOR, [email.as_str()], |row| operator_from_row(row)))
    }

    async fn list_operators(&self) -> StoreResult<Vec<OperatorAccount>> {
        self.read(|conn| all_rows(conn, LIST_OPERATORS, [], |row| operator_from_row(row)))
    }

    async fn change_operator(&self, edit: OperatorEdit<'_>) -> StoreResult<Option<(OperatorAccount, OperatorAccount)>> {
        let OperatorEdit { email, change, at, actor } = edit;
        let (email, actor) = (email.clone(), actor.clone());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let found = optional_row(&tx, FIND_OPERATOR, [email.as_str()], |row| operator_from_row(row));
            let Some(before) = found.map_err(store_error)? else { return Ok(None) };
            let after = change.apply(&before, at);
            let params = params![after.role.as_str(), after.disabled, after.password_hash, at.unix(), after.id];
            tx.execute(UPDATE_OPERATOR, params).map_err(store_error)?;
            append(&tx, &change_audit(&change, &before, &after, &actor)).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(Some((before, after)))
        })
        .await
    }

    async fn insert_token(&self, token: ApiToken, audit: NewAuditEntry) -> StoreResult<()> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let params = params![
                token.id,
                token.operator_id,
                token.name,
                token.secret_hash,
                token.created_at.unix(),
                token.expires_at.map(Timestamp::unix)
            ];
            tx.execute(INSERT_TOKEN, params).map_err(store_error)?;
            append(&tx, &audit).map_err(store_error)?;
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn list_tokens(&self, operator_id: i64) -> StoreResult<Vec<ApiToken>> {
        self.read(|conn| all_rows(conn, LIST_TOKENS, [operator_id], |row| token_from_row(row)))
    }

    async fn revoke_token(&self, id: &str, at: Timestamp, actor: &Actor) -> StoreResult<Option<ApiToken>> {
        let (id, actor) = (id.to_owned(), actor.clone());
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let found = optional_row(&tx, FIND_TOKEN, [id.as_str()], |row| token_from_row(row));
            let Some(mut token) = found.map_err(store_error)? else { return Ok(None) };
            if token.revoked_at.is_none() {
                tx.execute(REVOKE_TOKEN, params![at.unix(), id]).map_err(store_error)?;
                token.revoked_at = Some(at);
                append(&tx, &revoke_audit(&token, at, &actor)).map_err(store_error)?;
            }
            tx.commit().map_err(store_error)?;
            Ok(Some(token))
        })
        .await
    }

    async fn token_with_operator(&self, id: &str) -> StoreResult<Option<(ApiToken, OperatorAccount)>> {
        self.read(|conn| optional_row(conn, TOKEN_WITH_OPERATOR, [id], |row| token_and_operator(row)))
    }

    async fn insert_console_session(&self, login: ConsoleLogin) -> StoreResult<()> {
        let ConsoleLogin { session, stale_before, audit } = login;
        self.write(move |conn| {
            let tx = immediate(conn)?;
            tx.execute(PRUNE_SESSIONS, [stale_before.unix()]).map_err(store_error)?;
            let params = params![session.id_hash, session.operator_id, session.created_at.unix()];
            tx.execute(INSERT_SESSION, params).map_err(store_error)?;
            append(&tx, &audit).map_err(store_error)?;
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn console_session(&self, id_hash: &[u8]) -> StoreResult<Option<(ConsoleSession, OperatorAccount)>> {
        self.read(|conn| optional_row(conn, SESSION_WITH_OPERATOR, [id_hash], |row| session_and_operator(row)))
    }

    async fn touch_console_session(&self, id_hash: &[u8], at: Timestamp) -> StoreResult<()> {
        let id_hash = id_hash.to_vec();
        self.write(move |conn| {
            conn.execute(TOUCH_SESSION, params![at.unix(), id_hash]).map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn end_console_session(&self, id_hash: &[u8], audit: Option<NewAuditEntry>) -> StoreResult<()> {
        let id_hash = id_hash.to_vec();
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let ended = tx.execute(DELETE_SESSION, [&id_hash]).map_err(store_error)?;
            if let (1, Some(audit)) = (ended, audit) {
                append(&tx, &audit).map_err(store_error)?;
            }
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<i64> {
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let id = append(&tx, &entry).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(id)
        })
        .await
    }

    async fn append_audit_once(&self, entry: NewAuditEntry, key: &'static str) -> StoreResult<bool> {
        // One writer at a time, in this process and any other: the check
        // and the append in one `IMMEDIATE` transaction are one step.
        self.write(move |conn| {
            let tx = immediate(conn)?;
            let kept: Vec<Option<String>> =
                all_rows(&tx, AUDIT_AFTERS, params![entry.target, entry.action], |row| row.get(0))
                    .map_err(store_error)?;
            if already_appended(&entry, key, &kept) {
                return Ok(false);
            }
            append(&tx, &entry).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(true)
        })
        .await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let params = params![
            filter.actor,
            filter.target,
            filter.from.map(Timestamp::unix),
            filter.to.map(Timestamp::unix),
            filter.before,
            filter.limit
        ];
        self.read(|conn| all_rows(conn, LIST_AUDIT, params, |row| audit_from_row(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::lifecycle::{at, ok, open, sqlite_tests};
    use super::*;

    sqlite_tests!(an_audit_entry_is_appended_once_by_callers_at_once);

    mod cases {
        use super::super::*;

        pub(super) async fn an_audit_entry_is_appended_once_by_callers_at_once(store: &Arc<SqliteStore>) {
            let outcome =
                crate::store::operators::conformance::an_audit_entry_is_appended_once_by_callers_at_once(&**store);
            outcome.await.unwrap_or_else(|e| panic!("{e:#}"));
        }
    }

    #[tokio::test]
    async fn the_audit_log_refuses_updates_and_deletes() {
        let (_dir, store) = open();
        let entry = NewAuditEntry::new(at(1), &Actor::Cli, "operator.add", "operator:a@b.in");
        ok(store.append_audit(entry).await);
        for sql in ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"] {
            let refused = store.write(move |conn| conn.execute(sql, []).map_err(store_error)).await;
            assert!(refused.is_err(), "{sql} was allowed");
        }
        assert_eq!(ok(store.list_audit(&AuditFilter { limit: 10, ..Default::default() }).await).len(), 1);
    }
}
