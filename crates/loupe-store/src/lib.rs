//! Where Loupe keeps what it learns.
//!
//! [`Store`] is the interface the ingest side writes through and [`StoreReader`] the one
//! queries read through; [`SqliteStore`] is the embedded default (one directory, zero
//! configuration). A distributed engine implements the same two traits.
//!
//! Every [`Store::commit`] is atomic: raw events, facts, pod states, the watermark and the
//! source checkpoints land together or not at all, so a crash at any point resumes from a
//! consistent state with nothing lost and nothing applied twice.

mod chunk;
mod ledger;
mod query;
mod sqlite;

pub use ledger::{LedgerRound, LedgerVerdict};
pub use query::{PodFilter, PodRow, StoredVersion};
pub use sqlite::{SqliteLoader, SqliteStore};

use loupe_timeline::{FactRecord, NodeRecord, Output, PvcRecord, Recovery, Stats};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("store data: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored pod state: {0}")]
    State(#[from] postcard::Error),
    #[error("corrupt raw chunk {0}")]
    CorruptChunk(i64),
    #[error(
        "the store at {path} has schema version {found}; this Loupe reads version {expected}. \
         Move it aside and replay the audit logs into a new one"
    )]
    SchemaVersion {
        path: String,
        found: String,
        expected: i64,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where a source stopped, committed with the data it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub source: String,
    /// Source-specific position (file identity and offset, …) as JSON.
    pub position: String,
}

/// What [`Store::retain`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    pub chunks: u64,
    pub raw_events: u64,
    pub pods: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Limits on what the store keeps. Age is measured on the audit clock, not the wall clock,
/// so a replay of last year's logs is not deleted as it is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    pub max_age_us: Option<i64>,
    pub max_bytes: Option<u64>,
}

/// How far back a recovery looks (audit time), mirroring the processor's settings.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryLimits {
    pub lateness_us: i64,
    pub dedup_horizon_us: i64,
    /// Pods quiet for longer stay in the store until an event names them.
    pub idle_us: i64,
}

impl RecoveryLimits {
    pub fn of(config: &loupe_timeline::Config) -> RecoveryLimits {
        RecoveryLimits {
            lateness_us: config.lateness_us,
            dedup_horizon_us: config.dedup_horizon_us,
            idle_us: config.idle_us,
        }
    }
}

/// A cluster's counters and clock, as the store has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub watermark: i64,
    pub max_seen: i64,
    pub stats: Stats,
    pub pods: u64,
    pub raw_events: u64,
}

/// A malformed record, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedRow {
    pub cluster: String,
    pub source: String,
    pub line: u64,
    pub error: String,
}

/// The write side.
pub trait Store {
    /// Atomically stores one processor output with the checkpoints of the sources that
    /// produced it.
    fn commit(&mut self, cluster: &str, output: &Output, checkpoints: &[Checkpoint]) -> Result<()>;
    /// What a processor needs to continue after a restart.
    fn recovery(&self, cluster: &str, limits: &RecoveryLimits) -> Result<Recovery>;
    fn checkpoint(&self, cluster: &str, source: &str) -> Result<Option<Checkpoint>>;
    fn retain(&mut self, retention: Retention) -> Result<RetentionReport>;
}

/// The read side.
pub trait StoreReader {
    fn clusters(&self) -> Result<Vec<ClusterStatus>>;
    fn pods(&self, filter: &PodFilter) -> Result<Vec<PodRow>>;
    /// Pods matching `ns/name`, `name` or a UID, newest first.
    fn find_pods(&self, cluster: Option<&str>, query: &str) -> Result<Vec<PodRow>>;
    fn timeline(&self, cluster: &str, uid: &str) -> Result<Vec<FactRecord>>;
    /// The stored events with this `auditID` (one per stage and cluster).
    fn raw(&self, audit_id: &str) -> Result<Vec<(String, String, String)>>;
    /// Every stored body of the pod, oldest first, with the raw event it came from.
    fn versions(&self, cluster: &str, uid: &str) -> Result<Vec<StoredVersion>>;
    fn nodes(&self, cluster: Option<&str>) -> Result<Vec<(String, NodeRecord)>>;
    fn pvcs(&self, cluster: Option<&str>) -> Result<Vec<(String, PvcRecord)>>;
    fn malformed(&self, cluster: Option<&str>, limit: usize) -> Result<Vec<MalformedRow>>;
}
