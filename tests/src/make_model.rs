//! A model of one Make organization behind the client's transport, answering each request
//! when a driver says so: the client's requests wait in the model until the driver answers
//! one (any one), and between two answers members may join and leave. It drives the real
//! client, snapshot and engine without sockets, in one task, so a run is the same every time
//! for the same steps — what a property test needs to shrink a failure to its shortest steps.
//!
//! What it answers follows Make's documentation as the simulator does (`faults.rs` names each
//! source): `/users` paged with an echo, sorted as asked; the member list in the shape under
//! test (whole, paged with an echo, or cut at a default limit without saying so — the
//! documentation leaves it open), one member by id (404 for a non-member); the organization,
//! its roles (whole), `/users/me`, and `/teams` refused for want of `teams:read` with the
//! status under test (403, or 401 as an independent client shows). A member is a user of the
//! organization and a row of the member list at once: they join and leave both together.

use crate::ApiShape;
use async_trait::async_trait;
use makesync::make::{AnswerBody, HttpAnswer, HttpGet, Transport, TransportError};
use makesync_simulator::ListShape;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio::sync::oneshot;

/// The organization the model serves.
pub const MODEL_ORGANIZATION: u64 = 7;

/// What the driver does next, once the client waits on answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Answer one of the waiting requests (counted from the oldest, modulo how many wait).
    Answer(usize),
    /// The user with this id (if not a member) joins the organization.
    Join(u64),
    /// A member (counted by id order, modulo how many there are) leaves.
    Leave(usize),
}

/// A request waiting for its answer.
struct Waiting {
    path: String,
    query: Vec<(String, String)>,
    reply: oneshot::Sender<HttpAnswer>,
}

struct State {
    members: BTreeSet<u64>,
    shape: ApiShape,
    /// The most rows `/users` answers a page, whatever is asked.
    users_page_cap: usize,
    waiting: Vec<Waiting>,
    /// Requests received so far.
    received: usize,
    /// Every member present at some moment since [`MakeModel::start_watching`].
    ever: BTreeSet<u64>,
    /// Every member who joined or left since then.
    touched: BTreeSet<u64>,
    /// The paths answered, in order (for a failure's report).
    answered: Vec<String>,
}

/// The model; clone it to hand it to the client as its [`Transport`].
#[derive(Clone)]
pub struct MakeModel {
    state: Arc<Mutex<State>>,
}

/// Who was a member during a watched stretch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// Members the whole time.
    pub throughout: BTreeSet<u64>,
    /// Members at some moment.
    pub ever: BTreeSet<u64>,
}

impl MakeModel {
    pub fn new(
        members: impl IntoIterator<Item = u64>,
        shape: ApiShape,
        users_page_cap: usize,
    ) -> Self {
        let members: BTreeSet<u64> = members.into_iter().collect();
        Self {
            state: Arc::new(Mutex::new(State {
                ever: members.clone(),
                members,
                shape,
                users_page_cap: users_page_cap.max(1),
                waiting: Vec::new(),
                received: 0,
                touched: BTreeSet::new(),
                answered: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn members(&self) -> BTreeSet<u64> {
        self.lock().members.clone()
    }

    /// From now on, who joins and leaves is watched (see [`watched`](Self::watched)).
    pub fn start_watching(&self) {
        let mut state = self.lock();
        state.ever = state.members.clone();
        state.touched.clear();
        state.answered.clear();
    }

    pub fn watched(&self) -> Watched {
        let state = self.lock();
        Watched {
            throughout: state
                .ever
                .iter()
                .filter(|id| !state.touched.contains(id))
                .copied()
                .collect(),
            ever: state.ever.clone(),
        }
    }

    /// The paths answered since watching started, in order.
    pub fn answered(&self) -> Vec<String> {
        self.lock().answered.clone()
    }

    pub fn join(&self, id: u64) {
        let mut state = self.lock();
        if id > 0 && state.members.insert(id) {
            state.ever.insert(id);
            state.touched.insert(id);
        }
    }

    pub fn leave(&self, id: u64) {
        let mut state = self.lock();
        if state.members.remove(&id) {
            state.touched.insert(id);
        }
    }

    /// Drives `client` (a sync, a read: anything that asks the model) to its end: whenever it
    /// waits on answers, takes the next of `steps`; once they are used up, answers the oldest
    /// waiting request, with nobody joining or leaving.
    pub async fn drive<F: Future>(&self, client: F, steps: &[Step]) -> F::Output {
        let mut steps = steps.iter();
        self.drive_with(client, |model, _| {
            match steps.next().copied() {
                Some(Step::Join(id)) => model.join(id),
                Some(Step::Leave(k)) => {
                    let members = model.members();
                    if let Some(id) = members.iter().nth(k % members.len().max(1)) {
                        model.leave(*id);
                    }
                }
                Some(Step::Answer(k)) => return Some(k),
                None => return Some(0),
            }
            None
        })
        .await
    }

    /// Drives `client` to its end; whenever it waits on answers, `choose` is shown the waiting
    /// requests (oldest first, as `path` or `path@offset`) and says which to answer — or `None`
    /// to be asked again (after changing the organization, say).
    pub async fn drive_with<F: Future>(
        &self,
        client: F,
        mut choose: impl FnMut(&MakeModel, &[String]) -> Option<usize>,
    ) -> F::Output {
        // Out of tokio's cooperative budget: the budget would make its channels answer
        // "not yet" after so many polls in one turn, which polling again here cannot clear.
        let mut client = pin!(tokio::task::unconstrained(client));
        loop {
            // Polled until it makes no more progress: no new request for several polls in a
            // row. No socket, timer or thread is involved, so this is the same every time.
            let mut quiet = 0;
            let mut seen = self.lock().received;
            while quiet < 8 {
                let polled = std::future::poll_fn(|cx| Poll::Ready(client.as_mut().poll(cx))).await;
                if let Poll::Ready(output) = polled {
                    return output;
                }
                let received = self.lock().received;
                quiet = if received == seen { quiet + 1 } else { 0 };
                seen = received;
            }
            let waiting = self.waiting();
            assert!(
                !waiting.is_empty(),
                "the client waits, but on no answer of Make"
            );
            if let Some(index) = choose(self, &waiting) {
                self.answer(index % waiting.len());
            }
        }
    }

    /// The requests waiting for an answer, oldest first, as `path` or `path@offset`.
    pub fn waiting(&self) -> Vec<String> {
        self.lock()
            .waiting
            .iter()
            .map(|w| describe(&w.path, &w.query))
            .collect()
    }

    /// Answers the `index`-th waiting request from the organization as it is now.
    fn answer(&self, index: usize) {
        let mut state = self.lock();
        let waiting = state.waiting.remove(index);
        let (status, body) = state.respond(&waiting.path, &waiting.query);
        state.answered.push(format!(
            "{} {status}",
            describe(&waiting.path, &waiting.query)
        ));
        let body = body.to_string().into_bytes();
        let _ = waiting.reply.send(HttpAnswer {
            status,
            headers: Default::default(),
            content_length: Some(body.len() as u64),
            body: Box::new(OneChunk(Some(body))),
        });
    }
}

fn describe(path: &str, query: &[(String, String)]) -> String {
    let offset = query
        .iter()
        .find(|(k, _)| k == "pg[offset]")
        .map(|(_, v)| v.as_str());
    match offset {
        Some(offset) => format!("{path}@{offset}"),
        None => path.to_string(),
    }
}

impl State {
    fn respond(&self, path: &str, query: &[(String, String)]) -> (u16, Value) {
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let asked = Asked {
            offset: param("pg[offset]").and_then(|v| v.parse().ok()),
            limit: param("pg[limit]").and_then(|v| v.parse().ok()),
        };
        let org = MODEL_ORGANIZATION;
        let members_path = format!("/api/v2/organizations/{org}/user-organization-roles");
        match path {
            "/api/v2/users/me" => (
                200,
                json!({"authUser": {"id": 1, "name": "Owner", "email": "owner@acme.example"}}),
            ),
            "/api/v2/users/roles" => (
                200,
                json!({"usersRoles": [
                    {"id": 12, "name": "Admin"}, {"id": 13, "name": "Member"}
                ]}),
            ),
            "/api/v2/teams" => {
                let status = self.shape.missing_scope_status;
                (
                    status,
                    json!({"message": "Permission denied", "code": "SC403"}),
                )
            }
            "/api/v2/users" => {
                let mut ids: Vec<u64> = self.members.iter().copied().collect();
                if param("pg[sortDir]") != Some("asc") {
                    ids.reverse();
                }
                let (rows, echo) = page(
                    &ids,
                    ListShape::Paged {
                        max: self.users_page_cap as u32,
                    },
                    asked,
                );
                let rows: Vec<Value> = rows.iter().map(|id| user_row(*id)).collect();
                (200, with_echo(json!({"users": rows}), echo))
            }
            p if p == members_path => {
                let ids: Vec<u64> = self.members.iter().copied().collect();
                let (rows, echo) = page(&ids, self.shape.members, asked);
                let rows: Vec<Value> = rows.iter().map(|id| member_row(*id)).collect();
                (200, with_echo(json!({"userOrganizationRoles": rows}), echo))
            }
            p if p.starts_with(&format!("{members_path}/")) => {
                let id: u64 = p
                    .rsplit('/')
                    .next()
                    .and_then(|id| id.parse().ok())
                    .unwrap_or(0);
                if self.members.contains(&id) {
                    (200, json!({"userOrganizationRole": member_row(id)}))
                } else {
                    (404, json!({"message": "Not found"}))
                }
            }
            p if p == format!("/api/v2/organizations/{org}") => (
                200,
                json!({"organization": {
                    "id": org, "name": "Acme", "zone": "eu1.make.com", "license": {"apiLimit": 1000}
                }}),
            ),
            _ => (404, json!({"message": "Not found"})),
        }
    }
}

/// What a read asks of a list: `pg[offset]` and `pg[limit]`.
#[derive(Clone, Copy)]
struct Asked {
    offset: Option<usize>,
    limit: Option<u32>,
}

/// The rows a list answers in `shape` for the `pg[]` asked, and its echo.
fn page(ids: &[u64], shape: ListShape, asked: Asked) -> (&[u64], Option<Value>) {
    match shape {
        ListShape::Paged { max } | ListShape::PagedWithoutEcho { max } => {
            let applied = asked.limit.unwrap_or(max).clamp(1, max.max(1)) as usize;
            let offset = asked.offset.unwrap_or(0);
            let start = offset.min(ids.len());
            let end = (start + applied).min(ids.len());
            let echo = matches!(shape, ListShape::Paged { .. })
                .then(|| json!({"limit": applied, "offset": offset}));
            (&ids[start..end], echo)
        }
        ListShape::Unpaged => (ids, None),
        ListShape::UnpagedCut { at } => (&ids[..ids.len().min(at as usize)], None),
    }
}

fn with_echo(mut body: Value, echo: Option<Value>) -> Value {
    if let (Some(echo), Value::Object(map)) = (echo, &mut body) {
        map.insert("pg".to_string(), echo);
    }
    body
}

/// A user's details, the same for an id every time.
pub fn user_row(id: u64) -> Value {
    json!({"id": id, "name": format!("User {id}"), "email": format!("u{id}@acme.example"), "lastLogin": null})
}

fn member_row(id: u64) -> Value {
    json!({"userId": id, "usersRoleId": if id.is_multiple_of(5) { 12 } else { 13 }, "invitation": null})
}

struct OneChunk(Option<Vec<u8>>);

#[async_trait]
impl AnswerBody for OneChunk {
    async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, TransportError> {
        Ok(self.0.take().map(bytes::Bytes::from))
    }
}

#[async_trait]
impl Transport for MakeModel {
    async fn get(&self, request: HttpGet) -> Result<HttpAnswer, TransportError> {
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.lock();
            state.received += 1;
            state.waiting.push(Waiting {
                path: request.url.path().to_string(),
                query: request
                    .url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
                reply,
            });
        }
        answer
            .await
            .map_err(|_| TransportError("the model stopped".to_string()))
    }
}
