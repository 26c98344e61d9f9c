//! The services the functions and the CLI wrap: each parses its input, calls the engine or
//! the ports, and maps the result.

pub mod connect;
pub mod discover;
pub mod events;
pub mod instance;
pub mod lifecycle;
pub mod schedule;
pub mod worker;
