//! A stand-in for the Lambda Runtime API on 127.0.0.1, to run the functions' real `bootstrap`
//! binaries as Lambda would: events handed out by `GET /runtime/invocation/next` with a
//! deadline, answers and errors posted back, and a cold start's `/runtime/init/error`.
//! (The interface is AWS's "Lambda runtime API", version 2018-06-01.)

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Response(serde_json::Value),
    Error {
        error_type: String,
        body: serde_json::Value,
    },
}

/// A cold start's reported failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    /// `Lambda-Runtime-Function-Error-Type`.
    pub error_type: String,
    /// `{"errorMessage", "errorType"}`.
    pub body: serde_json::Value,
}

struct Pending {
    id: String,
    event: serde_json::Value,
    timeout: Duration,
}

#[derive(Default)]
struct RuntimeState {
    queue: VecDeque<Pending>,
    waiting: HashMap<String, oneshot::Sender<Invocation>>,
    init_error: Option<InitError>,
    next_id: u64,
    /// When the function first asked for an event: its cold start ended.
    first_poll: Option<std::time::Instant>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<RuntimeState>,
    event_ready: Notify,
    init_failed: Notify,
    polled: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, RuntimeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running stand-in. Dropping it stops the server.
pub struct FakeLambdaRuntime {
    shared: Arc<Shared>,
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLambdaRuntime {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            shared,
            address,
            task,
        })
    }

    /// What to put in `AWS_LAMBDA_RUNTIME_API`.
    pub fn api(&self) -> String {
        self.address.to_string()
    }

    /// Queues an event with `timeout` from the moment the function takes it, and waits for
    /// the answer.
    pub async fn invoke(
        &self,
        event: serde_json::Value,
        timeout: Duration,
    ) -> Result<Invocation, String> {
        let (sender, answer) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            state.next_id += 1;
            let id = format!("request-{}", state.next_id);
            state.waiting.insert(id.clone(), sender);
            state.queue.push_back(Pending { id, event, timeout });
        }
        self.shared.event_ready.notify_one();
        answer
            .await
            .map_err(|_| "the invocation was never answered".to_string())
    }

    /// When the function first asked for an event (its init done), waiting up to `patience`.
    pub async fn first_poll(&self, patience: Duration) -> Option<std::time::Instant> {
        let polled = self.shared.polled.notified();
        if let Some(at) = self.shared.lock().first_poll {
            return Some(at);
        }
        let _ = tokio::time::timeout(patience, polled).await;
        self.shared.lock().first_poll
    }

    /// The init error the function reported, waiting up to `patience` for it.
    pub async fn init_error(&self, patience: Duration) -> Option<InitError> {
        let reported = self.shared.init_failed.notified();
        if let Some(error) = self.shared.lock().init_error.clone() {
            return Some(error);
        }
        let _ = tokio::time::timeout(patience, reported).await;
        self.shared.lock().init_error.clone()
    }
}

impl Drop for FakeLambdaRuntime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    {
        let mut state = shared.lock();
        if state.first_poll.is_none() {
            state.first_poll = Some(std::time::Instant::now());
        }
    }
    shared.polled.notify_waiters();
    loop {
        let ready = shared.event_ready.notified();
        let pending = shared.lock().queue.pop_front();
        if let Some(pending) = pending {
            let deadline = chrono::Utc::now()
                + chrono::Duration::from_std(pending.timeout).unwrap_or_default();
            let mut headers = HeaderMap::new();
            let header = |text: String| HeaderValue::from_str(&text).expect("ASCII header");
            headers.insert("lambda-runtime-aws-request-id", header(pending.id));
            headers.insert(
                "lambda-runtime-deadline-ms",
                header(deadline.timestamp_millis().to_string()),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                header("arn:aws:lambda:us-east-1:123456789012:function:makesync".into()),
            );
            headers.insert("lambda-runtime-trace-id", header("Root=1-0-0".into()));
            return (StatusCode::OK, headers, pending.event.to_string()).into_response();
        }
        ready.await;
    }
}

fn answer(shared: &Shared, id: &str, invocation: Invocation) -> StatusCode {
    match shared.lock().waiting.remove(id) {
        Some(sender) => {
            let _ = sender.send(invocation);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()))
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Invocation::Response(json(&body)))
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn fail(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let invocation = Invocation::Error {
        error_type: error_type(&headers),
        body: json(&body),
    };
    answer(&shared, &id, invocation)
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    shared.lock().init_error = Some(InitError {
        error_type: error_type(&headers),
        body: json(&body),
    });
    shared.init_failed.notify_waiters();
    StatusCode::ACCEPTED
}
