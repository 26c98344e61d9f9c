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
    if valid.is_some() && payload.get("token").and_then(Value::as_str) == valid {
        return Err(ConnectError::InvalidInput(
            "\"requestId\" holds the token — give an id of the request's own (e.g. a UUID), never the token".into(),
        ));
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
    ) -> Result<ConnectAnswer, ConnectError> {
        let tenant = kept_for(&command).cloned();
        let (Some(request), Some(tenant), Some(log)) = (request, tenant, self.requests.clone())
        else {
            return self.handle(command).await;
        };
        let now = self.clock.wall();
        if let Some(kept) = log.answer_of(&tenant, &request, now).await? {
            if let Ok(answer) = serde_json::from_str::<Value>(&kept) {
                tracing::info!(tenant_id = %tenant, request_id = %request, "request sent again: the first answer");
                return Ok(ConnectAnswer::Replayed(answer));
            }
        }
        let answer = self.handle(command).await?;
        let json = serde_json::to_string(&answer).expect("an answer always serialises");
        if let Err(error) = log
            .keep_answer(&tenant, &request, &json, now + ANSWER_RETENTION)
            .await
        {
            // The request was carried out: its answer stands; a repeat would act again.
            tracing::warn!(tenant_id = %tenant, request_id = %request, error = %error, "could not keep the answer of a request");
        }
        Ok(answer)
    }
}
