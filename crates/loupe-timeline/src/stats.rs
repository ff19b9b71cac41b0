use serde::{Deserialize, Serialize};

/// Counters of everything the processor saw. Nothing is dropped without being counted here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Input records (lines, webhook items).
    pub records: u64,
    /// Records that are not audit events, or whose analysed body is unreadable.
    pub malformed: u64,
    /// `RequestReceived` and `ResponseStarted` stages: counted, not analysed.
    pub non_final: u64,
    /// Same `auditID` and stage seen before.
    pub duplicates: u64,
    /// Final events about resources or verbs Loupe does not follow (leases, GETs…).
    pub skipped: u64,
    /// Events analysed and kept raw.
    pub analysed: u64,
    /// Analysed events that arrived after the watermark had passed their time.
    pub late: u64,
    /// Pod events that could not be tied to a pod UID (no uid, unknown name).
    pub unlinked: u64,
    /// Events about objects Loupe keeps raw only (Events on ReplicaSets…).
    pub unrelated: u64,
    pub facts: u64,
    /// Idle pod states that left memory, and those brought back from the store.
    pub evicted: u64,
    pub reloaded: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.records += other.records;
        self.malformed += other.malformed;
        self.non_final += other.non_final;
        self.duplicates += other.duplicates;
        self.skipped += other.skipped;
        self.analysed += other.analysed;
        self.late += other.late;
        self.unlinked += other.unlinked;
        self.unrelated += other.unrelated;
        self.facts += other.facts;
        self.evicted += other.evicted;
        self.reloaded += other.reloaded;
    }
}
