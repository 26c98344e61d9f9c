//! The things makesync is about, free of any port, adapter or service.

pub mod connection;
pub mod credential;
pub mod error;
pub mod event;
pub mod excerpt;
pub mod host;
pub mod organization;
pub mod queue;
pub mod run;
pub mod tenant;
pub mod token;
pub mod user;
