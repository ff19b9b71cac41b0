//! Audit sources and the pipeline that feeds them through the processor into the store.
//!
//! - [`files`]: audit log files as kube-apiserver writes them (JSON lines, gzip, rotated
//!   directories), read with every bad record located and counted.
//! - [`tail`]: follows a live log across rotations, resuming from a committed checkpoint.
//! - [`webhook`]: the audit webhook backend's receiver (`EventList` POSTs, TLS, auth).
//! - [`pipeline`]: one writer owning the processors and the store; every commit carries
//!   the checkpoints of the records it contains.

pub mod files;
pub mod formats;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod tail;
pub mod webhook;
pub mod writer;

pub use pipeline::{Pipeline, PipelineConfig, Record};
