//! Local adapters for the ports: [`MemoryStore`] for tests, [`SqliteStore`] for the embedded
//! default store; [`MemorySecrets`] holds tokens in memory for tests and the demo;
//! [`MemoryQueue`] carries sync requests in process.

mod memory;
mod queue;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::{MemorySecrets, MemoryStore};
pub use queue::MemoryQueue;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(any(test, feature = "test-support"))]
pub mod contract;
