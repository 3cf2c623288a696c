//! Partners: who may call the API, from where, and with which secrets.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{RegistrationId, Timestamp};

/// Whether a partner may use the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerStatus {
    /// Requests are served.
    Active,
    /// Every request is refused with code 11.
    Suspended,
}

impl PartnerStatus {
    /// The name stored and shown by `partner list`.
    pub fn as_str(self) -> &'static str {
        match self {
            PartnerStatus::Active => "active",
            PartnerStatus::Suspended => "suspended",
        }
    }

    /// Reads a stored name back.
    pub fn from_stored(text: &str) -> Option<Self> {
        match text {
            "active" => Some(PartnerStatus::Active),
            "suspended" => Some(PartnerStatus::Suspended),
            _ => None,
        }
    }
}

/// The addresses a partner may call from. Empty means any address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowlist(Vec<IpNet>);

/// A CIDR that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or CIDR block")]
pub struct CidrError(pub String);

impl IpAllowlist {
    /// Parses CIDR blocks or bare addresses (a bare address is a /32 or /128).
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, CidrError> {
        let nets = items.into_iter().map(parse_net).collect::<Result<Vec<_>, _>>()?;
        Ok(IpAllowlist(nets))
    }

    /// A list of already-parsed blocks.
    pub fn from_nets(nets: Vec<IpNet>) -> Self {
        IpAllowlist(nets)
    }

    /// Reads back the comma-separated form the store keeps.
    pub fn from_stored(text: &str) -> Result<Self, CidrError> {
        Self::parse(text.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }

    /// The comma-separated form the store keeps.
    pub fn to_stored(&self) -> String {
        self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }

    /// Whether a caller at `addr` is allowed. IPv4-mapped IPv6 addresses are
    /// matched as the IPv4 address they carry.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.is_empty() || self.0.iter().any(|net| net.contains(&addr))
    }

    /// Whether the list is empty (any address allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the list keeps anyone out: it is not empty and holds no
    /// block of prefix length 0 (`0.0.0.0/0`, `::/0`), which lets in a
    /// whole address family and so counts as no list at all.
    pub fn restricts_callers(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|net| net.prefix_len() > 0)
    }
}

/// Strips the IPv4-in-IPv6 wrapping that dual-stack sockets put on peers.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

fn parse_net(text: &str) -> Result<IpNet, CidrError> {
    text.parse::<IpNet>().or_else(|_| text.parse::<IpAddr>().map(IpNet::from)).map_err(|_| CidrError(text.to_owned()))
}

/// A sealed (encrypted) secret as the store keeps it: nonce then ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub Vec<u8>);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(***)")
    }
}

/// A partner as the store holds it.
#[derive(Debug, Clone)]
pub struct Partner {
    /// `AOP-<n>`; `n` is also the store key.
    pub registration_id: RegistrationId,
    /// A name for operators.
    pub name: String,
    /// Active or suspended.
    pub status: PartnerStatus,
    /// Whether every request must carry a `Token` header.
    pub require_token: bool,
    /// Where requests may come from.
    pub allowlist: IpAllowlist,
    /// The token-signing secret, sealed under the master key.
    pub secret: SealedSecret,
    /// The secret before the last rotation, and until when it is still honoured.
    pub previous_secret: Option<(SealedSecret, Timestamp)>,
    /// SHA-256 of the partner's `Authorisedkey`, when one is configured.
    pub authorised_key_hash: Option<Vec<u8>>,
    /// When the partner was added.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn empty_allowlist_allows_everyone() {
        assert!(IpAllowlist::default().allows(ip("203.0.113.9")));
    }

    #[test]
    fn a_list_holding_a_whole_address_family_restricts_nobody() {
        let list = |items: &[&str]| IpAllowlist::parse(items.iter().copied()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!IpAllowlist::default().restricts_callers());
        assert!(!list(&["0.0.0.0/0"]).restricts_callers());
        assert!(!list(&["::/0"]).restricts_callers());
        assert!(!list(&["10.0.0.0/8", "0.0.0.0/0"]).restricts_callers());
        assert!(list(&["0.0.0.0/1"]).restricts_callers());
        assert!(list(&["127.0.0.0/8", "::1"]).restricts_callers());
    }

    #[test]
    fn cidr_and_bare_addresses_are_matched() {
        let list = IpAllowlist::parse(["10.1.0.0/16", "127.0.0.1", "::1"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(list.allows(ip("10.1.200.3")));
        assert!(list.allows(ip("127.0.0.1")));
        assert!(list.allows(ip("::ffff:127.0.0.1")));
        assert!(list.allows(ip("::1")));
        assert!(!list.allows(ip("10.2.0.1")));
        assert!(!list.allows(ip("127.0.0.2")));
    }

    #[test]
    fn stored_form_round_trips() {
        let list = IpAllowlist::parse(["10.1.0.0/16", "127.0.0.1"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(IpAllowlist::from_stored(&list.to_stored()), Ok(list));
        assert_eq!(IpAllowlist::parse(["nope"]), Err(CidrError("nope".into())));
    }
}
