//! What the Make client needs of HTTP: send one GET, get its status and headers, read its body
//! chunk by chunk. Everything else — retries, the rate budget, the body bound, what a status
//! means — is the client's, above this port.
//!
//! [`ReqwestTransport`] is the one makesync runs with. A test may put a model of Make behind
//! [`Transport`] instead, to drive the real client without sockets, in an order it chooses
//! (`tests/tests/read_path_model.rs`).

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, HOST};
use std::time::Duration;
use url::Url;

/// One GET, as the client sends it.
pub struct HttpGet {
    pub url: Url,
    /// `Token …`, marked sensitive: never logged.
    pub authorization: HeaderValue,
    /// The `Host` header, when the URL's address stands in for the organization's host (the
    /// simulator behind `MAKESYNC_API_BASE_URL`).
    pub host: Option<String>,
}

/// An answer: status and headers at once, the body as it arrives.
pub struct HttpAnswer {
    pub status: u16,
    pub headers: HeaderMap,
    /// `Content-Length`, when the answer states it.
    pub content_length: Option<u64>,
    pub body: Box<dyn AnswerBody>,
}

/// An answer's body, read a chunk at a time.
#[async_trait]
pub trait AnswerBody: Send {
    /// The next chunk, or `None` at the end.
    async fn chunk(&mut self) -> Result<Option<Bytes>, TransportError>;
}

/// The request could not be sent, or its answer not read to the end: said in words, without
/// the URL (which is ours and adds nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Sends the client's GETs.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn get(&self, request: HttpGet) -> Result<HttpAnswer, TransportError>;
}

/// HTTPS through one reqwest connection pool, built once per process.
pub struct ReqwestTransport {
    http: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new(
        request_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("makesync/", env!("CARGO_PKG_VERSION")))
            .timeout(request_timeout)
            .connect_timeout(connect_timeout)
            // A redirect could carry the token to a host outside the allowlist.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http })
    }
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn get(&self, request: HttpGet) -> Result<HttpAnswer, TransportError> {
        let mut builder = self
            .http
            .get(request.url)
            .header(AUTHORIZATION, request.authorization)
            .header(ACCEPT, "application/json");
        if let Some(host) = request.host {
            builder = builder.header(HOST, host);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| TransportError(describe(&e)))?;
        Ok(HttpAnswer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            content_length: response.content_length(),
            body: Box::new(ReqwestBody(response)),
        })
    }
}

struct ReqwestBody(reqwest::Response);

#[async_trait]
impl AnswerBody for ReqwestBody {
    async fn chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        self.0
            .chunk()
            .await
            .map_err(|e| TransportError(describe(&e)))
    }
}

/// A transport error in words, without the URL.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else if error.is_body() || error.is_decode() {
        "the connection broke while reading the response".to_string()
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
