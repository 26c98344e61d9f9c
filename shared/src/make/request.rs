//! One request to Make: sent within the organization's request budget and the client's
//! deadline, retried where a retry may help, its answer classified (what a status means) and
//! its body read within `MAKESYNC_MAX_RESPONSE_MB` and decoded without quoting a value of it.

use super::client::{Call, MakeClient, ME_PATH};
use super::error::ListBound;
use super::error::MakeError;
use super::rate_limit::RateLimitHeaders;
use super::read_budget::{Allowance, Claim, Counted, Refusal};
use super::transport::{AnswerBody, HttpGet};
use super::wire::{self, ListPage};
use reqwest::header::HeaderValue;
use serde::de::DeserializeOwned;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One failed attempt, and whether it may be retried.
enum Attempt {
    Final(MakeError),
    Retry {
        error: MakeError,
        server_hint: Option<Duration>,
    },
}

impl MakeClient {
    /// A whole answer as `T`.
    pub(super) fn decode<T: DeserializeOwned>(
        &self,
        call: &Call,
        body: &[u8],
    ) -> Result<T, MakeError> {
        let started = std::time::Instant::now();
        let decoded = wire::decode(&call.label(), body).map_err(|e| self.redacted(e));
        self.stats.decoded_in(started.elapsed());
        decoded
    }

    /// A list answer's rows (at most `max_rows`) and `pg` echo.
    pub(super) fn decode_page<T: DeserializeOwned>(
        &self,
        call: &Call,
        collection: &str,
        body: &[u8],
        max_rows: usize,
    ) -> Result<ListPage<T>, MakeError> {
        let started = std::time::Instant::now();
        let decoded = wire::decode_page(&call.label(), collection, body, max_rows)
            .map_err(|e| self.redacted(e));
        self.stats.decoded_in(started.elapsed());
        decoded
    }

    /// A body Make sent back may quote the request: its text never carries the token.
    fn redacted(&self, error: MakeError) -> MakeError {
        match error {
            MakeError::Protocol { endpoint, detail } => MakeError::Protocol {
                endpoint,
                detail: self.token.redact(&detail),
            },
            other => other,
        }
    }

    /// One GET, with a 401 told apart: Make answers 401 both for a token that is invalid and
    /// for one that lacks the endpoint's scope. Once Make has accepted the token (an earlier
    /// call of this client, or `GET /users/me` asked now), the 401 is about the scope.
    pub(super) async fn fetch(
        &self,
        call: &Call,
        paging: &[(&'static str, String)],
    ) -> Result<Vec<u8>, MakeError> {
        // Without an allowance, nothing is counted and no answer is put off.
        Ok(self
            .fetch_within(call, paging, None)
            .await?
            .map(|(body, _)| body)
            .unwrap_or_default())
    }

    /// [`fetch`](Self::fetch), its body counted against `allowance` as it is read: with the
    /// count, or `None` when the body would pass the client's read budget before its turn
    /// (read it again then). The one next to be taken is refused instead, with an error.
    pub(super) async fn fetch_within(
        &self,
        call: &Call,
        paging: &[(&'static str, String)],
        allowance: Option<Allowance<'_>>,
    ) -> Result<Option<(Vec<u8>, Counted)>, MakeError> {
        let error = match self.get(call, paging, allowance).await {
            Err(MakeError::InvalidToken { endpoint }) => MakeError::InvalidToken { endpoint },
            other => return other,
        };
        let accepted = self.token_accepted.load(Ordering::Relaxed)
            || (call.path != ME_PATH && self.get(&Self::me_call(), &[], None).await.is_ok());
        if !accepted {
            return Err(error);
        }
        Err(MakeError::MissingScope {
            endpoint: call.label(),
            scope: call.scope,
        })
    }

    /// One GET with retries, spacing and classification; returns the body (`None`: put off,
    /// see [`fetch_within`](Self::fetch_within)).
    async fn get(
        &self,
        call: &Call,
        paging: &[(&'static str, String)],
        allowance: Option<Allowance<'_>>,
    ) -> Result<Option<(Vec<u8>, Counted)>, MakeError> {
        let first_attempt_at = self.clock.monotonic();
        let mut attempts = 0u32;
        loop {
            self.wait_for_budget(call).await?;
            attempts += 1;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if attempts > 1 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            let (error, server_hint) = match self.attempt(call, paging, attempts, allowance).await {
                Ok(body) => return Ok(body),
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Retry { error, server_hint }) => (error, server_hint),
            };
            let delay = self.config.retry.delay(attempts, server_hint);
            let elapsed = self.clock.monotonic().saturating_sub(first_attempt_at);
            if !self.config.retry.allows(attempts, elapsed, delay) {
                tracing::warn!(endpoint = %call.label(), attempts, error = %error, "giving up on Make request");
                return Err(error);
            }
            self.check_deadline(call, delay)?;
            if matches!(error, MakeError::RateLimited { .. }) {
                self.stats.waited_for_rate_limit(delay);
            }
            tracing::warn!(
                endpoint = %call.label(),
                attempt = attempts,
                retry_in_ms = delay.as_millis() as u64,
                error = %error,
                "Make request failed, retrying"
            );
            self.clock.sleep(delay).await;
        }
    }

    /// Takes the request's place in the organization's budget and waits as long as the
    /// budget says — or, while this client is reading the organization's plan, until that
    /// answers, when the request would have to wait: the share a client starts with is the
    /// smallest plan's, and the organization's own may not make it wait at all.
    async fn wait_for_budget(&self, call: &Call) -> Result<(), MakeError> {
        loop {
            let now = self.clock.monotonic();
            let wait = self.lock_budget().reserve(now);
            if !wait.is_zero() && self.plan_read_by_another(call) {
                self.lock_budget().unreserve(now + wait);
                let mut plan = self.plan_reading.subscribe();
                let _ = plan.wait_for(Option::is_none).await;
                continue;
            }
            // A window a server reports spent (`X-RateLimit-Reset`) is waited out only as
            // long as a retry may wait, deadline or not: a host that says "a year" does not
            // hold the function for a year.
            if wait > self.config.retry.max_elapsed {
                self.lock_budget().unreserve(now + wait);
                return Err(MakeError::WaitTooLong {
                    endpoint: call.label(),
                    wait,
                    allowed: self.config.retry.max_elapsed,
                });
            }
            if let Err(out_of_time) = self.check_deadline(call, wait) {
                self.lock_budget().unreserve(now + wait);
                return Err(out_of_time);
            }
            if !wait.is_zero() {
                tracing::debug!(
                    wait_ms = wait.as_millis() as u64,
                    "waiting to stay within the organization's request budget"
                );
                self.stats.waited_for_rate_limit(wait);
                self.stats
                    .budget_wait_us
                    .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
                self.clock.sleep(wait).await;
            }
            return Ok(());
        }
    }

    /// Whether the organization's plan is being read, and `call` is not part of that read
    /// (the organization itself, or `GET /users/me` telling its 401 apart).
    fn plan_read_by_another(&self, call: &Call) -> bool {
        self.plan_reading
            .borrow()
            .as_deref()
            .is_some_and(|path| path != call.path && call.path != ME_PATH)
    }

    async fn attempt(
        &self,
        call: &Call,
        paging: &[(&'static str, String)],
        attempts: u32,
        allowance: Option<Allowance<'_>>,
    ) -> Result<Option<(Vec<u8>, Counted)>, Attempt> {
        let endpoint = call.label();
        let request = self.request(call, paging)?;
        // When each request leaves, on the clock the budget counts with: what an operator at
        // TRACE (and a test of the budget) reads a 60 s window from.
        tracing::trace!(
            endpoint = %endpoint,
            attempt = attempts,
            sent_at_ms = self.clock.monotonic().as_millis() as u64,
            "sending a Make request"
        );
        let network = |detail: String| Attempt::Retry {
            error: MakeError::Network {
                endpoint: endpoint.clone(),
                detail: self.token.redact(&detail),
                attempts,
            },
            server_hint: None,
        };
        let mut answer = self
            .transport
            .get(request)
            .await
            .map_err(|e| network(e.0))?;
        let status = answer.status;
        let limits = RateLimitHeaders::parse(&answer.headers, self.clock.wall());
        self.lock_budget().observe(&limits, self.clock.monotonic());
        if !(200..300).contains(&status) {
            let body = read_error_body(answer.body.as_mut()).await;
            return Err(self.classify_error(call, status, &limits, &body, attempts));
        }
        self.token_accepted.store(true, Ordering::Relaxed);
        match self
            .read_body(
                &endpoint,
                answer.content_length,
                answer.body.as_mut(),
                allowance,
            )
            .await
        {
            Ok(body) => Ok(Some(body)),
            Err(BodyError::PutOff) => Ok(None),
            Err(BodyError::Network(detail)) => Err(network(detail)),
            Err(BodyError::TooLarge(error)) => Err(Attempt::Final(error)),
            Err(BodyError::Refused(refusal)) => {
                Err(Attempt::Final(refused(endpoint.clone(), refusal)))
            }
        }
    }

    /// The GET for `call`: its URL on this client's base, the token as a sensitive header,
    /// and — when an override address stands in for Make — the zone it stands in for.
    fn request(&self, call: &Call, paging: &[(&'static str, String)]) -> Result<HttpGet, Attempt> {
        let mut url = self.base.clone();
        url.set_path(&format!("/api/v2{}", call.path));
        url.set_query(None);
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in call.query.iter().chain(paging.iter()) {
                pairs.append_pair(name, value);
            }
        }
        let mut authorization = HeaderValue::from_str(&format!("Token {}", self.token.expose()))
            .map_err(|_| {
                Attempt::Final(MakeError::InvalidToken {
                    endpoint: call.label(),
                })
            })?;
        authorization.set_sensitive(true);
        Ok(HttpGet {
            url,
            authorization,
            host: self
                .config
                .base_url_override
                .is_some()
                .then(|| self.host.as_str().to_string()),
        })
    }

    /// A success body, read into one buffer sized from Content-Length, up to
    /// `MAKESYNC_MAX_RESPONSE_MB`: collecting the chunks and joining them would hold a large
    /// body twice. With an allowance, each chunk is counted on the client's read budget as it
    /// arrives; past it, the body is put off (not the next to be taken) or refused, and what
    /// it counted is given back.
    async fn read_body(
        &self,
        endpoint: &str,
        content_length: Option<u64>,
        body: &mut dyn AnswerBody,
        allowance: Option<Allowance<'_>>,
    ) -> Result<(Vec<u8>, Counted), BodyError> {
        let max = self.config.max_response_bytes;
        let too_large = |size: u64| {
            BodyError::TooLarge(MakeError::Protocol {
                endpoint: endpoint.to_string(),
                detail: format!(
                    "the response is larger than MAKESYNC_MAX_RESPONSE_MB ({} MB){}",
                    max / (1024 * 1024),
                    if size > 0 {
                        format!(": {size} bytes")
                    } else {
                        String::new()
                    }
                ),
            })
        };
        let expected = content_length.unwrap_or(0);
        if expected > max {
            return Err(too_large(expected));
        }
        // Dropped on any error: what was counted is given back.
        let mut counted = Counted::none(&self.read_budget);
        let mut read = Vec::with_capacity(expected as usize);
        while let Some(chunk) = body.chunk().await.map_err(|e| BodyError::Network(e.0))? {
            if (read.len() + chunk.len()) as u64 > max {
                return Err(too_large(0));
            }
            if let Some(allowance) = allowance {
                match allowance.claim(&mut counted, chunk.len() as u64) {
                    Claim::Taken => {}
                    Claim::PutOff => return Err(BodyError::PutOff),
                    Claim::Refused(refusal) => return Err(BodyError::Refused(refusal)),
                }
            }
            read.extend_from_slice(&chunk);
        }
        Ok((read, counted))
    }

    /// What a status other than 2xx means, and whether it is worth another attempt.
    fn classify_error(
        &self,
        call: &Call,
        status: u16,
        limits: &RateLimitHeaders,
        body: &[u8],
        attempts: u32,
    ) -> Attempt {
        let endpoint = call.label();
        let make_message = error_message(body).map(|m| self.token.redact(&m));
        let organization = call.organization.map(|id| id.to_string());
        let error = match status {
            403 if self.instance_token && organization.is_some() => {
                MakeError::InstanceTokenRefused {
                    endpoint,
                    organization: organization.unwrap_or_default(),
                    status,
                }
            }
            401 => MakeError::InvalidToken { endpoint },
            403 => MakeError::Forbidden {
                endpoint,
                scope: call.scope,
                organization,
                make_message,
            },
            404 if organization.is_some() => MakeError::OrganizationNotFound {
                endpoint,
                host: self.host.to_string(),
                organization: organization.unwrap_or_default(),
            },
            // Make answers 418 for a spent rate limit too (an independent client retries it
            // exactly like 429).
            429 | 418 => {
                return Attempt::Retry {
                    error: MakeError::RateLimited {
                        endpoint,
                        status,
                        retry_after: limits.wait_hint(),
                    },
                    server_hint: limits.wait_hint(),
                }
            }
            500..=599 => {
                return Attempt::Retry {
                    error: MakeError::Server {
                        endpoint,
                        status,
                        attempts,
                    },
                    server_hint: limits.retry_after,
                }
            }
            other => MakeError::Rejected {
                endpoint,
                status: other,
                make_message,
            },
        };
        Attempt::Final(error)
    }
}

/// Why a success body could not be read.
enum BodyError {
    /// It would pass the read budget before its turn: read it again then.
    PutOff,
    /// It would pass the read budget, and it is the next to be taken: final.
    Refused(Refusal),
    /// The connection broke while reading (described, URL left out).
    Network(String),
    /// Past the bound: final.
    TooLarge(MakeError),
}

/// The error of an answer the read budget refused.
pub(super) fn refused(endpoint: String, refusal: Refusal) -> MakeError {
    match refusal {
        Refusal::PastBound(bytes) => MakeError::ListTooLong {
            endpoint,
            bound: ListBound::Bytes(bytes),
        },
        Refusal::NoMemoryFree => MakeError::MemoryTaken { endpoint },
    }
}

/// An error body, read only as far as its message can be: a host that answers errors of many
/// megabytes costs 64 KiB, not their size.
async fn read_error_body(body: &mut dyn AnswerBody) -> Vec<u8> {
    let mut read = Vec::new();
    while let Ok(Some(chunk)) = body.chunk().await {
        let room = MAX_ERROR_BODY_BYTES - read.len();
        read.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if read.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    read
}

/// Unicode's format characters that change how text reads without showing: bidi embeddings,
/// overrides and isolates, zero-width spaces and joiners, the soft hyphen and the BOM.
fn is_format_character(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// The most of an error body that is read: Make's error bodies are a few hundred bytes.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The part of Make's error body we use: a human `message` (and often `detail`). Other
/// fields are skipped without being built.
#[derive(serde::Deserialize)]
struct ErrorBody {
    message: Option<String>,
    detail: Option<String>,
}

/// Make's error message, cut to a few hundred characters, with control and format characters
/// (bidi overrides, zero-width ones) dropped and any word with an `@` (an email) replaced: the
/// text is a host's — a hostile White Label host's too — and ends up in answers, `lastError`,
/// run records and logs.
fn error_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let clean = |text: &str| -> String {
        let shown: String = text
            .chars()
            .filter(|c| !c.is_control() && !is_format_character(*c))
            .take(300)
            .collect();
        shown
            .split(' ')
            .map(|word| if word.contains('@') { "[email]" } else { word })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut text = clean(&parsed.message?);
    if let Some(detail) = parsed.detail {
        text.push_str(" — ");
        text.push_str(&clean(&detail));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F10: a host's error text keeps no bidi override, zero-width character or email.
    #[test]
    fn an_error_message_keeps_no_bidi_control_or_email() {
        let body = "{\"message\":\"Access \u{202E}denied\u{200B}\",\"detail\":\"ask mallory@evil.example now\"}";
        let message = error_message(body.as_bytes()).unwrap();
        assert_eq!(message, "Access denied — ask [email] now");
    }
}
