//! The ports' implementations: local ones for the CLI, the demo and the tests; AWS ones for
//! the functions.

#[cfg(feature = "aws")]
pub mod aws;
pub mod secret_cache;
pub mod store;
