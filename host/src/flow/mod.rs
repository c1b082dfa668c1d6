//! Flows: their definitions (`flows/*.toml` and the user's `koppel.toml`), the engine that
//! runs them, the scheduler that runs them on their intervals, and the change watch that runs
//! them when their source has something new.

pub mod definition;
pub mod engine;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod fake;
pub mod loaded;
mod runner;
pub mod schedule;
pub mod side;
pub mod watch;

pub use definition::{Delivery, Endpoint, FlowDef, FlowOverride};
pub use engine::{
    ConnectionSetup, Environment, FlowError, Progress, RunOptions, RunSummary, StageTimes,
    Supplied, run_flow,
};
pub use loaded::Loaded;
