//! `requestId`: a request that names one, sent again (a retry after a timeout), answers as the
//! first did instead of acting twice — for the actions that change something. Answers are
//! kept a day, per tenant.

use super::{ConnectAnswer, ConnectCommand, ConnectError, ConnectService};
use crate::tenant::TenantId;
use serde_json::Value;

/// How long an answer is kept for its request to be sent again.
pub const ANSWER_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// The longest `requestId` taken.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// The request's `requestId`, checked, and the request without it.
pub(super) fn split_request_id(payload: &Value) -> Result<(Option<String>, Value), ConnectError> {
    let Some(raw) = payload.get("requestId") else {
        return Ok((None, payload.clone()));
    };
    let valid = raw.as_str().filter(|id| {
        (1..=MAX_REQUEST_ID_CHARS).contains(&id.chars().count())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    });
    // A token pasted into it would be kept and logged as the request's id: refused, unquoted.
    let token = payload
        .get("token")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|token| !token.is_empty());
    if let (Some(id), Some(token)) = (valid, token) {
        // A part of the token long enough to matter is refused as the whole is.
        if id.contains(token) || (id.len() >= 8 && token.contains(id)) {
            return Err(ConnectError::InvalidInput(
                "\"requestId\" holds the token — give an id of the request's own (e.g. a UUID), never the token".into(),
            ));
        }
    }
    let Some(id) = valid else {
        return Err(ConnectError::InvalidInput(format!(
            "\"requestId\" must be 1 to {MAX_REQUEST_ID_CHARS} letters, digits, '-', '_', '.' or ':' — e.g. a UUID the backend makes once per request and sends again with its retries"
        )));
    };
    let mut rest = payload.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("requestId");
    }
    Ok((Some(id.to_string()), rest))
}

/// What a request asked, to tell a request sent again from another one under the same id:
/// its fields but the token (never kept), as sorted JSON.
fn fingerprint(payload: &Value) -> String {
    let mut asked = payload.clone();
    if let Some(fields) = asked.as_object_mut() {
        fields.remove("token");
    }
    asked.to_string()
}

/// Whether an answer is one to give again: not one where an organization was refused for a
/// passing reason (Make down, its rate limit) — sent again, it is tried again.
fn keepable(answer: &ConnectAnswer) -> bool {
    let json = serde_json::to_value(answer).unwrap_or_default();
    // An organization not connected for a passing reason (one connected whose sync was not
    // queued is connected all the same).
    let passing = |result: &Value| {
        result.get("connectionId").is_none()
            && matches!(
                result["error"]["kind"].as_str(),
                Some("transient" | "rate_limited" | "storage")
            )
    };
    !json["organizations"]
        .as_array()
        .is_some_and(|results| results.iter().any(passing))
}

/// Whose request it is, and whether its answer is kept: only the actions that change
/// something (a read is answered afresh every time).
fn kept_for(command: &ConnectCommand) -> Option<&TenantId> {
    match command {
        ConnectCommand::Connect(input) => Some(&input.tenant_id),
        ConnectCommand::Sync { tenant_id, .. }
        | ConnectCommand::Resume { tenant_id, .. }
        | ConnectCommand::Disconnect { tenant_id, .. }
        | ConnectCommand::ConnectSeveral { tenant_id, .. }
        | ConnectCommand::DisconnectCredential { tenant_id, .. }
        | ConnectCommand::Rotate { tenant_id, .. }
        | ConnectCommand::ConnectInstance { tenant_id, .. } => Some(tenant_id),
        ConnectCommand::Status { .. }
        | ConnectCommand::List { .. }
        | ConnectCommand::Users { .. }
        | ConnectCommand::Discover { .. } => None,
    }
}

impl ConnectService {
    /// Runs `command`; with a `request` id and a log to keep answers in, the same request of
    /// the same tenant sent again answers what the first answered. Only an answer is kept,
    /// never a refusal: a request refused (Make down, say) is tried again when sent again.
    pub(super) async fn handle_once(
        &self,
        command: ConnectCommand,
        request: Option<String>,
        payload: &Value,
    ) -> Result<ConnectAnswer, ConnectError> {
        let tenant = kept_for(&command).cloned();
        let (Some(request), Some(tenant), Some(log)) = (request, tenant, self.requests.clone())
        else {
            return self.handle(command).await;
        };
        let now = self.clock.wall();
        let asked = fingerprint(payload);
        if let Some(kept) = log.answer_of(&tenant, &request, now).await? {
            if let Ok(kept) = serde_json::from_str::<Value>(&kept) {
                if kept["asked"].as_str() != Some(asked.as_str()) {
                    return Err(ConnectError::InvalidInput(format!(
                        "\"requestId\" {} was given to another request of this tenant within the last {} hours — give each request an id of its own",
                        crate::excerpt::excerpt(&request),
                        ANSWER_RETENTION.num_hours()
                    )));
                }
                tracing::info!(tenant_id = %tenant, request_id = %request, "request sent again: the first answer");
                return Ok(ConnectAnswer::Replayed(kept["answer"].clone()));
            }
        }
        let answer = self.handle(command).await?;
        if !keepable(&answer) {
            return Ok(answer);
        }
        let json = serde_json::json!({"asked": asked, "answer": answer}).to_string();
        if let Err(error) = log
            .keep_answer(&tenant, &request, &json, now, now + ANSWER_RETENTION)
            .await
        {
            // The request was carried out: its answer stands; a repeat would act again.
            tracing::warn!(tenant_id = %tenant, request_id = %request, error = %error, "could not keep the answer of a request");
        }
        Ok(answer)
    }
}
