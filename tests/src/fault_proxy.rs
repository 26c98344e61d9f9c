//! A fault-injecting HTTP proxy in front of moto, for the chaos suite: the SDK clients talk to
//! it, and it forwards each call to moto or, by seeded chance, answers the way AWS does when
//! it is throttling or failing — DynamoDB `ProvisionedThroughputExceededException`,
//! `ThrottlingException` and 500s, a `BatchWriteItem` that leaves every item unprocessed, and
//! SQS and Secrets Manager 500s and throttling. Calls are told apart by `X-Amz-Target` (the
//! AWS JSON protocol all four services speak).
//!
//! It also records every call it is sent — the IAM action and the resources it names — so the
//! IAM test can compare what a function calls with what the template grants it.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

struct ProxyState {
    rng: fastrand::Rng,
    /// The chance that a call is answered with a fault instead of being forwarded.
    rate: f64,
    injected: BTreeMap<String, u32>,
    calls: Vec<AwsCall>,
    /// Calls (by `X-Amz-Target`) answered 400 with this error type, every time.
    refusals: BTreeMap<String, String>,
    /// `(action, resource, error type)`: the next call of that action naming that resource is
    /// answered 400 with that error type, once.
    fail_next: Vec<(String, String, String)>,
}

/// One call an SDK client made: its IAM action (`dynamodb:PutItem`) and the resources its
/// request names (table names, queue names, secret names, event bus names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AwsCall {
    pub action: String,
    pub resources: Vec<String>,
}

impl AwsCall {
    /// Reads a call of the AWS JSON protocol: `X-Amz-Target` (`DynamoDB_20120810.PutItem`)
    /// and the body's resource fields.
    fn read(target: &str, body: &[u8]) -> Option<Self> {
        let (service, operation) = target.split_once('.')?;
        let service = match service {
            "DynamoDB_20120810" => "dynamodb",
            "AmazonSQS" => "sqs",
            "secretsmanager" => "secretsmanager",
            "AWSEvents" => "events",
            other => other,
        };
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let mut resources = Vec::new();
        for field in ["TableName", "SecretId", "Name"] {
            if let Some(name) = request.get(field).and_then(|v| v.as_str()) {
                resources.push(name.to_string());
            }
        }
        // A query of an index is authorised on the index's ARN, not the table's.
        if let (Some(table), Some(index)) = (
            request.get("TableName").and_then(|v| v.as_str()),
            request.get("IndexName").and_then(|v| v.as_str()),
        ) {
            resources.retain(|r| r != table);
            resources.push(format!("{table}/index/{index}"));
        }
        if let Some(url) = request.get("QueueUrl").and_then(|v| v.as_str()) {
            resources.push(url.rsplit('/').next().unwrap_or(url).to_string());
        }
        if let Some(items) = request.get("RequestItems").and_then(|v| v.as_object()) {
            resources.extend(items.keys().cloned());
        }
        if let Some(entries) = request.get("Entries").and_then(|v| v.as_array()) {
            resources.extend(
                entries
                    .iter()
                    .filter_map(|e| e.get("EventBusName").and_then(|v| v.as_str()))
                    .map(str::to_string),
            );
        }
        resources.sort();
        resources.dedup();
        Some(Self {
            action: format!("{service}:{operation}"),
            resources,
        })
    }
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    state: Mutex<ProxyState>,
}

/// A running proxy. Dropping it stops the server.
pub struct FaultProxy {
    shared: Arc<Shared>,
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts on 127.0.0.1 in front of `upstream` (moto's URL), injecting nothing yet.
    pub async fn start(upstream: &str, seed: u64) -> std::io::Result<Self> {
        assert!(
            upstream.starts_with("http://127.0.0.1:") || upstream.starts_with("http://localhost:")
        );
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            state: Mutex::new(ProxyState {
                rng: fastrand::Rng::with_seed(seed),
                rate: 0.0,
                injected: BTreeMap::new(),
                calls: Vec::new(),
                refusals: BTreeMap::new(),
                fail_next: Vec::new(),
            }),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            shared,
            address,
            task,
        })
    }

    /// The endpoint to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The chance of a fault per call (0 turns faults off).
    pub fn set_rate(&self, rate: f64) {
        self.lock().rate = rate;
    }

    /// Answers every call of `target` (`secretsmanager.GetSecretValue`) with a 400 of
    /// `error_type` (`AccessDeniedException`), as AWS refuses what a role or a key does not
    /// allow; `None` forwards them again.
    pub fn refuse(&self, target: &str, error_type: Option<&str>) {
        let mut state = self.lock();
        match error_type {
            Some(error_type) => state.refusals.insert(target.into(), error_type.into()),
            None => state.refusals.remove(target),
        };
    }

    /// Answers the next call of `action` (`dynamodb:PutItem`) that names `resource` (a table's
    /// name) with a 400 of `error_type` (`ConditionalCheckFailedException`: a conditional
    /// write lost to another writer), once.
    pub fn fail_next(&self, action: &str, resource: &str, error_type: &str) {
        self.lock()
            .fail_next
            .push((action.into(), resource.into(), error_type.into()));
    }

    /// Every call sent through the proxy so far, in order.
    pub fn calls(&self) -> Vec<AwsCall> {
        self.lock().calls.clone()
    }

    /// The faults injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<String, u32> {
        self.lock().injected.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProxyState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An AWS JSON protocol error.
fn aws_error(status: StatusCode, error_type: &str) -> Response {
    let body =
        serde_json::json!({ "__type": error_type, "message": "injected by the chaos suite" });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        "application/x-amz-json-1.0".parse().expect("header"),
    );
    response
}

/// The fault for this call, if the dice say so.
fn fault(state: &mut ProxyState, target: &str, body: &Bytes) -> Option<(String, Response)> {
    if state.rate <= 0.0 || state.rng.f64() >= state.rate {
        return None;
    }
    let (service, operation) = target.split_once('.')?;
    let service = match service {
        "DynamoDB_20120810" => "dynamodb",
        "AmazonSQS" => "sqs",
        "secretsmanager" => "secretsmanager",
        _ => return None,
    };
    let pick = state.rng.u8(0..4);
    let (kind, response) = match (service, pick) {
        ("dynamodb", 0) => (
            "ProvisionedThroughputExceeded",
            aws_error(
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            ),
        ),
        ("dynamodb", 1) => (
            "Throttling",
            aws_error(
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            ),
        ),
        ("dynamodb", 2) if operation == "BatchWriteItem" => {
            // Every item handed back unprocessed, as DynamoDB may do under load.
            let request: serde_json::Value = serde_json::from_slice(body).ok()?;
            let answer = serde_json::json!({ "UnprocessedItems": request.get("RequestItems")? });
            let mut response = Response::new(Body::from(answer.to_string()));
            response.headers_mut().insert(
                "content-type",
                "application/x-amz-json-1.0".parse().expect("header"),
            );
            ("UnprocessedItems", response)
        }
        (_, 0 | 1) => (
            "Throttling",
            aws_error(StatusCode::BAD_REQUEST, "ThrottlingException"),
        ),
        _ => (
            "500",
            aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        ),
    };
    Some((format!("{service} {kind}"), response))
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(call) = AwsCall::read(&target, &body) {
            let planned = state.fail_next.iter().position(|(action, resource, _)| {
                *action == call.action && call.resources.contains(resource)
            });
            state.calls.push(call);
            if let Some(index) = planned {
                let (_, _, error_type) = state.fail_next.remove(index);
                return aws_error(StatusCode::BAD_REQUEST, &error_type);
            }
        }
        if let Some(error_type) = state.refusals.get(&target) {
            return aws_error(StatusCode::BAD_REQUEST, error_type);
        }
        if let Some((kind, response)) = fault(&mut state, &target, &body) {
            *state.injected.entry(kind).or_default() += 1;
            return response;
        }
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .http
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let answer_headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in &answer_headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(_) => aws_error(StatusCode::BAD_GATEWAY, "InternalServerError"),
    }
}
