//! Configuration read once at start-up from the environment, validated, passed down.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MAKESYNC_EXTRA_HOSTS` | White Label hosts allowed besides Make's zones (comma-separated) | none |
//! | `MAKESYNC_API_BASE_URL` | send every Make request here instead (simulator, tests); loopback addresses only | unset |
//! | `MAKESYNC_REQUESTS_PER_MINUTE` | an organization's budget when Make does not report `license.apiLimit`, and until it has answered | 60 |
//! | `MAKESYNC_BUDGET_PERCENT` | share of the organization's budget one sync may use | 50 |
//! | `MAKESYNC_PAGE_SIZE` | rows asked for per page | 10000 |
//! | `MAKESYNC_MAX_PAGES` | pages per list before the sync fails | 1000 |
//! | `MAKESYNC_MEMBER_LOOKUPS` | members one sync may look up one by one when the member list is cut | 100 |
//! | `MAKESYNC_MAX_RESPONSE_MB` | the largest Make response body read | 16 |
//! | `MAKESYNC_PAGE_CONCURRENCY` | pages of one list (or team lists) in flight at once, once the list's length is known (or remembered); what they hold is bounded in bytes, an eighth of a Lambda function's memory | 16 |
//! | `MAKESYNC_REQUEST_TIMEOUT_SECS` | one Make request | 20 |
//! | `MAKESYNC_RETRY_MAX_ATTEMPTS` | attempts per Make request, the first included | 5 |
//! | `MAKESYNC_RETRY_MAX_ELAPSED_SECS` | time one Make request may spend retrying | 90 |

use crate::host::{HostAllowlist, HostError};
use crate::make::{MakeApiConfig, API_BASE_URL_ENV};
use crate::memory_budget::{usable_memory, BYTES_PER_USER};
use std::time::Duration;
use thiserror::Error;
use url::Url;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{variable}: {source}")]
    Host {
        variable: &'static str,
        source: HostError,
    },
    #[error("{variable}={value} is not valid: {expected}")]
    Invalid {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Reads the Make client's configuration from the process environment.
pub fn make_api_config_from_env() -> Result<MakeApiConfig, ConfigError> {
    make_api_config_from(|name| std::env::var(name).ok())
}

/// Reads the Make client's configuration through `lookup` (the environment, or a map in tests).
pub fn make_api_config_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<MakeApiConfig, ConfigError> {
    let defaults = MakeApiConfig::default();
    let allowlist = extra_hosts_allowlist(&lookup("MAKESYNC_EXTRA_HOSTS").unwrap_or_default())?;
    let base_url_override = match lookup(API_BASE_URL_ENV).filter(|v| !v.trim().is_empty()) {
        Some(raw) => Some(parse_base_url(&raw)?),
        None => None,
    };
    let number = |variable: &'static str, default: u32, min: u32, max: u32| {
        bounded_number(lookup(variable), variable, default, min..=max)
    };
    let mut retry = defaults.retry.clone();
    retry.max_attempts = number("MAKESYNC_RETRY_MAX_ATTEMPTS", retry.max_attempts, 1, 20)?;
    retry.max_elapsed = Duration::from_secs(u64::from(number(
        "MAKESYNC_RETRY_MAX_ELAPSED_SECS",
        retry.max_elapsed.as_secs() as u32,
        0,
        3600,
    )?));
    Ok(MakeApiConfig {
        allowlist,
        base_url_override,
        request_timeout: Duration::from_secs(u64::from(number(
            "MAKESYNC_REQUEST_TIMEOUT_SECS",
            defaults.request_timeout.as_secs() as u32,
            1,
            300,
        )?)),
        connect_timeout: defaults.connect_timeout,
        retry,
        // At least 2: each page after the first starts on the last row of the page before.
        page_size: number("MAKESYNC_PAGE_SIZE", defaults.page_size, 2, 10_000)?,
        max_pages: number("MAKESYNC_MAX_PAGES", defaults.max_pages, 1, 1_000_000)?,
        max_list_rows: read_bounds(&lookup, &defaults).0,
        max_read_bytes: read_bounds(&lookup, &defaults).1,
        member_lookups: number(
            "MAKESYNC_MEMBER_LOOKUPS",
            defaults.member_lookups,
            0,
            1_000_000,
        )?,
        max_response_bytes: max_response_bytes(&lookup, &defaults)?,
        page_concurrency: number(
            "MAKESYNC_PAGE_CONCURRENCY",
            defaults.page_concurrency,
            1,
            16,
        )?,
        default_requests_per_minute: number(
            "MAKESYNC_REQUESTS_PER_MINUTE",
            defaults.default_requests_per_minute,
            2,
            100_000,
        )?,
        budget_percent: number("MAKESYNC_BUDGET_PERCENT", defaults.budget_percent, 1, 100)?,
    })
}

/// `MAKESYNC_MAX_RESPONSE_MB` in bytes. In a Lambda function (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`
/// set) it is at most an eighth of the function's memory: a body and the rows decoded from
/// it take about four times its size (`tests/tests/hostile_memory.rs`), and a batch's other
/// syncs share the process.
fn max_response_bytes(
    lookup: &impl Fn(&str) -> Option<String>,
    defaults: &MakeApiConfig,
) -> Result<u64, ConfigError> {
    const VARIABLE: &str = "MAKESYNC_MAX_RESPONSE_MB";
    let default_mb = (defaults.max_response_bytes / (1024 * 1024)) as u32;
    let mb = bounded_number(lookup(VARIABLE), VARIABLE, default_mb, 1..=4096)?;
    let memory_mb =
        lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.trim().parse::<u32>().ok());
    if let Some(memory_mb) = memory_mb {
        if mb.saturating_mul(8) > memory_mb {
            return Err(ConfigError::Invalid {
                variable: VARIABLE,
                value: mb.to_string(),
                expected: "at most an eighth of the function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE) — a response and what is decoded from it take several times its size; lower it or raise the function's MemorySize",
            });
        }
    }
    Ok(u64::from(mb) * 1024 * 1024)
}

/// The most rows one list may hold, and the most one client's lists may hold together (one
/// sync's). In a Lambda function they follow its memory, as the worker's memory budget does
/// ([`crate::memory_budget`]): the rows of the largest organization the usable memory holds
/// at [`BYTES_PER_USER`] a user (229,288 at 256 MB), and 60 % of the usable memory for the
/// lists (78 MB at 256 MB; such an organization's users and members take about 71 MB). In
/// the worker, the sync's share of the memory bounds the lists too. Outside Lambda, the
/// defaults.
fn read_bounds(lookup: &impl Fn(&str) -> Option<String>, defaults: &MakeApiConfig) -> (usize, u64) {
    let memory_mb =
        lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.trim().parse::<u64>().ok());
    match memory_mb {
        Some(memory_mb) => {
            let usable = usable_memory(memory_mb);
            (
                usize::try_from(usable / BYTES_PER_USER).unwrap_or(usize::MAX),
                usable / 5 * 3,
            )
        }
        None => (defaults.max_list_rows, defaults.max_read_bytes),
    }
}

/// Make's zones, and the White Label hosts an operator allows besides them (separated by
/// commas, spaces or lines).
fn extra_hosts_allowlist(extra: &str) -> Result<HostAllowlist, ConfigError> {
    HostAllowlist::with_extra_hosts(
        extra
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|h| !h.is_empty()),
    )
    .map_err(|source| ConfigError::Host {
        variable: "MAKESYNC_EXTRA_HOSTS",
        source,
    })
}

/// A setting's whole number within `range`, or `default` when it is unset or blank.
fn bounded_number(
    raw: Option<String>,
    variable: &'static str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    match raw.filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or(ConfigError::Invalid {
                variable,
                value: crate::excerpt::excerpt(&raw),
                expected: "a whole number in the documented range",
            }),
    }
}

/// The override must be a plain `http(s)://host[:port]` on this machine's loopback: it
/// replaces scheme and authority of every Make request, `Authorization` header included, so
/// an address elsewhere would carry every tenant's token away (possibly in cleartext).
fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |expected: &'static str| ConfigError::Invalid {
        variable: API_BASE_URL_ENV,
        value: crate::excerpt::excerpt(raw),
        expected,
    };
    const PLAIN: &str =
        "an http:// or https:// URL with a host and no path, e.g. http://127.0.0.1:8080";
    let url = Url::parse(raw.trim()).map_err(|_| invalid(PLAIN))?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && (url.path() == "/" || url.path().is_empty())
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return Err(invalid(PLAIN));
    }
    if !is_loopback(&url) {
        return Err(invalid(
            "a loopback address (127.0.0.0/8, [::1] or localhost): the override is for the simulator and tests on this machine, and every Make token would be sent to it — unset it to call Make",
        ));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<MakeApiConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        make_api_config_from(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_need_no_environment() {
        let config = config(&[]).unwrap();
        assert_eq!(config.base_url_override, None);
        assert_eq!(config.page_size, 10_000);
        assert_eq!(config.member_lookups, 100);
        assert_eq!(config.budget_percent, 50);
    }

    /// F4: in a Lambda function the response bound stays within its memory.
    #[test]
    fn the_response_bound_fits_the_function_s_memory() {
        let in_256 = |mb: &str| {
            config(&[
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
                ("MAKESYNC_MAX_RESPONSE_MB", mb),
            ])
        };
        assert_eq!(in_256("32").unwrap().max_response_bytes, 32 * 1024 * 1024);
        let error = in_256("64").unwrap_err().to_string();
        assert!(error.contains("MAKESYNC_MAX_RESPONSE_MB=64"), "{error}");
        assert!(config(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")]).is_ok());
        assert!(
            config(&[("MAKESYNC_MAX_RESPONSE_MB", "64")]).is_ok(),
            "no function: no bound"
        );
    }

    /// The pages read at once hold at most an eighth of a function's memory in bodies.
    #[test]
    fn the_pages_read_at_once_are_bounded_by_number_and_by_the_read_budget() {
        let pages = |vars: &[(&str, &str)]| config(vars).map(|c| c.page_concurrency);
        assert_eq!(pages(&[]), Ok(16));
        assert_eq!(
            pages(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")]),
            Ok(16),
            "what they hold is bounded in bytes, not by their number"
        );
        assert_eq!(pages(&[("MAKESYNC_PAGE_CONCURRENCY", "4")]), Ok(4));
        assert!(pages(&[("MAKESYNC_PAGE_CONCURRENCY", "0")]).is_err());
        assert!(pages(&[("MAKESYNC_PAGE_CONCURRENCY", "17")]).is_err());
    }

    /// In a Lambda function the lists' bounds follow its memory.
    #[test]
    fn the_lists_bounds_follow_the_function_s_memory() {
        let bounds = |vars: &[(&str, &str)]| {
            config(vars).map(|c| (c.max_list_rows, c.max_read_bytes / (1024 * 1024)))
        };
        assert_eq!(
            bounds(&[]),
            Ok((1_000_000, 512)),
            "no function: the defaults"
        );
        assert_eq!(
            bounds(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")]),
            Ok((229_288, 78))
        );
        assert_eq!(
            bounds(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")]),
            Ok((1_168_812, 401))
        );
    }

    #[test]
    fn extra_hosts_and_base_url_are_read_and_checked() {
        let config = config(&[
            (
                "MAKESYNC_EXTRA_HOSTS",
                "make.partner.example, make2.partner.example",
            ),
            ("MAKESYNC_API_BASE_URL", "http://127.0.0.1:8080"),
        ])
        .unwrap();
        assert!(config.allowlist.admit("make2.partner.example").is_ok());
        assert_eq!(
            config.base_url_override.unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
    }

    #[test]
    fn the_override_is_taken_only_for_loopback_addresses() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://[::1]:9000",
            "http://localhost:1234",
            "https://LOCALHOST",
        ] {
            let config = config(&[("MAKESYNC_API_BASE_URL", url)]);
            assert!(config.is_ok(), "{url}: {config:?}");
        }
        let refused = config(&[("MAKESYNC_API_BASE_URL", "http://192.168.1.20:8080")])
            .unwrap_err()
            .to_string();
        assert!(refused.contains("MAKESYNC_API_BASE_URL"), "{refused}");
        assert!(refused.contains("loopback"), "{refused}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for vars in [
            [("MAKESYNC_EXTRA_HOSTS", "https://x.example")],
            [("MAKESYNC_API_BASE_URL", "ftp://127.0.0.1")],
            [("MAKESYNC_API_BASE_URL", "http://127.0.0.1:8080/api")],
            [("MAKESYNC_API_BASE_URL", "https://collector.example:443")],
            [("MAKESYNC_API_BASE_URL", "http://10.0.0.8:8080")],
            [("MAKESYNC_API_BASE_URL", "http://localhost.example")],
            [("MAKESYNC_API_BASE_URL", "http://[::ffff:8.8.8.8]")],
            [("MAKESYNC_PAGE_SIZE", "lots")],
            [("MAKESYNC_BUDGET_PERCENT", "150")],
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.contains(vars[0].0), "{err}");
        }
    }
}
