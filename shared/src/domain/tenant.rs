//! The tenant: the product's customer a connection belongs to. Every call that reaches a
//! connection names its tenant, and a connection is found only through it.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// The longest tenant id accepted.
pub const MAX_TENANT_ID_CHARS: usize = 128;

/// A tenant id as the product's backend gives it: 1 to 128 characters, none of them a control
/// character. Opaque to makesync: compared, stored and logged, never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TenantIdError {
    /// Not quoted: a tenant id is the caller's, and may be anything they pasted.
    #[error(
        "\"tenantId\" must be 1 to {MAX_TENANT_ID_CHARS} characters without control characters"
    )]
    Invalid,
}

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, TenantIdError> {
        let count = raw.chars().count();
        if count == 0 || count > MAX_TENANT_ID_CHARS || raw.chars().any(char::is_control) {
            return Err(TenantIdError::Invalid);
        }
        Ok(Self(raw.to_string()))
    }

    /// The owner of a connection stored before tenants were required (an item without a
    /// tenant). No caller can name it — [`parse`](Self::parse) refuses the empty id — so such
    /// a connection is reachable by no tenant, and the scheduler and worker leave it alone
    /// until an operator assigns its tenant (docs/api.md, "Tenants").
    pub fn unowned() -> Self {
        Self(String::new())
    }

    pub fn is_unowned(&self) -> bool {
        self.0.is_empty()
    }

    /// The tenant of the CLI's own store: one person's machine, one tenant.
    pub fn local() -> Self {
        Self("local".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read back from a store: an item without a tenant (or with an empty one) is unowned.
impl TryFrom<String> for TenantId {
    type Error = TenantIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.is_empty() {
            return Ok(TenantId::unowned());
        }
        TenantId::parse(&value)
    }
}

impl Default for TenantId {
    /// For items stored before tenants were required: see [`TenantId::unowned`].
    fn default() -> Self {
        TenantId::unowned()
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_id_is_short_and_printable_and_never_quoted_back() {
        assert!(TenantId::parse("tenant-7").is_ok());
        assert!(TenantId::parse("Acme GmbH / 42").is_ok());
        for bad in ["", "a\nb", &"x".repeat(129)] {
            let error = TenantId::parse(bad).unwrap_err().to_string();
            assert!(!error.contains(bad) || bad.is_empty(), "{error}");
        }
    }
}
