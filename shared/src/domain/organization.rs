//! The Make organization id a connection syncs.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrganizationId(u64);

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum OrganizationIdError {
    #[error("the organization ID {0} is not a number — use the numeric ID from the organization's URL in Make (after /organization/)")]
    NotNumeric(String),
    #[error("the organization ID must be a positive number — use the numeric ID from the organization's URL in Make (after /organization/)")]
    Zero,
}

impl OrganizationId {
    pub fn parse(raw: &str) -> Result<Self, OrganizationIdError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || !trimmed.chars().all(|c| c.is_ascii_digit()) {
            return Err(OrganizationIdError::NotNumeric(crate::excerpt::excerpt(
                raw,
            )));
        }
        let value: u64 = trimmed
            .parse()
            .map_err(|_| OrganizationIdError::NotNumeric(crate::excerpt::excerpt(raw)))?;
        Self::new(value)
    }

    pub fn new(value: u64) -> Result<Self, OrganizationIdError> {
        if value == 0 {
            return Err(OrganizationIdError::Zero);
        }
        Ok(Self(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for OrganizationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numeric_ids_only() {
        assert_eq!(OrganizationId::parse(" 123 ").unwrap().get(), 123);
        for raw in [
            "",
            "abc",
            "12a",
            "-5",
            "1.5",
            "１２３",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(
                    OrganizationId::parse(raw),
                    Err(OrganizationIdError::NotNumeric(_))
                ),
                "{raw:?}"
            );
        }
        assert_eq!(OrganizationId::parse("0"), Err(OrganizationIdError::Zero));
    }
}
