//! Operators: their accounts, personal API tokens and the append-only audit log.
//!
//! The audit log has no update or delete path: the trait only appends and
//! lists, and each engine's schema refuses `UPDATE` and `DELETE` on the
//! table with a trigger. A change to an account or a token and its audit
//! entry commit together.

use super::columns::{columns, BadState, StoredRow};
use super::*;
use crate::domain::operator::{
    Actor, ApiToken, AuditEntry, AuditFilter, ConsoleSession, Email, NewAuditEntry, OperatorAccount, OperatorChange,
    Role,
};

columns! {
    /// The `operators` columns an [`OperatorAccount`] is read from, in order (both engines).
    pub(crate) mod operator_columns, list operator_list, qualified operator_list_o as "o" {
        id, email, role, password_hash, disabled, created_at, updated_at
    }
}
pub(crate) use operator_list;

columns! {
    /// The `operator_tokens` columns an [`ApiToken`] is read from, in order (both engines).
    pub(crate) mod token_columns, list token_list, qualified token_list_t as "t" {
        id, operator_id, name, secret_hash, created_at, expires_at, revoked_at
    }
}
pub(crate) use token_list;

columns! {
    /// The `audit_log` columns an [`AuditEntry`] is read from, in order (both engines).
    pub(crate) mod audit_columns, list audit_list {
        id, at, actor, action, target, before_json, after_json
    }
}

columns! {
    /// The `console_sessions` columns a [`ConsoleSession`] is read from, in order (both engines).
    pub(crate) mod session_columns, list session_list, qualified session_list_s as "s" {
        id_hash, operator_id, created_at, last_seen_at
    }
}

/// Reads a console session joined with its operator (session columns first), on either engine.
pub(crate) fn session_and_operator<R: StoredRow>(row: &R) -> Result<(ConsoleSession, OperatorAccount), R::Error> {
    use session_columns as c;
    let session = ConsoleSession {
        id_hash: row.bytes(c::id_hash)?,
        operator_id: row.int(c::operator_id)?,
        created_at: Timestamp::from_unix(row.int(c::created_at)?),
        last_seen_at: Timestamp::from_unix(row.int(c::last_seen_at)?),
    };
    Ok((session, operator_at(row, session_columns::WIDTH)?))
}

/// Reads the operator columns starting at column `base`, on either engine.
pub(crate) fn operator_at<R: StoredRow>(row: &R, base: usize) -> Result<OperatorAccount, R::Error> {
    use operator_columns as c;
    let email = |text: &str| Email::parse(text).map_err(|_| BadState(text.into()));
    let role = |text: &str| Role::parse(text).ok_or_else(|| BadState(text.into()));
    Ok(OperatorAccount {
        id: row.int(base + c::id)?,
        email: row.parsed(base + c::email, email)?,
        role: row.parsed(base + c::role, role)?,
        password_hash: row.text(base + c::password_hash)?,
        disabled: row.flag(base + c::disabled)?,
        created_at: Timestamp::from_unix(row.int(base + c::created_at)?),
        updated_at: Timestamp::from_unix(row.int(base + c::updated_at)?),
    })
}

/// Reads a row of the operator columns, on either engine.
pub(crate) fn operator_from_row<R: StoredRow>(row: &R) -> Result<OperatorAccount, R::Error> {
    operator_at(row, 0)
}

/// Reads a row of the token columns, on either engine.
pub(crate) fn token_from_row<R: StoredRow>(row: &R) -> Result<ApiToken, R::Error> {
    use token_columns as c;
    Ok(ApiToken {
        id: row.text(c::id)?,
        operator_id: row.int(c::operator_id)?,
        name: row.text(c::name)?,
        secret_hash: row.bytes(c::secret_hash)?,
        created_at: Timestamp::from_unix(row.int(c::created_at)?),
        expires_at: row.opt_int(c::expires_at)?.map(Timestamp::from_unix),
        revoked_at: row.opt_int(c::revoked_at)?.map(Timestamp::from_unix),
    })
}

/// Reads a token joined with its operator (token columns first), on either engine.
pub(crate) fn token_and_operator<R: StoredRow>(row: &R) -> Result<(ApiToken, OperatorAccount), R::Error> {
    Ok((token_from_row(row)?, operator_at(row, token_columns::WIDTH)?))
}

/// Reads a row of the audit columns, on either engine.
pub(crate) fn audit_from_row<R: StoredRow>(row: &R) -> Result<AuditEntry, R::Error> {
    use audit_columns as c;
    Ok(AuditEntry {
        id: row.int(c::id)?,
        entry: NewAuditEntry {
            at: Timestamp::from_unix(row.int(c::at)?),
            actor: row.text(c::actor)?,
            action: row.text(c::action)?,
            target: row.text(c::target)?,
            before: row.opt_text(c::before_json)?,
            after: row.opt_text(c::after_json)?,
        },
    })
}

/// The audit entry for `change` of the account `before` (now `after`):
/// the account's view before and after, but for a password (whose hash
/// the log never holds).
pub(crate) fn change_audit(
    change: &OperatorChange,
    before: &OperatorAccount,
    after: &OperatorAccount,
    actor: &Actor,
) -> NewAuditEntry {
    let entry = NewAuditEntry::new(after.updated_at, actor, change.action(), format!("operator:{}", after.email));
    match change {
        OperatorChange::SetPassword(_) => entry,
        _ => entry.changed(&before.audit_view(), &after.audit_view()),
    }
}

/// The audit entry for revoking `token`.
pub(crate) fn revoke_audit(token: &ApiToken, at: Timestamp, actor: &Actor) -> NewAuditEntry {
    NewAuditEntry::new(at, actor, "token.revoke", format!("token:{}", token.id))
        .changed(&serde_json::json!({ "revoked": false }), &serde_json::json!({ "revoked": true }))
}

/// An operator account to be added.
#[derive(Debug, Clone)]
pub struct NewOperator {
    /// Its address.
    pub email: Email,
    /// Its role.
    pub role: Role,
    /// The argon2id hash of its password.
    pub password_hash: String,
    /// When.
    pub created_at: Timestamp,
}

/// Whether one of the `after`s `kept` (of entries with `entry`'s action and
/// target) has the same value at `key` as `entry`'s: what
/// [`OperatorStore::append_audit_once`] decides on. An entry without the
/// key matches none.
pub(crate) fn already_appended(entry: &NewAuditEntry, key: &str, kept: &[Option<String>]) -> bool {
    let value_at = |after: Option<&str>| {
        after
            .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .and_then(|mut v| v.get_mut(key).map(serde_json::Value::take))
    };
    let Some(wanted) = value_at(entry.after.as_deref()) else { return false };
    kept.iter().any(|after| value_at(after.as_deref()).as_ref() == Some(&wanted))
}

/// The operators' SQL that both engines run as it is (parameters `$n`,
/// first appearing in order).
pub(crate) mod sql {
    /// Adds operator `$1` with role `$2`, hash `$3` at `$4`; no row if the address is taken.
    pub(crate) const INSERT_OPERATOR: &str = concat!(
        "INSERT INTO operators (email, role, password_hash, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, FALSE, $4, $4) ON CONFLICT DO NOTHING RETURNING ",
        operator_list!()
    );
    /// The operator with address `$1`.
    pub(crate) const FIND_OPERATOR: &str = concat!("SELECT ", operator_list!(), " FROM operators WHERE email = $1");
    /// Every operator, by address.
    pub(crate) const LIST_OPERATORS: &str = concat!("SELECT ", operator_list!(), " FROM operators ORDER BY email");
    /// Sets operator `$5`'s role `$1`, disabled flag `$2`, hash `$3` and time `$4`.
    pub(crate) const UPDATE_OPERATOR: &str =
        "UPDATE operators SET role = $1, disabled = $2, password_hash = $3, updated_at = $4 WHERE id = $5";
    /// Adds a token: id `$1`, operator `$2`, name `$3`, hash `$4`, made `$5`, expiring `$6`.
    pub(crate) const INSERT_TOKEN: &str = "INSERT INTO operator_tokens \
         (id, operator_id, name, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
    /// Operator `$1`'s tokens, newest first.
    pub(crate) const LIST_TOKENS: &str =
        concat!("SELECT ", token_list!(), " FROM operator_tokens WHERE operator_id = $1 ORDER BY created_at DESC, id");
    /// The token with id `$1`.
    pub(crate) const FIND_TOKEN: &str = concat!("SELECT ", token_list!(), " FROM operator_tokens WHERE id = $1");
    /// Revokes token `$2` at `$1` unless it is revoked already.
    pub(crate) const REVOKE_TOKEN: &str =
        "UPDATE operator_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
    /// The token with id `$1` and its operator.
    pub(crate) const TOKEN_WITH_OPERATOR: &str = concat!(
        "SELECT ",
        token_list_t!(),
        ", ",
        operator_list_o!(),
        " FROM operator_tokens t JOIN operators o ON o.id = t.operator_id WHERE t.id = $1"
    );
    /// Drops every console session last used before `$1`.
    pub(crate) const PRUNE_SESSIONS: &str = "DELETE FROM console_sessions WHERE last_seen_at < $1";
    /// Adds a console session: id hash `$1`, operator `$2`, made (and last used) at `$3`.
    pub(crate) const INSERT_SESSION: &str = "INSERT INTO console_sessions \
         (id_hash, operator_id, created_at, last_seen_at) VALUES ($1, $2, $3, $3)";
    /// The console session with id hash `$1` and its operator.
    pub(crate) const SESSION_WITH_OPERATOR: &str = concat!(
        "SELECT ",
        session_list_s!(),
        ", ",
        operator_list_o!(),
        " FROM console_sessions s JOIN operators o ON o.id = s.operator_id WHERE s.id_hash = $1"
    );
    /// Marks console session `$2` used at `$1`.
    pub(crate) const TOUCH_SESSION: &str = "UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2";
    /// Ends console session `$1`.
    pub(crate) const DELETE_SESSION: &str = "DELETE FROM console_sessions WHERE id_hash = $1";
    /// Appends an entry (`$1` time, `$2` actor, `$3` action, `$4` target, `$5`/`$6` before/after).
    pub(crate) const APPEND_AUDIT: &str = "INSERT INTO audit_log (at, actor, action, target, before_json, after_json) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
    /// The `after` of every entry of target `$1` and action `$2`.
    pub(crate) const AUDIT_AFTERS: &str = "SELECT after_json FROM audit_log WHERE target = $1 AND action = $2";
    /// Entries newest first, each filter applying when given: actor `$1`,
    /// target `$2`, from `$3`, to `$4`, ids below `$5`; at most `$6`. The
    /// casts tell PostgreSQL the type of a parameter that may be NULL.
    pub(crate) const LIST_AUDIT: &str = concat!(
        "SELECT ",
        audit_list!(),
        " FROM audit_log WHERE (CAST($1 AS TEXT) IS NULL OR actor = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR target = $2) \
         AND (CAST($3 AS BIGINT) IS NULL OR at >= $3) \
         AND (CAST($4 AS BIGINT) IS NULL OR at < $4) \
         AND (CAST($5 AS BIGINT) IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6"
    );

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::columns::assert_parameters_in_order;

        #[test]
        fn parameters_first_appear_in_order() {
            for sql in [
                INSERT_OPERATOR,
                FIND_OPERATOR,
                LIST_OPERATORS,
                UPDATE_OPERATOR,
                INSERT_TOKEN,
                LIST_TOKENS,
                FIND_TOKEN,
                REVOKE_TOKEN,
                TOKEN_WITH_OPERATOR,
                APPEND_AUDIT,
                AUDIT_AFTERS,
                LIST_AUDIT,
                PRUNE_SESSIONS,
                INSERT_SESSION,
                SESSION_WITH_OPERATOR,
                TOUCH_SESSION,
                DELETE_SESSION,
            ] {
                assert_parameters_in_order(sql);
            }
        }
    }
}

/// A change to the operator `email`, made at `at` by `actor`.
#[derive(Debug, Clone)]
pub struct OperatorEdit<'a> {
    pub email: &'a Email,
    pub change: OperatorChange,
    pub at: Timestamp,
    pub actor: &'a Actor,
}

/// An operator's console login: the session it opens, its audit entry,
/// and the time before which sessions last used are dropped as idle.
#[derive(Debug, Clone)]
pub struct ConsoleLogin {
    pub session: ConsoleSession,
    pub stale_before: Timestamp,
    pub audit: NewAuditEntry,
}

/// Operators: their accounts, personal API tokens and the append-only audit log.
#[async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    /// Adds an operator and appends `audit`, together; `None` (and nothing
    /// written) if the address is taken.
    async fn insert_operator(&self, new: NewOperator, audit: NewAuditEntry) -> StoreResult<Option<OperatorAccount>>;
    /// The operator with this address.
    async fn find_operator(&self, email: &Email) -> StoreResult<Option<OperatorAccount>>;
    /// Every operator, by address.
    async fn list_operators(&self) -> StoreResult<Vec<OperatorAccount>>;
    /// Changes an operator at `at` and appends the audit entry `actor`
    /// made it with, together; the account before and after, or `None` if
    /// there is no such operator.
    async fn change_operator(&self, edit: OperatorEdit<'_>) -> StoreResult<Option<(OperatorAccount, OperatorAccount)>>;
    /// Adds a token and appends `audit`, together.
    async fn insert_token(&self, token: ApiToken, audit: NewAuditEntry) -> StoreResult<()>;
    /// An operator's tokens, newest first.
    async fn list_tokens(&self, operator_id: i64) -> StoreResult<Vec<ApiToken>>;
    /// Revokes a token at `at` (audited as `actor`'s, together); the token
    /// as it now is, or `None` if there is no such token. Revoking a
    /// revoked token changes nothing.
    async fn revoke_token(&self, id: &str, at: Timestamp, actor: &Actor) -> StoreResult<Option<ApiToken>>;
    /// The token with this public id and its operator, read together on
    /// every request (nothing is cached: a disabled operator or a revoked
    /// token stops working at once).
    async fn token_with_operator(&self, id: &str) -> StoreResult<Option<(ApiToken, OperatorAccount)>>;
    /// Adds the login's session and appends its audit entry, together;
    /// first drops every session last used before its `stale_before`.
    async fn insert_console_session(&self, login: ConsoleLogin) -> StoreResult<()>;
    /// The console session with this id hash and its operator, read
    /// together on every console request (nothing is cached).
    async fn console_session(&self, id_hash: &[u8]) -> StoreResult<Option<(ConsoleSession, OperatorAccount)>>;
    /// Marks a console session used at `at`.
    async fn touch_console_session(&self, id_hash: &[u8], at: Timestamp) -> StoreResult<()>;
    /// Ends a console session, appending `audit` (a logout) with it when given.
    async fn end_console_session(&self, id_hash: &[u8], audit: Option<NewAuditEntry>) -> StoreResult<()>;
    /// Appends an audit entry; its id.
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<i64>;
    /// Appends `entry` unless the log already holds an entry of its action
    /// and target whose `after` has the same value at `key` as the entry's
    /// own; whether it appended. The check and the append are one step: two
    /// callers at once append it once.
    async fn append_audit_once(&self, entry: NewAuditEntry, key: &'static str) -> StoreResult<bool>;
    /// Audit entries, newest first (see [`AuditFilter`]).
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;
}

/// Test bodies both engines' tests run with their own store.
#[cfg(test)]
pub(crate) mod conformance {
    use serde_json::json;

    use super::*;
    use crate::domain::operator::Actor;

    fn note(target: &str, differs: &str, file: &str) -> NewAuditEntry {
        NewAuditEntry::new(Timestamp::from_unix(1_800_000_000), &Actor::Cli, "reconcile.note", target)
            .changed(&json!({"status": "success"}), &json!({"differs": differs, "reason": format!("file {file}")}))
    }

    /// [`OperatorStore::append_audit_once`]: four callers at once with the
    /// same difference (from different files) append one entry; another
    /// difference, target or action appends its own; an entry without the
    /// key matches nothing.
    pub(crate) async fn an_audit_entry_is_appended_once_by_callers_at_once(store: &dyn Store) -> anyhow::Result<()> {
        let once = |entry| store.append_audit_once(entry, "differs");
        // Four reads at once first, so that a pooled engine has a connection
        // ready for each caller and their statements do interleave.
        let all = AuditFilter { limit: 1, ..Default::default() };
        let (a, b, c, d) = tokio::join!(
            store.list_audit(&all),
            store.list_audit(&all),
            store.list_audit(&all),
            store.list_audit(&all)
        );
        for read in [a, b, c, d] {
            read?;
        }
        let (a, b, c, d) = tokio::join!(
            once(note("dmt:1", "state", "a")),
            once(note("dmt:1", "state", "b")),
            once(note("dmt:1", "state", "c")),
            once(note("dmt:1", "state", "d")),
        );
        assert_eq!([a?, b?, c?, d?].iter().filter(|appended| **appended).count(), 1, "appended once");
        assert!(!once(note("dmt:1", "state", "e")).await?, "and not again later");
        assert!(once(note("dmt:1", "amount", "a")).await?, "another difference");
        assert!(once(note("dmt:2", "state", "a")).await?, "another target");
        let other = NewAuditEntry::new(Timestamp::from_unix(1_800_000_000), &Actor::Cli, "reconcile.other", "dmt:1")
            .changed(&json!({}), &json!({"differs": "state"}));
        assert!(once(other).await?, "another action");
        let keyless =
            || NewAuditEntry::new(Timestamp::from_unix(1_800_000_000), &Actor::Cli, "reconcile.note", "dmt:3");
        assert!(once(keyless()).await? && once(keyless()).await?, "no key: nothing to match");
        let on_first = AuditFilter { target: Some("dmt:1".into()), limit: 100, ..Default::default() };
        let actions: Vec<String> = store.list_audit(&on_first).await?.into_iter().map(|e| e.entry.action).collect();
        assert_eq!(actions, ["reconcile.other", "reconcile.note", "reconcile.note"], "newest first");
        Ok(())
    }
}
