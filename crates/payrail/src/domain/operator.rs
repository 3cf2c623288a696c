//! Operators: their accounts, roles and personal API tokens, who an action
//! is attributed to ([`Actor`]), and the audit log's entries.

use crate::domain::{BillPayment, DmtTransfer, Timestamp};

/// What an operator may do; each role may do everything the one before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything but secrets.
    Viewer,
    /// Also moves transactions, resolves held ones, redelivers events and
    /// tops up or withdraws wallets.
    Operator,
    /// Also manages partners, fee plans, callback URLs and secrets, and operators.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role [`Role::as_str`] spells `text`, if any.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an email address (name@domain, at most 254 characters, no spaces)")]
pub struct BadEmail;

/// An operator's email address, lower-cased: addresses that differ only in
/// case are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Checks and lower-cases `text` (surrounding spaces are dropped).
    pub fn parse(text: &str) -> Result<Email, BadEmail> {
        let text = text.trim();
        let (local, domain) = text.split_once('@').ok_or(BadEmail)?;
        let well_formed = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && text.len() <= 254
            && text.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\');
        well_formed.then(|| Email(text.to_ascii_lowercase())).ok_or(BadEmail)
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operator's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAccount {
    /// Its number.
    pub id: i64,
    /// Its address, unique whatever the case.
    pub email: Email,
    /// What it may do.
    pub role: Role,
    /// The argon2id hash of its password, in PHC string form.
    pub password_hash: String,
    /// A disabled operator's tokens and sessions stop working at once.
    pub disabled: bool,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl OperatorAccount {
    /// What the audit log records of the account (never its password hash).
    pub fn audit_view(&self) -> serde_json::Value {
        serde_json::json!({
            "email": self.email.as_str(),
            "role": self.role.as_str(),
            "disabled": self.disabled,
        })
    }
}

/// A change to an operator's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorChange {
    /// A new role.
    SetRole(Role),
    /// Disabled (`true`) or enabled again.
    SetDisabled(bool),
    /// A new password hash.
    SetPassword(String),
}

impl OperatorChange {
    /// The audit log's name for the change.
    pub fn action(&self) -> &'static str {
        match self {
            OperatorChange::SetRole(_) => "operator.set_role",
            OperatorChange::SetDisabled(true) => "operator.disable",
            OperatorChange::SetDisabled(false) => "operator.enable",
            OperatorChange::SetPassword(_) => "operator.reset_password",
        }
    }

    /// The account after the change.
    pub fn apply(&self, account: &OperatorAccount, at: Timestamp) -> OperatorAccount {
        let mut after = account.clone();
        match self {
            OperatorChange::SetRole(role) => after.role = *role,
            OperatorChange::SetDisabled(disabled) => after.disabled = *disabled,
            OperatorChange::SetPassword(hash) => after.password_hash = hash.clone(),
        }
        after.updated_at = at;
        after
    }
}

/// A personal API token as stored: only the SHA-256 of its secret part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its public id (16 hex digits), the first part of the token.
    pub id: String,
    /// Whose it is.
    pub operator_id: i64,
    /// A name for its owner's reference.
    pub name: String,
    /// SHA-256 of the token's secret part.
    pub secret_hash: Vec<u8>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl ApiToken {
    /// Whether it works at `now` (not revoked, not expired).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|until| now < until)
    }
}

/// The prefix every personal token starts with.
pub const TOKEN_PREFIX: &str = "prt_";

/// A personal token split into its public id and its secret part:
/// `prt_<16 hex id>_<64 hex secret>`.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

/// A web console session as stored: only the SHA-256 of its random id
/// (the cookie's value) is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 of the session id.
    pub id_hash: Vec<u8>,
    /// Whose it is.
    pub operator_id: i64,
    /// When the operator logged in.
    pub created_at: Timestamp,
    /// When it was last used: it ends after a time without requests.
    pub last_seen_at: Timestamp,
}

/// Who an action is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The bootstrap admin token (`PAYRAIL_ADMIN_TOKEN`).
    Bootstrap,
    /// Someone at the server's shell (`payrail operator …`).
    Cli,
    /// An operator with a personal token (or, later, a console session).
    Operator {
        /// The account's number.
        id: i64,
        /// Its address.
        email: Email,
        /// Its role.
        role: Role,
    },
}

impl Actor {
    /// How the audit log names it: `bootstrap`, `cli` or the operator's email.
    pub fn name(&self) -> &str {
        match self {
            Actor::Bootstrap => "bootstrap",
            Actor::Cli => "cli",
            Actor::Operator { email, .. } => email.as_str(),
        }
    }

    /// What it may do (the bootstrap token and the shell are admins).
    pub fn role(&self) -> Role {
        match self {
            Actor::Bootstrap | Actor::Cli => Role::Admin,
            Actor::Operator { role, .. } => *role,
        }
    }
}

/// What the audit log records of a transfer: its state and what an operator sets.
pub fn dmt_audit_view(t: &DmtTransfer) -> serde_json::Value {
    serde_json::json!({
        "status": t.status.name(),
        "utr": t.utr,
        "amount": t.amount.to_decimal_string(),
        "refund_txn_id": t.refund_txn_id,
    })
}

/// What the audit log records of a bill payment.
pub fn bill_audit_view(p: &BillPayment) -> serde_json::Value {
    serde_json::json!({
        "status": p.status.name(),
        "operator_id": p.operator_ref,
        "amount": p.amount.to_decimal_string(),
        "refund_txn_id": p.refund_txn_id,
    })
}

/// An audit log entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who ([`Actor::name`]).
    pub actor: String,
    /// What, as `noun.verb` (`dmt.transition`, `operator.disable`, …).
    pub action: String,
    /// What it was done to (`dmt:123`, `partner:AOP-1001`, `operator:a@b.in`).
    pub target: String,
    /// The target before, as JSON, where the action changed something.
    pub before: Option<String>,
    /// The target after, as JSON.
    pub after: Option<String>,
}

impl NewAuditEntry {
    /// An entry by `actor` at `at` with no before and after.
    pub fn new(at: Timestamp, actor: &Actor, action: &str, target: impl Into<String>) -> NewAuditEntry {
        NewAuditEntry {
            at,
            actor: actor.name().to_owned(),
            action: action.to_owned(),
            target: target.into(),
            before: None,
            after: None,
        }
    }

    /// With the target's state before and after.
    pub fn changed(mut self, before: &serde_json::Value, after: &serde_json::Value) -> NewAuditEntry {
        self.before = Some(before.to_string());
        self.after = Some(after.to_string());
        self
    }
}

/// An audit log entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its number: entries are numbered in the order they were appended.
    pub id: i64,
    /// The entry.
    pub entry: NewAuditEntry,
}

/// Which audit entries to list: newest first, below `before` (an id, the
/// paging cursor), at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only about this target.
    pub target: Option<String>,
    /// Only at or after this time.
    pub from: Option<Timestamp>,
    /// Only before this time.
    pub to: Option<Timestamp>,
    /// Only entries with ids below this one.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_one_account_whatever_the_case_and_must_look_like_addresses() {
        assert_eq!(Email::parse(" Asha@Example.IN ").map(|e| e.0), Ok("asha@example.in".into()));
        for bad in ["", "asha", "@example.in", "asha@", "a b@example.in", "a@b@c", "a\"b@c.in"] {
            assert_eq!(Email::parse(bad), Err(BadEmail), "{bad:?}");
        }
    }

    #[test]
    fn roles_are_ordered_and_read_back_from_their_names() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), None);
    }

    #[test]
    fn a_token_splits_into_its_id_and_secret_only_when_well_formed() {
        let token = format!("prt_{}_{}", "0123456789abcdef", "a".repeat(64));
        assert_eq!(split_token(&token), Some(("0123456789abcdef", "a".repeat(64).as_str())));
        assert_eq!(split_token(&token[..token.len() - 1]), None);
        assert_eq!(split_token(&token.replace("prt_", "xyz_")), None);
        assert_eq!(split_token("prt_0123456789abcdeg_"), None);
    }

    #[test]
    fn a_token_lives_until_it_expires_or_is_revoked() {
        let at = Timestamp::from_unix;
        let mut token = ApiToken {
            id: "0".into(),
            operator_id: 1,
            name: String::new(),
            secret_hash: vec![],
            created_at: at(0),
            expires_at: Some(at(100)),
            revoked_at: None,
        };
        assert!(token.is_live(at(99)));
        assert!(!token.is_live(at(100)));
        token.expires_at = None;
        assert!(token.is_live(at(1_000_000)));
        token.revoked_at = Some(at(5));
        assert!(!token.is_live(at(6)));
    }
}
