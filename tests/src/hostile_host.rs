//! A hostile Make host behind the client's transport: it answers each request with what a
//! function of the test makes of its path and `pg[]`, without sockets — large answers of any
//! shape, endless lists whose every page is well formed. Not a model of Make: what a White
//! Label host, someone else's server, may send, and what makesync must survive within the
//! function's memory. Bodies are made before they are asked for, or a chunk at a time as they
//! are read (a test measures the client's memory, not the host's), and handed out in chunks as
//! a network would, each a moment later than the one before, so that answers asked together
//! are read side by side.

use async_trait::async_trait;
use bytes::Bytes;
use makesync::clock::SystemClock;
use makesync::config::make_api_config_from;
use makesync::host::MakeHost;
use makesync::make::{
    AnswerBody, HttpAnswer, HttpGet, MakeApi, MakeApiConfig, MakeClient, Transport, TransportError,
};
use makesync::organization::OrganizationId;
use makesync::token::ApiToken;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a request asks: its path (below `/api/v2`) and `pg[offset]`, `pg[limit]`.
#[derive(Debug, Clone)]
pub struct Asked {
    pub path: String,
    pub offset: usize,
    pub limit: usize,
}

/// A body: made already, or made a chunk at a time as it is read.
pub enum Body {
    Made(Bytes),
    Chunked(Box<dyn Iterator<Item = Bytes> + Send>),
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::Made(bytes)
    }
}

type Answer = Box<dyn Fn(&Asked) -> Option<Body> + Send + Sync>;

pub struct HostileHost {
    answer: Answer,
    requests: AtomicUsize,
}

impl HostileHost {
    /// A host answering `answer`'s body with 200, or 404 where it gives none.
    pub fn new<B: Into<Body>>(
        answer: impl Fn(&Asked) -> Option<B> + Send + Sync + 'static,
    ) -> Self {
        Self {
            answer: Box::new(move |asked| answer(asked).map(Into::into)),
            requests: AtomicUsize::new(0),
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A list answer of about `bytes` whose `pg` is a list of zeros: an empty page to a client
/// that reads the echo for its limit alone.
pub fn pg_array_page(collection: &str, bytes: usize) -> Bytes {
    let mut body = String::with_capacity(bytes + 64);
    body.push_str(&format!(r#"{{"{collection}":[],"pg":["#));
    while body.len() < bytes {
        body.push_str("0,");
    }
    body.push_str("0]}");
    Bytes::from(body)
}

/// A list answer of about `bytes` whose `pg` is an object of many keys besides its limit.
pub fn pg_object_page(collection: &str, bytes: usize) -> Bytes {
    let mut body = String::with_capacity(bytes + 64);
    body.push_str(&format!(r#"{{"{collection}":[],"pg":{{"limit":10000"#));
    let mut key = 0u64;
    while body.len() < bytes {
        body.push_str(&format!(r#","k{key}":[0]"#));
        key += 1;
    }
    body.push_str("}}");
    Bytes::from(body)
}

/// About `bytes` of rows made by `row` from ids `first`, `first + 1`, …, under `collection`,
/// with a `pg` echo of a limit as large as the rows sent (so that a page is always full).
pub fn rows_page(collection: &str, bytes: usize, first: u64, row: impl Fn(u64) -> String) -> Bytes {
    let mut body = String::with_capacity(bytes + 4096);
    body.push_str(&format!(r#"{{"{collection}":["#));
    let mut id = first;
    while body.len() < bytes {
        if id > first {
            body.push(',');
        }
        body.push_str(&row(id));
        id += 1;
    }
    body.push_str(&format!(r#"],"pg":{{"limit":{}}}}}"#, id - first));
    Bytes::from(body)
}

/// `limit` rows of an endless list from `offset` on (ids `offset + 1`, …), each page starting
/// on the last row of the one before as the walk expects, with an echo of the limit asked:
/// every page is well formed and full, and the list never ends. Made as it is read.
pub fn endless_page(
    collection: &str,
    asked: &Asked,
    row: impl Fn(u64) -> String + Send + 'static,
) -> Body {
    finite_page(collection, asked, 0, u64::MAX, row)
}

/// `asked.limit` rows of a list of `total` rows (ids `base + 1 ..= base + total`) from
/// `asked.offset` on, echoing the limit asked: an ordinary, well-formed page, made as it is
/// read.
pub fn finite_page(
    collection: &str,
    asked: &Asked,
    base: u64,
    total: u64,
    row: impl Fn(u64) -> String + Send + 'static,
) -> Body {
    let first = asked.offset as u64 + 1;
    let last = (asked.offset as u64 + asked.limit as u64).min(total);
    let head = format!(r#"{{"{collection}":["#);
    let tail = format!(
        r#"],"pg":{{"limit":{},"offset":{}}}}}"#,
        asked.limit, asked.offset
    );
    let rows = (first..=last).map(move |i| {
        let separator = if i == first { "" } else { "," };
        format!("{separator}{}", row(base + i))
    });
    chunked(
        std::iter::once(head)
            .chain(rows)
            .chain(std::iter::once(tail)),
    )
}

/// Parts of a body handed out in chunks of about [`CHUNK`] bytes.
fn chunked(mut parts: impl Iterator<Item = String> + Send + 'static) -> Body {
    Body::Chunked(Box::new(std::iter::from_fn(move || {
        let mut chunk = String::new();
        while chunk.len() < CHUNK {
            match parts.next() {
                Some(part) => chunk.push_str(&part),
                None => break,
            }
        }
        (!chunk.is_empty()).then(|| Bytes::from(chunk))
    })))
}

/// The Make client's configuration in a 256 MB Lambda function (the template's worker), with
/// no request waiting for the organization's rate budget (not what a memory test measures).
pub fn worker_config() -> MakeApiConfig {
    let mut config = make_api_config_from(|name| {
        (name == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE").then(|| "256".to_string())
    })
    .expect("the configuration of a 256 MB function");
    config.default_requests_per_minute = 100_000;
    config.budget_percent = 100;
    config
}

/// A client configured as `config` that reads organization 7 on eu1.make.com from `host`.
pub fn client_of(host: Arc<dyn Transport>, config: MakeApiConfig) -> MakeClient {
    MakeApi::with_transport(config, Arc::new(SystemClock::default()), host)
        .client(
            &MakeHost::parse("eu1.make.com").expect("a Make zone"),
            OrganizationId::new(7).expect("an organization id"),
            ApiToken::parse("t-hostile").expect("a token"),
        )
        .expect("a host on the allowlist")
}

/// `/teams` of `teams` teams, and each team's member list: 10,000 members, each a user of
/// no other team, in ordinary pages (10,000 rows and the read of the anchor).
pub fn teams_of_distinct_members(asked: &Asked, teams: u64) -> Option<Body> {
    if asked.path == "/teams" {
        return Some(finite_page("teams", asked, 0, teams, |id| {
            format!(r#"{{"id":{id},"name":"T{id}"}}"#)
        }));
    }
    let team: u64 = asked
        .path
        .strip_prefix("/teams/")?
        .strip_suffix("/user-team-roles")?
        .parse()
        .ok()?;
    Some(finite_page(
        "userTeamRoles",
        asked,
        team * 1_000_000,
        10_000,
        |id| format!(r#"{{"userId":{id},"usersRoleId":3}}"#),
    ))
}

/// A `/users` row with a name and an email of `text` bytes each.
pub fn user_row(id: u64, text: usize) -> String {
    let name = "N".repeat(text);
    let email = "e".repeat(text.saturating_sub(2));
    format!(r#"{{"id":{id},"name":"{name}","email":"{email}@x","lastLogin":null}}"#)
}

/// A member list row.
pub fn member_row(id: u64) -> String {
    format!(r#"{{"userId":{id},"usersRoleId":13,"invitation":null}}"#)
}

const CHUNK: usize = 64 * 1024;

struct Chunks(Body);

#[async_trait]
impl AnswerBody for Chunks {
    async fn chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        // A moment between chunks, as a network has: answers read together interleave.
        tokio::task::yield_now().await;
        Ok(match &mut self.0 {
            Body::Made(bytes) if bytes.is_empty() => None,
            Body::Made(bytes) => Some(bytes.split_to(bytes.len().min(CHUNK))),
            Body::Chunked(chunks) => chunks.next(),
        })
    }
}

#[async_trait]
impl Transport for HostileHost {
    async fn get(&self, request: HttpGet) -> Result<HttpAnswer, TransportError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let number = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
        };
        let asked = Asked {
            path: request.url.path().trim_start_matches("/api/v2").to_string(),
            offset: number("pg[offset]").unwrap_or(0),
            limit: number("pg[limit]").unwrap_or(10_000),
        };
        tokio::task::yield_now().await;
        let (status, body) = match (self.answer)(&asked) {
            Some(body) => (200, body),
            None => (
                404,
                Body::Made(Bytes::from_static(br#"{"message":"Not found"}"#)),
            ),
        };
        let content_length = match &body {
            Body::Made(bytes) => Some(bytes.len() as u64),
            Body::Chunked(_) => None,
        };
        Ok(HttpAnswer {
            status,
            headers: Default::default(),
            content_length,
            body: Box::new(Chunks(body)),
        })
    }
}
