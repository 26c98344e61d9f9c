//! What the product's backend sends, parsed by hand and checked for shape (not yet against
//! Make): every action's fields, the limits a request is read within, and a refusal that says
//! what is wrong without ever quoting a token.

use super::ConnectError;
use crate::connection::ConnectionId;
use crate::credential::CredentialId;
use crate::organization::{OrganizationId, OrganizationIdError};
use crate::tenant::TenantId;
use crate::token::ApiToken;
use serde_json::Value;

pub use super::read::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, MAX_USERS_PAGE};

/// What the caller asked for, parsed and checked for shape (not yet against Make).
#[derive(Debug)]
pub enum ConnectCommand {
    Connect(ConnectInput),
    /// Sync now, outside the schedule.
    Sync {
        connection_id: ConnectionId,
        tenant_id: TenantId,
    },
    /// Check the stored token with Make and make a paused connection active again.
    Resume {
        connection_id: ConnectionId,
        tenant_id: TenantId,
    },
    /// One connection's state and its newest run.
    Status {
        connection_id: ConnectionId,
        tenant_id: TenantId,
    },
    /// The tenant's connections, a page at a time.
    List {
        tenant_id: TenantId,
        cursor: Option<ConnectionId>,
        limit: usize,
    },
    /// A connection's stored users, a page at a time.
    Users {
        connection_id: ConnectionId,
        tenant_id: TenantId,
        after: Option<u64>,
        limit: usize,
    },
    /// Remove the token and stop syncing; keep the users unless `purge`.
    Disconnect {
        connection_id: ConnectionId,
        tenant_id: TenantId,
        purge: bool,
    },
    /// Connect several organizations with one token: one credential, one secret.
    ConnectSeveral {
        tenant_id: TenantId,
        token: ApiToken,
        /// `(host as given, organization)`.
        organizations: Vec<(String, OrganizationId)>,
    },
    /// Disconnect every connection of a credential and delete its token.
    DisconnectCredential {
        credential_id: CredentialId,
        tenant_id: TenantId,
        purge: bool,
    },
    /// A new token for every connection of a credential.
    Rotate {
        tenant_id: TenantId,
        credential_id: CredentialId,
        token: ApiToken,
    },
    /// Follow a White Label instance: its organizations are discovered on every schedule.
    ConnectInstance {
        tenant_id: TenantId,
        host: String,
        token: ApiToken,
        auto_connect: bool,
    },
    /// List the organizations the token reaches (or, with `instance`, every organization of
    /// the White Label instance on the host); nothing is stored.
    Discover {
        tenant_id: TenantId,
        host: String,
        token: ApiToken,
        instance: bool,
    },
}

/// The most organizations one connect request takes.
pub const MAX_ORGANIZATIONS_PER_REQUEST: usize = 50;
/// The largest request connect reads, serialised. A connect request is a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The longest token accepted. Make's tokens are 36 characters.
pub const MAX_TOKEN_BYTES: usize = 512;
pub use crate::tenant::MAX_TENANT_ID_CHARS;

#[derive(Debug)]
pub struct ConnectInput {
    /// As given; checked against the allowlist by the service.
    pub host: String,
    pub organization_id: OrganizationId,
    pub token: ApiToken,
    pub tenant_id: TenantId,
    /// Given to update an existing connection of the tenant (a new token); a new
    /// connection's id is minted.
    pub connection_id: Option<ConnectionId>,
    /// Whether the token has `teams:read`, once Make said (not part of the request).
    pub teams_readable: Option<bool>,
}

const EXPECTED: &str = "expected {\"tenantId\", \"host\", \"organizationId\", \"token\", \"connectionId\"?}, {\"action\": \"sync\" | \"resume\" | \"status\", \"tenantId\", \"connectionId\"}, {\"action\": \"list\", \"tenantId\", \"cursor\"?, \"limit\"?}, {\"action\": \"users\", \"tenantId\", \"connectionId\", \"cursor\"?, \"limit\"?}, {\"action\": \"disconnect\", \"tenantId\", \"connectionId\", \"purge\"?} or {\"action\": \"discover\", \"tenantId\", \"host\", \"token\", \"instance\"?}";

impl ConnectCommand {
    /// Parses an invocation payload. Written by hand rather than derived so that no error
    /// message can ever quote the token's value.
    pub fn parse(payload: &Value) -> Result<Self, ConnectError> {
        let Some(fields) = payload.as_object() else {
            return Err(invalid(format!(
                "the request is not a JSON object — {EXPECTED}"
            )));
        };
        let size = payload.to_string().len();
        if size > MAX_REQUEST_BYTES {
            return Err(invalid(format!(
                "the request is {size} bytes; at most {MAX_REQUEST_BYTES} are read — {EXPECTED}"
            )));
        }
        let action = optional_string(payload, "action")?;
        let allowed = allowed_fields(action.as_deref())?;
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown field {} in the request — {EXPECTED}",
                crate::excerpt::excerpt(unknown)
            )));
        }
        refuse_a_token_in_another_field(payload)?;
        match action.as_deref() {
            Some("rotate") => Ok(ConnectCommand::Rotate {
                tenant_id: tenant_id(payload)?,
                credential_id: credential_id(payload)?,
                token: token(payload)?,
            }),
            Some("connect-instance") => Ok(ConnectCommand::ConnectInstance {
                tenant_id: tenant_id(payload)?,
                host: optional_string(payload, "host")?
                    .ok_or_else(|| missing("host", "the White Label instance's host"))?,
                token: token(payload)?,
                auto_connect: optional_bool(payload, "autoConnect")?,
            }),
            Some("discover") => Ok(ConnectCommand::Discover {
                tenant_id: tenant_id(payload)?,
                host: optional_string(payload, "host")?
                    .ok_or_else(|| missing("host", "the Make zone to ask, e.g. eu1.make.com"))?,
                token: token(payload)?,
                instance: optional_bool(payload, "instance")?,
            }),
            Some("sync") => Ok(ConnectCommand::Sync {
                connection_id: required_connection_id(payload)?,
                tenant_id: tenant_id(payload)?,
            }),
            Some("status" | "list" | "users") => parse_read(action.as_deref(), payload),
            Some("resume") => Ok(ConnectCommand::Resume {
                connection_id: required_connection_id(payload)?,
                tenant_id: tenant_id(payload)?,
            }),
            Some("disconnect") => parse_disconnect(payload),
            _ if payload.get("organizations").is_some() => parse_several(payload),
            _ => parse_connect(payload),
        }
    }
}

/// `status`, `list` and `users`: what the product reads.
fn parse_read(action: Option<&str>, payload: &Value) -> Result<ConnectCommand, ConnectError> {
    match action {
        Some("status") => Ok(ConnectCommand::Status {
            connection_id: required_connection_id(payload)?,
            tenant_id: tenant_id(payload)?,
        }),
        Some("list") => Ok(ConnectCommand::List {
            tenant_id: tenant_id(payload)?,
            cursor: optional_string(payload, "cursor")?
                .map(|c| ConnectionId::parse(&c))
                .transpose()
                .map_err(|_| invalid("\"cursor\" is not one a list page gave — give back the page's cursor as it was, or none for the first page".into()))?,
            limit: match payload.get("limit") {
                None | Some(Value::Null) => DEFAULT_LIST_LIMIT,
                Some(_) => page_limit(payload, MAX_LIST_LIMIT)?,
            },
        }),
        Some("users") => Ok(ConnectCommand::Users {
            connection_id: required_connection_id(payload)?,
            tenant_id: tenant_id(payload)?,
            after: optional_string(payload, "cursor")?
                .map(|c| c.parse::<u64>())
                .transpose()
                .map_err(|_| invalid("\"cursor\" is not one a users page gave — give back the page's cursor as it was, or none for the first page".into()))?,
            limit: match payload.get("limit") {
                None | Some(Value::Null) => MAX_USERS_PAGE,
                Some(_) => page_limit(payload, MAX_USERS_PAGE)?,
            },
        }),
        _ => parse_connect(payload),
    }
}

/// The fields an action takes; an unknown action is refused naming the ones there are.
fn allowed_fields(action: Option<&str>) -> Result<&'static [&'static str], ConnectError> {
    Ok(match action {
        None | Some("connect") => &[
            "action",
            "host",
            "organizationId",
            "token",
            "tenantId",
            "connectionId",
            "organizations",
        ],
        Some("rotate") => &["action", "tenantId", "credentialId", "token"],
        Some("connect-instance") => &["action", "tenantId", "host", "token", "autoConnect"],
        Some("sync") | Some("resume") | Some("status") => &["action", "connectionId", "tenantId"],
        Some("list") => &["action", "tenantId", "cursor", "limit"],
        Some("users") => &["action", "tenantId", "connectionId", "cursor", "limit"],
        Some("disconnect") => &[
            "action",
            "connectionId",
            "credentialId",
            "tenantId",
            "purge",
        ],
        Some("discover") => &["action", "tenantId", "host", "token", "instance"],
        Some(other) => {
            return Err(invalid(format!(
                "unknown action {} — use \"connect\", \"discover\", \"rotate\", \"connect-instance\", \"sync\", \"resume\", \"status\", \"list\", \"users\" or \"disconnect\"",
                crate::excerpt::excerpt(other)
            )))
        }
    })
}

/// `{"action": "disconnect", "tenantId", "connectionId" | "credentialId", "purge"?}`.
fn parse_disconnect(payload: &Value) -> Result<ConnectCommand, ConnectError> {
    let purge = optional_bool(payload, "purge")?;
    if payload.get("credentialId").is_none() {
        return Ok(ConnectCommand::Disconnect {
            connection_id: required_connection_id(payload)?,
            tenant_id: tenant_id(payload)?,
            purge,
        });
    }
    if payload.get("connectionId").is_some() {
        return Err(invalid(
            "give \"connectionId\" (one connection) or \"credentialId\" (all of a credential's), not both".into(),
        ));
    }
    Ok(ConnectCommand::DisconnectCredential {
        credential_id: credential_id(payload)?,
        tenant_id: tenant_id(payload)?,
        purge,
    })
}

/// `{"tenantId", "host", "organizationId", "token", "connectionId"?}`: one organization.
fn parse_connect(payload: &Value) -> Result<ConnectCommand, ConnectError> {
    let host = optional_string(payload, "host")?
        .ok_or_else(|| missing("host", "the Make zone, e.g. eu1.make.com"))?;
    let organization_id = organization_id(payload.get("organizationId"))?;
    let token = token(payload)?;
    let tenant_id = tenant_id(payload)?;
    let connection_id = optional_string(payload, "connectionId")?
        .map(|id| ConnectionId::parse(&id))
        .transpose()?;
    Ok(ConnectCommand::Connect(ConnectInput {
        host,
        organization_id,
        token,
        tenant_id,
        connection_id,
        teams_readable: None,
    }))
}

fn organization_id(value: Option<&Value>) -> Result<OrganizationId, ConnectError> {
    match value {
        Some(Value::String(s)) => Ok(OrganizationId::parse(s)?),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => Ok(OrganizationId::new(n)?),
            None => {
                Err(OrganizationIdError::NotNumeric(crate::excerpt::excerpt(&n.to_string())).into())
            }
        },
        None | Some(Value::Null) => Err(missing(
            "organizationId",
            "the number after /organization/ in the organization's URL",
        )),
        Some(_) => Err(invalid(
            "\"organizationId\" must be a number or a string of digits".into(),
        )),
    }
}

/// `{"tenantId", "token", "host"?, "organizations": [{"organizationId", "host"?}, …]}`: each
/// organization with the host discovery gave it (or the request's `host`).
fn parse_several(payload: &Value) -> Result<ConnectCommand, ConnectError> {
    if payload.get("organizationId").is_some() || payload.get("connectionId").is_some() {
        return Err(invalid(
            "give either \"organizations\" (several) or \"organizationId\" (one), not both; a credential's token is changed with {\"action\": \"rotate\"}".into(),
        ));
    }
    let default_host = optional_string(payload, "host")?;
    let Some(Value::Array(entries)) = payload.get("organizations") else {
        return Err(invalid(
            "\"organizations\" must be a list of {\"organizationId\", \"host\"}".into(),
        ));
    };
    if entries.is_empty() || entries.len() > MAX_ORGANIZATIONS_PER_REQUEST {
        return Err(invalid(format!(
            "\"organizations\" holds {} entries; give 1 to {MAX_ORGANIZATIONS_PER_REQUEST}",
            entries.len()
        )));
    }
    let mut organizations = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let Some(fields) = entry.as_object() else {
            return Err(invalid(format!(
                "organizations[{index}] must be an object {{\"organizationId\", \"host\"}}"
            )));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !["organizationId", "id", "host"].contains(&k.as_str()))
        {
            return Err(invalid(format!(
                "unknown field {} in organizations[{index}] — give \"organizationId\" and \"host\"",
                crate::excerpt::excerpt(unknown)
            )));
        }
        let id = organization_id(entry.get("organizationId").or_else(|| entry.get("id")))
            .map_err(|e| invalid(format!("organizations[{index}]: {e}")))?;
        let host = match optional_string(entry, "host")? {
            Some(host) => host,
            None => default_host.clone().ok_or_else(|| {
                missing(
                    "host",
                    "each organization's host (discovery gives it), or one \"host\" for all",
                )
            })?,
        };
        if organizations
            .iter()
            .any(|(h, o): &(String, OrganizationId)| *o == id && h.trim() == host.trim())
        {
            return Err(invalid(format!(
                "organizations[{index}] repeats organization {id} on the same host"
            )));
        }
        organizations.push((host, id));
    }
    Ok(ConnectCommand::ConnectSeveral {
        tenant_id: tenant_id(payload)?,
        token: token(payload)?,
        organizations,
    })
}

fn credential_id(payload: &Value) -> Result<CredentialId, ConnectError> {
    let raw = optional_string(payload, "credentialId")?.ok_or_else(|| {
        missing(
            "credentialId",
            "the id returned when the organizations were connected",
        )
    })?;
    CredentialId::parse(&raw).ok_or_else(|| {
        invalid(format!(
            "\"credentialId\" {} is not a credential id — use the id the connect call returned",
            crate::excerpt::excerpt(&raw)
        ))
    })
}

fn token(payload: &Value) -> Result<ApiToken, ConnectError> {
    match payload.get("token") {
        Some(Value::String(s)) if s.len() > MAX_TOKEN_BYTES => Err(invalid(format!(
            "\"token\" is longer than {MAX_TOKEN_BYTES} bytes — give the Make API token itself"
        ))),
        Some(Value::String(s)) => Ok(ApiToken::parse(s)?),
        None | Some(Value::Null) => Err(missing(
            "token",
            "a Make API token with the scopes organizations:read and user:read",
        )),
        // Not quoted back: whatever it is, it may be a secret.
        Some(_) => Err(invalid("\"token\" must be a string".into())),
    }
}

fn optional_bool(payload: &Value, field: &str) -> Result<bool, ConnectError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("\"{field}\" must be true or false"))),
    }
}

fn invalid(message: String) -> ConnectError {
    ConnectError::InvalidInput(message)
}

fn missing(field: &str, what: &str) -> ConnectError {
    invalid(format!("the request has no \"{field}\" — give {what}"))
}

fn optional_string(payload: &Value, field: &str) -> Result<Option<String>, ConnectError> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("\"{field}\" must be a string"))),
    }
}

fn tenant_id(payload: &Value) -> Result<TenantId, ConnectError> {
    let tenant = optional_string(payload, "tenantId")?.ok_or_else(|| {
        missing(
            "tenantId",
            "the id of the customer the connection belongs to (every action names it)",
        )
    })?;
    Ok(TenantId::parse(&tenant)?)
}

/// A token pasted into another field as well (a host, an organization id, a tenant or a
/// connection id) would be stored, answered or logged as that field: refused first, naming
/// the field, quoting nothing.
fn refuse_a_token_in_another_field(payload: &Value) -> Result<(), ConnectError> {
    let Some(token) = payload
        .get("token")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Ok(());
    };
    // A short token (tests use `t-1`) may well be part of an honest value; Make's are 36
    // characters.
    let holds = |value: &str| value == token || (token.len() >= 12 && value.contains(token));
    // Every value but the token's own, however deep (`organizations[2].host` too).
    let mut pending: Vec<(String, &Value)> = match payload.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(name, _)| name.as_str() != "token")
            .map(|(name, value)| (name.clone(), value))
            .collect(),
        None => Vec::new(),
    };
    while let Some((field, value)) = pending.pop() {
        let holds_token = match value {
            Value::String(text) => holds(text),
            Value::Number(number) => holds(&number.to_string()),
            Value::Array(items) => {
                pending.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (format!("{field}[{i}]"), item)),
                );
                false
            }
            Value::Object(fields) => {
                pending.extend(
                    fields
                        .iter()
                        .map(|(name, item)| (format!("{field}.{}", field_name(name)), item)),
                );
                false
            }
            _ => false,
        };
        if holds_token {
            return Err(invalid(format!(
                "\"{field}\" holds the token — give the token in \"token\" only, and {field} its own value"
            )));
        }
    }
    Ok(())
}

/// A nested field's name as a path segment: its first 24 letters, digits and underscores (the
/// caller's text is not echoed at length, and a name is checked for being known later).
fn field_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect()
}

/// `limit`: how many a page holds, 1 to `max`.
fn page_limit(payload: &Value, max: usize) -> Result<usize, ConnectError> {
    payload
        .get("limit")
        .and_then(Value::as_u64)
        .filter(|n| (1..=max as u64).contains(n))
        .map(|n| n as usize)
        .ok_or_else(|| invalid(format!("\"limit\" must be a whole number from 1 to {max}")))
}

fn required_connection_id(payload: &Value) -> Result<ConnectionId, ConnectError> {
    let raw = optional_string(payload, "connectionId")?
        .ok_or_else(|| missing("connectionId", "the id returned when it was connected"))?;
    Ok(ConnectionId::parse(&raw)?)
}

#[cfg(test)]
mod tests {
    use super::super::response_json;
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Whatever the backend sends, connect parses it or answers an invalid-input error
        /// that says what is wrong, never panics, and never quotes a token it was given.
        #[test]
        fn any_request_is_parsed_or_refused_with_a_reason(
            payload in crate::arbitrary::json(&[
                "action", "host", "organizationId", "token", "tenantId", "connectionId", "purge",
            ])
        ) {
            if let Err(error) = ConnectCommand::parse(&payload) {
                proptest::prop_assert_eq!(error.kind(), ErrorKind::InvalidInput);
                proptest::prop_assert!(!error.to_string().is_empty());
            }
        }

        #[test]
        fn a_refusal_never_quotes_the_token(
            token in "[A-Za-z0-9-]{20,40}",
            mut payload in crate::arbitrary::json(&[
                "action", "host", "organizationId", "tenantId", "connectionId", "purge",
            ])
        ) {
            if let Some(fields) = payload.as_object_mut() {
                fields.insert("token".into(), token.clone().into());
            }
            if let Err(error) = ConnectCommand::parse(&payload) {
                proptest::prop_assert!(!error.to_string().contains(&token), "{}", error);
            }
        }
    }

    #[test]
    fn connect_requests_take_the_organization_id_as_number_or_digits() {
        for id in [json!(1001), json!("1001")] {
            let command = ConnectCommand::parse(
                &json!({"host": "eu1.make.com", "organizationId": id, "token": "t-1", "tenantId": "t"}),
            )
            .unwrap();
            let ConnectCommand::Connect(input) = command else {
                panic!("not a connect")
            };
            assert_eq!(input.organization_id.get(), 1001);
            assert_eq!(input.connection_id, None);
        }
    }

    /// F11: a token pasted into a nested field (`organizations[1].host`) or into
    /// `credentialId` is refused like one at the top, naming the field, never quoting it.
    #[test]
    fn a_token_pasted_into_a_nested_field_is_refused_without_quoting_it() {
        let token = "3f0c8a52-6d1e-4b7a-9c2f-0e5d7b1a4c88";
        let nested = json!({"tenantId": "t", "token": token, "organizations": [
            {"organizationId": 1, "host": "eu1.make.com"},
            {"organizationId": 2, "host": format!("x {token}")}]});
        let rotate = json!({"action": "rotate", "tenantId": "t", "token": token,
                            "credentialId": token});
        for (payload, field) in [(nested, "organizations[1].host"), (rotate, "credentialId")] {
            let message = ConnectCommand::parse(&payload).unwrap_err().to_string();
            assert!(
                message.contains(&format!("\"{field}\" holds the token")),
                "{message}"
            );
            assert!(!message.contains(token), "{message}");
        }
    }

    #[test]
    fn a_token_pasted_into_another_field_is_refused_without_quoting_it() {
        let token = "3f0c8a52-6d1e-4b7a-9c2f-0e5d7b1a4c88";
        for field in ["host", "organizationId", "tenantId", "connectionId"] {
            let mut payload = json!({"host": "eu1.make.com", "organizationId": 1,
                                     "token": token, "tenantId": "t", "connectionId": "c"});
            payload[field] = json!(token);
            let message = ConnectCommand::parse(&payload).unwrap_err().to_string();
            assert!(
                message.contains(&format!("\"{field}\" holds the token")),
                "{message}"
            );
            assert!(!message.contains(token), "{message}");
        }
        // Without a token field, a token-like value in another field is still not quoted.
        for field in ["host", "organizationId", "connectionId"] {
            let mut payload = json!({"host": "eu1.make.com", "organizationId": 1, "tenantId": "t",
                                     "token": "other-token", "connectionId": "c"});
            payload[field] = json!(token);
            if let Err(error) = ConnectCommand::parse(&payload) {
                assert!(!error.to_string().contains(token), "{error}");
            }
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong_and_never_quote_the_token() {
        let cases = [
            (json!("x"), "not a JSON object"),
            (json!({"action": "explode"}), "unknown action"),
            (
                json!({"organizationId": 1, "token": "secret-abc"}),
                "no \"host\"",
            ),
            (
                json!({"host": "eu1.make.com", "organizationId": "12a", "token": "secret-abc"}),
                "not a number",
            ),
            (
                json!({"host": "eu1.make.com", "organizationId": 1, "token": 12345}),
                "\"token\" must be a string",
            ),
            (
                json!({"host": "eu1.make.com", "organizationId": 1}),
                "no \"token\"",
            ),
            (
                json!({"host": "eu1.make.com", "organizationId": 1, "token": "secret-abc", "tokn": "x"}),
                "unknown field \"tokn\"",
            ),
            (json!({"action": "sync"}), "no \"connectionId\""),
            (
                json!({"action": "disconnect", "connectionId": "a b"}),
                "connection ID",
            ),
            (
                json!({"action": "disconnect", "connectionId": "c", "purge": "yes"}),
                "purge",
            ),
        ];
        for (payload, expected) in cases {
            let error = ConnectCommand::parse(&payload).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(expected), "{payload}: {message}");
            assert!(!message.contains("secret-abc"), "{message}");
            assert!(!message.contains("12345"), "{message}");
            assert_eq!(error.kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn errors_answer_as_kind_and_message() {
        let error = ConnectError::UnknownConnection(ConnectionId::parse("c-9").unwrap());
        let json = response_json(&Err(error));
        assert_eq!(json["error"]["kind"], "not_found");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this tenant has no connection with that connectionId"));
    }
}
