//! How a refusal quotes what it refuses: a short prefix, escaped, and nothing at all of a value
//! that looks like a token. A token pasted into the wrong field (a host, an organization id, a
//! tenant) must not come back in an answer or land in a log line.

/// The most characters of an input a message quotes.
pub const EXCERPT_CHARS: usize = 24;

/// Below this length a value is quoted even if it is one unbroken run of token characters:
/// Make's tokens are 36 characters (a UUID), and `12a` or `eu1make` are worth showing.
const TOKEN_LIKE_MIN_CHARS: usize = 16;

/// `raw` as a message may quote it: at most [`EXCERPT_CHARS`] characters, in quotes, with
/// control characters escaped and `…` where it was cut; or, for a long unbroken run of
/// letters, digits, `-` and `_` (what an API token looks like), only its length.
pub fn excerpt(raw: &str) -> String {
    let count = raw.chars().count();
    if looks_like_a_token(raw.trim()) {
        return format!("(a value of {count} characters that looks like a token, not shown)");
    }
    let mut shown: String = raw.chars().take(EXCERPT_CHARS).collect();
    if count > EXCERPT_CHARS {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn looks_like_a_token(value: &str) -> bool {
    value.chars().count() >= TOKEN_LIKE_MIN_CHARS
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_and_escaped() {
        assert_eq!(excerpt("12a"), "\"12a\"");
        assert_eq!(excerpt("eu1.make.com/x"), "\"eu1.make.com/x\"");
        assert_eq!(excerpt("a\u{1b}[2Jb"), "\"a\\u{1b}[2Jb\"");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "https://".to_string() + &"x".repeat(16_000) + ".example";
        let shown = excerpt(&long);
        assert!(shown.chars().count() <= EXCERPT_CHARS + 3, "{shown}");
        assert!(shown.ends_with("…\""), "{shown}");
    }

    #[test]
    fn a_token_is_never_shown() {
        for token in [
            "d3b07384-d113-4ec5-a0a7-1e3f8e6b5c0e",
            "sim-token-users-and-orgs-0001",
            "sim-token-users-and-orgs",
            " 6f1c2e0a9b8d4c7e ",
        ] {
            let shown = excerpt(token);
            assert!(shown.contains("not shown"), "{shown}");
            assert!(!shown.contains(&token.trim()[..8]), "{shown}");
        }
    }

    proptest::proptest! {
        #[test]
        /// At most 24 characters of the input, each escaped to at most 10 (`\u{10ffff}`).
        fn no_excerpt_is_long(raw in ".{0,400}") {
            proptest::prop_assert!(excerpt(&raw).chars().count() <= EXCERPT_CHARS * 10 + 3);
        }
    }
}
