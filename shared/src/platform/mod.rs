//! What every part runs on: time, configuration, metrics, logging, the worker's memory budget.

pub mod clock;
pub mod memory_budget;
pub mod metrics;
pub mod telemetry;
