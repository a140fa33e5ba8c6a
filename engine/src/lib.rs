//! `scen-engine`: the scenario engine behind the `scen` CLI. A Rhai script declares a plan
//! (parameters, steps, thresholds); [`run::run`] executes it against a real etcd — one it starts
//! itself or one given by endpoints — and returns a [`report::Report`] that renderers turn into
//! JSON, JUnit XML and Markdown.

// Errors carry positions, sources and client errors; they are built on cold paths only.
#![allow(clippy::result_large_err)]

pub mod ab;
pub mod actions;
pub mod control_plane;
pub mod doctor;
pub mod embedded;
pub mod exit;
pub mod library;
pub mod live;
pub mod measure;
pub mod params;
pub mod plan;
pub mod quote;
pub mod report;
pub mod run;
pub mod script;
pub mod target;
pub mod threshold;
pub mod tls;
pub mod transport;
pub mod units;

pub use exit::Exit;
pub use report::{Outcome, Report};
pub use run::{check, run, Observer, RunConfig};
