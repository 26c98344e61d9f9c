//! Where the AWS resources are, read once per cold start from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MAKESYNC_CONNECTIONS_TABLE` | DynamoDB table of connections | `makesync-connections` |
//! | `MAKESYNC_CREDENTIALS_TABLE` | DynamoDB table of credentials (tokens shared by connections) | `makesync-credentials` |
//! | `MAKESYNC_USERS_TABLE` | DynamoDB table of users | `makesync-users` |
//! | `MAKESYNC_RUNS_TABLE` | DynamoDB table of sync runs | `makesync-sync-runs` |
//! | `MAKESYNC_QUEUE_URL` | SQS queue of sync requests (scheduler, connect) | required there |
//! | `MAKESYNC_EVENT_BUS` | EventBridge bus of change events (events function) | required there |
//! | `MAKESYNC_EVENT_DETAIL` | what user events carry: `full`, or `ids` (no name or email) | `full` |
//! | `MAKESYNC_SECRET_PREFIX` | Secrets Manager name prefix for tokens | `makesync/connections/` |
//! | `MAKESYNC_SECRETS_KMS_KEY` | KMS key (ARN or id) new token secrets are encrypted with | Secrets Manager's own key |
//! | `MAKESYNC_RUN_RETENTION_DAYS` | sync runs expire (TTL) after this many days | 90 |
//! | `MAKESYNC_REMOVED_USER_RETENTION_DAYS` | a user marked removed expires (TTL) this many days after its removal; 0 keeps it | 30 |
//! | `MAKESYNC_SECRET_CACHE_SECS` | a warm worker reuses a token this long | 300 |
//! | `MAKESYNC_PAUSE_AFTER_FAILURES` | failed runs in a row, the last refused for a reason only the customer can fix (auth, permission, not found), before a connection is paused (0: never) | 5 |
//! | `MAKESYNC_FAILING_STREAK_ALERT` | failed runs in a row, for any reason, from which each further failure counts on the `ConnectionsFailingLong` metric | 10 |
//! | `MAKESYNC_SYNC_LEASE_SECS` | how long a sync holds its connection when no deadline is known | 900 |
//! | `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` | set by Lambda: the worker's memory budget follows it | unset: no budget |
//! | `MAKESYNC_ASSUMED_USERS` | users a never-synced connection is assumed to have, for the budget | 20000 |

use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub connections_table: String,
    pub credentials_table: String,
    pub users_table: String,
    pub runs_table: String,
    pub queue_url: Option<String>,
    pub event_bus: Option<String>,
    pub event_detail: crate::domain::event::EventDetail,
    pub secret_prefix: String,
    /// The customer managed KMS key for token secrets, when the template's `KmsKeyArn` is set.
    pub secrets_kms_key: Option<String>,
    pub run_retention: Duration,
    /// Days a removed user is kept (0: for good).
    pub removed_user_retention_days: u32,
    pub secret_cache_ttl: Duration,
    pub pause_after_failures: u32,
    pub failing_streak_alert: u32,
    pub sync_lease: Duration,
    /// The function's memory in MB, when running in Lambda.
    pub function_memory_mb: Option<u32>,
    pub assumed_users: u32,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{0} is not set — it is required by this function (the SAM template sets it)")]
    Missing(&'static str),
    #[error("{variable}={value:?} is not valid: {expected}")]
    Invalid {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let text = |name: &str, default: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        let number =
            |variable: &'static str, default: u64, max: u64| match lookup(variable)
                .filter(|v| !v.trim().is_empty())
            {
                None => Ok(default),
                Some(raw) => raw.trim().parse::<u64>().ok().filter(|n| *n <= max).ok_or(
                    SettingsError::Invalid {
                        variable,
                        value: raw,
                        expected: "a whole number in the documented range",
                    },
                ),
            };
        let secret_prefix =
            checked_secret_prefix(text("MAKESYNC_SECRET_PREFIX", "makesync/connections/"))?;
        let retention_days = number("MAKESYNC_RUN_RETENTION_DAYS", 90, 3650)?;
        if retention_days == 0 {
            return Err(SettingsError::Invalid {
                variable: "MAKESYNC_RUN_RETENTION_DAYS",
                value: "0".into(),
                expected: "at least 1 day",
            });
        }
        let event_detail =
            event_detail(lookup("MAKESYNC_EVENT_DETAIL").filter(|v| !v.trim().is_empty()))?;
        Ok(Self {
            connections_table: text("MAKESYNC_CONNECTIONS_TABLE", "makesync-connections"),
            credentials_table: text("MAKESYNC_CREDENTIALS_TABLE", "makesync-credentials"),
            users_table: text("MAKESYNC_USERS_TABLE", "makesync-users"),
            runs_table: text("MAKESYNC_RUNS_TABLE", "makesync-sync-runs"),
            queue_url: lookup("MAKESYNC_QUEUE_URL").filter(|v| !v.trim().is_empty()),
            event_bus: lookup("MAKESYNC_EVENT_BUS").filter(|v| !v.trim().is_empty()),
            event_detail,
            secret_prefix,
            secrets_kms_key: lookup("MAKESYNC_SECRETS_KMS_KEY")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            run_retention: Duration::from_secs(retention_days * 24 * 3600),
            removed_user_retention_days: number(
                "MAKESYNC_REMOVED_USER_RETENTION_DAYS",
                u64::from(crate::user::DEFAULT_REMOVED_USER_RETENTION_DAYS),
                3650,
            )? as u32,
            secret_cache_ttl: Duration::from_secs(number("MAKESYNC_SECRET_CACHE_SECS", 300, 3600)?),
            pause_after_failures: number("MAKESYNC_PAUSE_AFTER_FAILURES", 5, 1000)? as u32,
            failing_streak_alert: number("MAKESYNC_FAILING_STREAK_ALERT", 10, 100_000)?.max(1)
                as u32,
            sync_lease: Duration::from_secs(
                number("MAKESYNC_SYNC_LEASE_SECS", 900, 12 * 3600)?.max(60),
            ),
            function_memory_mb: match lookup("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
                Some(_) => {
                    Some(number("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0, 10_240)?.max(128) as u32)
                }
                None => None,
            },
            assumed_users: number("MAKESYNC_ASSUMED_USERS", 20_000, 10_000_000)? as u32,
        })
    }

    /// The event bus, for the function that puts change events on it.
    pub fn require_event_bus(&self) -> Result<&str, SettingsError> {
        self.event_bus
            .as_deref()
            .ok_or(SettingsError::Missing("MAKESYNC_EVENT_BUS"))
    }

    /// The queue URL, for the functions that send to the queue.
    pub fn require_queue_url(&self) -> Result<&str, SettingsError> {
        self.queue_url
            .as_deref()
            .ok_or(SettingsError::Missing("MAKESYNC_QUEUE_URL"))
    }
}

/// The prefix of every secret's name: only characters Secrets Manager allows in a name.
fn checked_secret_prefix(prefix: String) -> Result<String, SettingsError> {
    let valid = prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
    if !valid {
        return Err(SettingsError::Invalid {
            variable: "MAKESYNC_SECRET_PREFIX",
            value: prefix,
            expected: "letters, digits and /_+=.@- only (Secrets Manager's name characters)",
        });
    }
    Ok(prefix)
}

/// What change events carry: `full` unless set.
fn event_detail(raw: Option<String>) -> Result<crate::domain::event::EventDetail, SettingsError> {
    match raw {
        None => Ok(crate::domain::event::EventDetail::Full),
        Some(raw) => crate::domain::event::EventDetail::parse(&raw).ok_or(SettingsError::Invalid {
            variable: "MAKESYNC_EVENT_DETAIL",
            value: raw,
            expected: "full or ids",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<AwsSettings, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AwsSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.users_table, "makesync-users");
        assert_eq!(defaults.pause_after_failures, 5);
        assert_eq!(
            defaults.require_queue_url().unwrap_err(),
            SettingsError::Missing("MAKESYNC_QUEUE_URL")
        );
        let custom = settings(&[
            ("MAKESYNC_USERS_TABLE", "u"),
            ("MAKESYNC_QUEUE_URL", "http://127.0.0.1:5000/123/q"),
            ("MAKESYNC_RUN_RETENTION_DAYS", "7"),
        ])
        .unwrap();
        assert_eq!(custom.users_table, "u");
        assert_eq!(custom.run_retention, Duration::from_secs(7 * 86400));
        assert!(custom.require_queue_url().is_ok());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for vars in [
            [("MAKESYNC_RUN_RETENTION_DAYS", "0")],
            [("MAKESYNC_PAUSE_AFTER_FAILURES", "many")],
            [("MAKESYNC_SECRET_PREFIX", "make sync/")],
            [("MAKESYNC_EVENT_DETAIL", "names")],
        ] {
            let err = settings(&vars).unwrap_err().to_string();
            assert!(err.contains(vars[0].0), "{err}");
        }
    }
}
