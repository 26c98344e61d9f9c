//! Local adapters for the storage ports: [`MemoryStore`] for tests, [`SqliteStore`] for the
//! embedded default store; [`MemorySecrets`] holds tokens in memory for tests and the demo.

mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::{MemorySecrets, MemoryStore};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(any(test, feature = "test-support"))]
pub mod contract;
