//! Per-pod timelines from an unordered audit stream.
//!
//! The [`Processor`] is the whole ingest pipeline minus I/O: decode, count, deduplicate
//! (`auditID` + stage), observe, reorder by event time behind a watermark, resolve each
//! observation to a pod UID and fold it into that pod's [`PodState`]. What it produces
//! (raw events to keep, facts, dirty pod states, nodes) accumulates in an [`Output`] the
//! caller drains and stores. The same input gives the same output whatever the batch
//! boundaries, replay speed or caller's thread count, because every decision depends on
//! event time and input order only.

mod dedup;
mod memory;
mod processor;
mod stats;

pub use dedup::Dedup;
pub use memory::{TimelineBuilder, Timelines};
pub use processor::{
    Config, Entry, Malformed, NodeRecord, Output, PodBody, Processor, PvcRecord, RawEvent,
    Recovery, StateLoader,
};
pub use stats::Stats;

pub use loupe_facts::{Fact, FactRecord, PodState};
