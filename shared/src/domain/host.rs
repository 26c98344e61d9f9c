//! Make API hosts: which ones exist, and which ones a token may be sent to.
//!
//! A connection names its organization's regional host (`eu1.make.com`). The token is only
//! ever sent to a host in the [`HostAllowlist`]: Make's public zones plus the White Label hosts
//! the operator configures. Anything that is not a plain host name — a scheme, a port, a path,
//! `user@host`, an IP literal — is refused before it gets near the allowlist.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

/// Make's public zones. White Label instances are added by configuration.
pub const MAKE_ZONES: [&str; 6] = [
    "eu1.make.com",
    "eu2.make.com",
    "us1.make.com",
    "us2.make.com",
    "eu1.make.celonis.com",
    "us1.make.celonis.com",
];

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum HostError {
    #[error("the Make host is empty — give the host name of your Make zone, e.g. eu1.make.com")]
    Empty,
    #[error("the Make host {0} includes a scheme — give the host name only, e.g. eu1.make.com instead of https://eu1.make.com")]
    Scheme(String),
    #[error("the Make host {0} includes a path, query or fragment — give the host name only, e.g. eu1.make.com")]
    Path(String),
    #[error("the Make host {0} includes user information (@) — give the host name only, e.g. eu1.make.com")]
    UserInfo(String),
    #[error("the Make host {0} includes a port — give the host name only, e.g. eu1.make.com")]
    Port(String),
    #[error("the Make host {0} is an IP address — give the host name of your Make zone, e.g. eu1.make.com")]
    IpLiteral(String),
    #[error("the Make host {0} is not a valid host name — give the host name of your Make zone, e.g. eu1.make.com")]
    Invalid(String),
    #[error("{0} is not a Make zone — use the host your organization lives on ({zones}), or ask the operator to add a White Label host to MAKESYNC_EXTRA_HOSTS", zones = MAKE_ZONES.join(", "))]
    NotAllowed(String),
}

/// A syntactically valid, normalised host name (lower case, no trailing dot).
///
/// Being a `MakeHost` says nothing about being allowed: [`HostAllowlist::admit`] checks that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MakeHost(String);

impl MakeHost {
    /// Normalises case and a trailing dot and checks that `raw` is a plain DNS host name.
    pub fn parse(raw: &str) -> Result<Self, HostError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(HostError::Empty);
        }
        let shown = crate::excerpt::excerpt(trimmed);
        if trimmed.contains("://") {
            return Err(HostError::Scheme(shown));
        }
        if trimmed.contains('@') {
            return Err(HostError::UserInfo(shown));
        }
        if trimmed.contains(['/', '?', '#', '\\']) {
            return Err(HostError::Path(shown));
        }
        let unbracketed = trimmed.trim_start_matches('[').trim_end_matches(']');
        if unbracketed.parse::<IpAddr>().is_ok() {
            return Err(HostError::IpLiteral(shown));
        }
        if trimmed.contains(':') {
            return Err(HostError::Port(shown));
        }
        let lower = trimmed.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if name.parse::<IpAddr>().is_ok() {
            return Err(HostError::IpLiteral(shown));
        }
        let labels: Vec<&str> = name.split('.').collect();
        let valid = name.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|label| is_dns_label(label))
            // A top-level label made of digits only is an IPv4 form like 127.1: not a host name.
            && !labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
        if !valid {
            return Err(HostError::Invalid(shown));
        }
        Ok(Self(name.to_string()))
    }

    /// Whether one token may be sent to both hosts: Make's public zones are one family (a
    /// token made on one may reach organizations on another, notes "Finding organizations");
    /// a White Label host — someone else's server — is a family of its own.
    pub fn same_family(&self, other: &MakeHost) -> bool {
        self == other || (self.is_make_zone() && other.is_make_zone())
    }

    /// One of Make's own public zones.
    pub fn is_make_zone(&self) -> bool {
        MAKE_ZONES.contains(&self.0.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl fmt::Display for MakeHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MakeHost {
    type Error = HostError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        MakeHost::parse(&value)
    }
}

impl From<MakeHost> for String {
    fn from(host: MakeHost) -> String {
        host.0
    }
}

/// The hosts a Make token may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAllowlist {
    hosts: BTreeSet<MakeHost>,
}

impl Default for HostAllowlist {
    fn default() -> Self {
        Self {
            hosts: MAKE_ZONES
                .iter()
                .map(|zone| MakeHost::parse(zone).expect("built-in zones are valid host names"))
                .collect(),
        }
    }
}

impl HostAllowlist {
    /// Make's public zones plus `extra` White Label hosts, each of which must be a plain host
    /// name itself.
    pub fn with_extra_hosts<'a>(
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, HostError> {
        let mut allowlist = Self::default();
        for raw in extra {
            allowlist.hosts.insert(MakeHost::parse(raw)?);
        }
        Ok(allowlist)
    }

    /// Parses `raw` and admits it only if it is on the list.
    pub fn admit(&self, raw: &str) -> Result<MakeHost, HostError> {
        let host = MakeHost::parse(raw)?;
        self.check(&host)?;
        Ok(host)
    }

    /// Refuses a host that is not on the list (a host read back from a store is checked again
    /// before a token is sent to it).
    pub fn check(&self, host: &MakeHost) -> Result<(), HostError> {
        if self.hosts.contains(host) {
            Ok(())
        } else {
            Err(HostError::NotAllowed(crate::excerpt::excerpt(
                host.as_str(),
            )))
        }
    }

    pub fn hosts(&self) -> impl Iterator<Item = &MakeHost> {
        self.hosts.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_every_public_zone_normalising_case_and_trailing_dot() {
        let allowlist = HostAllowlist::default();
        for zone in MAKE_ZONES {
            assert_eq!(allowlist.admit(zone).unwrap().as_str(), zone);
        }
        assert_eq!(
            allowlist.admit(" EU1.Make.COM. ").unwrap().as_str(),
            "eu1.make.com"
        );
    }

    #[test]
    fn refuses_anything_that_is_not_a_plain_host_name() {
        let allowlist = HostAllowlist::default();
        let cases = [
            ("", HostError::Empty),
            (
                "https://eu1.make.com",
                HostError::Scheme(crate::excerpt::excerpt("https://eu1.make.com")),
            ),
            (
                "eu1.make.com/api",
                HostError::Path(crate::excerpt::excerpt("eu1.make.com/api")),
            ),
            (
                "eu1.make.com?x=1",
                HostError::Path(crate::excerpt::excerpt("eu1.make.com?x=1")),
            ),
            (
                "me@eu1.make.com",
                HostError::UserInfo(crate::excerpt::excerpt("me@eu1.make.com")),
            ),
            (
                "eu1.make.com:443",
                HostError::Port(crate::excerpt::excerpt("eu1.make.com:443")),
            ),
            (
                "127.0.0.1",
                HostError::IpLiteral(crate::excerpt::excerpt("127.0.0.1")),
            ),
            (
                "[::1]",
                HostError::IpLiteral(crate::excerpt::excerpt("[::1]")),
            ),
            ("::1", HostError::IpLiteral(crate::excerpt::excerpt("::1"))),
            (
                "127.1",
                HostError::Invalid(crate::excerpt::excerpt("127.1")),
            ),
            (
                "localhost",
                HostError::Invalid(crate::excerpt::excerpt("localhost")),
            ),
            (
                "eu1..make.com",
                HostError::Invalid(crate::excerpt::excerpt("eu1..make.com")),
            ),
            (
                "eu1.make.com.evil.example",
                HostError::NotAllowed(crate::excerpt::excerpt("eu1.make.com.evil.example")),
            ),
            (
                "make.com",
                HostError::NotAllowed(crate::excerpt::excerpt("make.com")),
            ),
            (
                "eu3.make.com",
                HostError::NotAllowed(crate::excerpt::excerpt("eu3.make.com")),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(allowlist.admit(raw).unwrap_err(), expected, "input {raw:?}");
        }
    }

    #[test]
    fn make_s_zones_are_one_family_and_each_white_label_host_its_own() {
        let host = |h| MakeHost::parse(h).unwrap();
        assert!(host("eu1.make.com").same_family(&host("us2.make.com")));
        assert!(host("eu1.make.com").same_family(&host("eu1.make.celonis.com")));
        assert!(!host("eu1.make.com").same_family(&host("make.partner.example")));
        assert!(host("make.partner.example").same_family(&host("make.partner.example")));
        assert!(!host("make.partner.example").same_family(&host("make.other.example")));
    }

    #[test]
    fn extra_white_label_hosts_are_admitted_once_configured() {
        let allowlist = HostAllowlist::with_extra_hosts(["make.example-partner.com"]).unwrap();
        assert!(allowlist.admit("Make.Example-Partner.com").is_ok());
        assert!(HostAllowlist::default()
            .admit("make.example-partner.com")
            .is_err());
        assert!(HostAllowlist::with_extra_hosts(["https://x.example.com"]).is_err());
    }

    #[test]
    fn a_long_or_token_like_host_is_not_quoted_back() {
        let long = format!("{}.example", "x".repeat(16_000));
        let message = HostAllowlist::default()
            .admit(&long)
            .unwrap_err()
            .to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
        let token = "d3b07384-d113-4ec5-a0a7-1e3f8e6b5c0e";
        let message = HostAllowlist::default()
            .admit(token)
            .unwrap_err()
            .to_string();
        assert!(!message.contains(token), "{message}");
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let message = HostAllowlist::default()
            .admit("eu9.make.com")
            .unwrap_err()
            .to_string();
        assert!(message.contains("not a Make zone"), "{message}");
        assert!(message.contains("eu1.make.com"), "{message}");
        assert!(message.contains("MAKESYNC_EXTRA_HOSTS"), "{message}");
    }
}
