//! The Make API token, and the one function that scrubs it from text.
//!
//! [`ApiToken`] wraps a [`SecretString`], so `Debug` never shows it. The only way to read it is
//! [`ApiToken::expose`], which the Make client calls when it builds the `Authorization` header
//! and the secret adapters call when they store it.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use thiserror::Error;

/// Text put in place of a token wherever one would have appeared.
pub const REDACTED: &str = "[REDACTED]";

#[derive(Clone)]
pub struct ApiToken(SecretString);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the Make API token is empty — create a token with the scopes organizations:read and user:read and provide it")]
    Empty,
    #[error("the Make API token contains whitespace or control characters — copy it again without spaces or line breaks")]
    Malformed,
}

impl ApiToken {
    /// Accepts a token as a user would paste it: surrounding whitespace (a trailing newline
    /// from a file) is trimmed, anything else that could not go into an HTTP header is refused.
    pub fn parse(raw: &str) -> Result<Self, TokenError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TokenError::Empty);
        }
        if trimmed
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            return Err(TokenError::Malformed);
        }
        Ok(Self(SecretString::from(trimmed.to_string())))
    }

    /// The token itself. Call only where it has to leave the process: the `Authorization`
    /// header and the secret store.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Replaces every occurrence of this token in `text`.
    pub fn redact(&self, text: &str) -> String {
        redact(text, self.expose())
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({REDACTED})")
    }
}

/// Replaces every occurrence of `secret` in `text` with [`REDACTED`]. Used on any text that came
/// from outside (a Make error body, a store error) before it goes into an error or a log line.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    text.replace(secret, REDACTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_token() {
        let token = ApiToken::parse("abc-123-secret").unwrap();
        assert_eq!(format!("{token:?}"), "ApiToken([REDACTED])");
        assert_eq!(token.expose(), "abc-123-secret");
    }

    #[test]
    fn parse_trims_a_trailing_newline_and_refuses_inner_whitespace() {
        assert_eq!(ApiToken::parse(" tok\n").unwrap().expose(), "tok");
        assert_eq!(ApiToken::parse("  \n").unwrap_err(), TokenError::Empty);
        assert_eq!(ApiToken::parse("to k").unwrap_err(), TokenError::Malformed);
        assert_eq!(ApiToken::parse("tøk").unwrap_err(), TokenError::Malformed);
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        let token = ApiToken::parse("s3cr3t").unwrap();
        assert_eq!(
            token.redact("a s3cr3t b s3cr3t"),
            "a [REDACTED] b [REDACTED]"
        );
    }
}
