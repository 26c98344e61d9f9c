//! makesync: keeps a central store up to date with who has access to each connected Make
//! organization.
//!
//! The tree is the architecture; each layer depends only on the ones above it in this list:
//!
//! | folder | what | depends on |
//! |---|---|---|
//! | [`domain`] | the things makesync is about: [`user`], [`connection`], [`credential`], [`run`], [`tenant`], [`host`], [`organization`], [`token`], the sync request ([`queue`]), events (`domain::event`), error categories ([`error`]) and how a refusal quotes an input ([`excerpt`]) | nothing else here |
//! | [`platform`] | what every part runs on: the [`clock`], [`metrics`], [`telemetry`], the worker's [`memory_budget`] | the domain |
//! | [`make`] | the Make API client (a client bound to its host, token and budgets; its endpoints and Make's JSON, each by endpoint family), paging, retries, the rate budget, typed errors, and its [`config`] from the environment | the domain, the platform |
//! | [`ports`] | the traits the engine and services talk to: connections, credentials, users, runs, secrets, the sync queue | the domain |
//! | [`sync`] | the sync engine: one run of one connection, snapshot, plan, writes | the ports, the Make client |
//! | [`service`] | what the functions and the CLI wrap: [`connect`] (and [`discover`]), [`worker`], [`schedule`] (with [`instance`] following), [`events`] and [`lifecycle`] events | the engine, the ports, the Make client |
//! | [`adapters`] | the ports' implementations: [`store`] (memory, SQLite, the in-process queue, and the storage contract each keeps), [`secret_cache`], and `aws` (DynamoDB, Secrets Manager, SQS, EventBridge; feature `aws`); each store a folder, a file per thing it keeps (connections, leases, credentials, users, runs, requests' answers) | the ports, the domain, the platform |
//!
//! Nothing depends on an adapter but the code that wires one in (the functions, the CLI, the
//! tests), and no two files import each other. No file outside integration tests runs past 800
//! lines (`tests/tests/file_size.rs`): one that grows is split along the concepts inside it.
//! The modules are also re-exported at the crate root (`makesync::worker`, `makesync::store`,
//! …): the paths the functions, the CLI and the tests name.

#[cfg(test)]
mod arbitrary;

pub mod adapters;
pub mod domain;
pub mod make;
pub mod platform;
pub mod ports;
pub mod service;
pub mod sync;

#[cfg(feature = "aws")]
pub use adapters::aws;
pub use adapters::{secret_cache, store};
pub use domain::{
    connection, credential, error, excerpt, host, organization, queue, run, tenant, token, user,
};
pub use make::config;
pub use platform::{clock, memory_budget, metrics, telemetry};
pub use service::{connect, discover, events, instance, lifecycle, schedule, worker};
