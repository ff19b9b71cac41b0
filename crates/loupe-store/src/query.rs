use serde::{Deserialize, Serialize};

/// Which pods `loupe pods` lists.
#[derive(Debug, Clone, Default)]
pub struct PodFilter {
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub node: Option<String>,
    pub phase: Option<String>,
    /// Pods seen at or after this audit time (µs).
    pub since: Option<i64>,
    /// Pods first seen at or before this audit time (µs).
    pub until: Option<i64>,
    pub limit: Option<usize>,
}

/// One pod, as listed. The JSON form is part of the CLI's stable contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRow {
    pub cluster: String,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub phase: Option<String>,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    pub created: Option<i64>,
    pub deletion_requested: Option<i64>,
    pub gone: Option<i64>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub facts: u64,
}

/// A stored pod body: the whole object, or the patch a request sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVersion {
    pub ts: i64,
    pub audit_id: String,
    pub full: bool,
    pub verb: String,
    pub user: String,
    /// The body, as recorded in the audit event.
    pub body: String,
}
