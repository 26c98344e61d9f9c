//! A hostile Make host behind the client's transport: it answers each request with what a
//! function of the test makes of its path and `pg[]`, without sockets — large answers of any
//! shape, endless lists whose every page is well formed. Not a model of Make: what a White
//! Label host, someone else's server, may send, and what makesync must survive within the
//! function's memory. Bodies are made before they are asked for (a test measures the client's
//! memory, not the host's) and handed out in chunks as a network would.

use async_trait::async_trait;
use bytes::Bytes;
use makesync::make::{AnswerBody, HttpAnswer, HttpGet, Transport, TransportError};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a request asks: its path (below `/api/v2`) and `pg[offset]`, `pg[limit]`.
#[derive(Debug, Clone)]
pub struct Asked {
    pub path: String,
    pub offset: usize,
    pub limit: usize,
}

type Answer = Box<dyn Fn(&Asked) -> Option<Bytes> + Send + Sync>;

pub struct HostileHost {
    answer: Answer,
    requests: AtomicUsize,
}

impl HostileHost {
    /// A host answering `answer`'s body with 200, or 404 where it gives none.
    pub fn new(answer: impl Fn(&Asked) -> Option<Bytes> + Send + Sync + 'static) -> Self {
        Self {
            answer: Box::new(answer),
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
/// every page is well formed and full, and the list never ends.
pub fn endless_page(collection: &str, asked: &Asked, row: impl Fn(u64) -> String) -> Bytes {
    let rows: Vec<String> = (asked.offset as u64 + 1..=(asked.offset + asked.limit) as u64)
        .map(row)
        .collect();
    Bytes::from(format!(
        r#"{{"{collection}":[{}],"pg":{{"limit":{},"offset":{}}}}}"#,
        rows.join(","),
        asked.limit,
        asked.offset
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

struct Chunks(Bytes);

#[async_trait]
impl AnswerBody for Chunks {
    async fn chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let take = self.0.len().min(CHUNK);
        Ok(Some(self.0.split_to(take)))
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
        let (status, body) = match (self.answer)(&asked) {
            Some(body) => (200, body),
            None => (404, Bytes::from_static(br#"{"message":"Not found"}"#)),
        };
        Ok(HttpAnswer {
            status,
            headers: Default::default(),
            content_length: Some(body.len() as u64),
            body: Box::new(Chunks(body)),
        })
    }
}
