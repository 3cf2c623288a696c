//! Who made a change to a transaction: the `source` of its history row.

/// Who made a state change (or created the record). The spelling from
/// [`ChangeSource::as_str`] is what the history rows keep and what the admin
/// API and the CLI show, so it never changes for an existing variant.
/// History read back from the store stays text
/// ([`HistoryEntry::source`](super::HistoryEntry::source)): rows written by
/// older versions (or by tests) may hold spellings no variant has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeSource {
    /// The partner's own call (a transfer, a bill payment, a refund claim).
    Partner,
    /// The bootstrap admin token (`PAYRAIL_ADMIN_TOKEN`), and every
    /// operator change made before operators had accounts.
    Admin,
    /// `payrail import` of a CSV file.
    Import,
    /// The demo data set.
    Demo,
    /// The upstream's answer to the submission itself.
    Provider,
    /// A status lookup that asked the upstream first.
    StatusSync,
    /// The background poller.
    Poller,
    /// A callback from the upstream.
    UpstreamCallback,
    /// The sandbox's operator endpoint (`/sandbox/v1/advance`).
    Sandbox,
    /// An operator with an account, through the admin API: stored as
    /// `operator:<email>` (this holds that whole spelling).
    Operator(std::sync::Arc<str>),
}

impl ChangeSource {
    /// The operator with this address: `operator:<email>`.
    pub fn operator(email: &str) -> ChangeSource {
        ChangeSource::Operator(format!("operator:{email}").into())
    }

    /// Who the audit log names for a change from this source, if it is an
    /// operator's: `bootstrap` for the bootstrap token, else the email.
    pub fn audit_actor(&self) -> Option<&str> {
        match self {
            ChangeSource::Admin => Some("bootstrap"),
            ChangeSource::Operator(spelling) => spelling.strip_prefix("operator:"),
            _ => None,
        }
    }

    /// Every source with a fixed spelling, in declaration order.
    pub const ALL: [ChangeSource; 9] = [
        ChangeSource::Partner,
        ChangeSource::Admin,
        ChangeSource::Import,
        ChangeSource::Demo,
        ChangeSource::Provider,
        ChangeSource::StatusSync,
        ChangeSource::Poller,
        ChangeSource::UpstreamCallback,
        ChangeSource::Sandbox,
    ];

    /// Whether the change is the upstream's word (an answer, a poll, a
    /// callback, the sandbox's), not a person's or an import's.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            ChangeSource::Provider
                | ChangeSource::StatusSync
                | ChangeSource::Poller
                | ChangeSource::UpstreamCallback
                | ChangeSource::Sandbox
        )
    }

    /// The name stored in history rows and shown on the wire and the CLI.
    pub fn as_str(&self) -> &str {
        match self {
            ChangeSource::Partner => "partner",
            ChangeSource::Admin => "admin",
            ChangeSource::Import => "import",
            ChangeSource::Demo => "demo",
            ChangeSource::Provider => "provider",
            ChangeSource::StatusSync => "status-sync",
            ChangeSource::Poller => "poller",
            ChangeSource::UpstreamCallback => "upstream-callback",
            ChangeSource::Sandbox => "sandbox",
            ChangeSource::Operator(spelling) => spelling,
        }
    }

    /// The source [`ChangeSource::as_str`] spells `text`, if any.
    pub fn parse(text: &str) -> Option<ChangeSource> {
        if let Some(email) = text.strip_prefix("operator:").filter(|e| !e.is_empty()) {
            return Some(ChangeSource::operator(email));
        }
        ChangeSource::ALL.into_iter().find(|source| source.as_str() == text)
    }
}

impl std::fmt::Display for ChangeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeSource;

    #[test]
    fn the_stored_spellings_are_those_of_earlier_versions() {
        let names: Vec<&str> = ChangeSource::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["partner", "admin", "import", "demo", "provider", "status-sync", "poller", "upstream-callback", "sandbox"]
        );
    }

    #[test]
    fn every_source_reads_back_from_its_name_and_nothing_else_does() {
        for source in ChangeSource::ALL {
            assert_eq!(ChangeSource::parse(source.as_str()), Some(source));
        }
        assert_eq!(ChangeSource::parse("upstream"), None);
        assert_eq!(ChangeSource::parse("Admin"), None);
        assert_eq!(ChangeSource::parse("operator:"), None);
        let asha = ChangeSource::operator("asha@example.in");
        assert_eq!(asha.as_str(), "operator:asha@example.in");
        assert_eq!(ChangeSource::parse(asha.as_str()), Some(asha.clone()));
        assert_eq!(asha.audit_actor(), Some("asha@example.in"));
        assert_eq!(ChangeSource::Admin.audit_actor(), Some("bootstrap"));
        assert_eq!(ChangeSource::Poller.audit_actor(), None);
    }
}
