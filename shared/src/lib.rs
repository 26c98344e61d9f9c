//! makesync: keeps a central store up to date with who has access to each connected Make
//! organization.
//!
//! The library holds everything that is not Lambda- or AWS-specific: the domain
//! ([`user`], [`connection`], [`run`]), the Make API client ([`make`]), the sync engine
//! ([`sync`]), the ports the engine talks to ([`ports`]) with their local adapters ([`store`]),
//! and the scheduler and worker services ([`schedule`], [`worker`]) that the Lambdas and the
//! CLI wrap.

#[cfg(test)]
mod arbitrary;
#[cfg(feature = "aws")]
pub mod aws;
pub mod clock;
pub mod config;
pub mod connect;
pub mod connection;
pub mod credential;
pub mod discover;
pub mod error;
pub mod events;
pub mod excerpt;
pub mod host;
pub mod instance;
pub mod make;
pub mod memory_budget;
pub mod metrics;
pub mod organization;
pub mod ports;
pub mod queue;
pub mod run;
pub mod schedule;
pub mod secret_cache;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tenant;
pub mod token;
pub mod user;
pub mod worker;
