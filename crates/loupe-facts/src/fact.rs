use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest annotation value `pod_created` keeps; longer ones (stored manifests such as
/// `kubectl.kubernetes.io/last-applied-configuration`) would bloat every timeline.
pub const SHORT_ANNOTATION: usize = 256;

/// Who made a request, as the audit log names them, and what kind of component that is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    /// `kubelet`, `scheduler`, `controller`, `node`, `user` or `apiserver`.
    pub component: String,
}

impl Actor {
    pub fn from_user(user: &str, user_agent: &str) -> Actor {
        let component = if user.starts_with("system:node:") {
            "kubelet"
        } else if user == "system:kube-scheduler" || user_agent.starts_with("kube-scheduler/") {
            "scheduler"
        } else if user.starts_with("system:serviceaccount:kube-system:")
            || user == "system:kube-controller-manager"
            || user_agent.starts_with("kube-controller-manager/")
        {
            "controller"
        } else if user == "system:apiserver" {
            "apiserver"
        } else {
            "user"
        };
        Actor {
            user: user.to_string(),
            component: component.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// An init container (`spec.initContainers`).
    pub init: bool,
    /// An init container with `restartPolicy: Always`.
    pub sidecar: bool,
    /// `startup`, `readiness`, `liveness`: the probes it declares.
    pub probes: Vec<String>,
    pub post_start: bool,
    pub pre_stop: bool,
    pub privileged: bool,
    /// Requested resources as written (`cpu: 500m`, `memory: 256Mi`, `nvidia.com/gpu: 1`);
    /// the limits where no request is given, as the apiserver defaults them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub name: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// The pod as its create request declared it: the spec summary of `pod_created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodCreated {
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub scheduler: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<String>,
    pub containers: Vec<ContainerSpec>,
    pub volumes: Vec<VolumeSpec>,
    pub readiness_gates: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_seconds: Option<i64>,
    /// The pod uses the node's network: no sandbox network (CNI) setup.
    pub host_network: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    /// The placement constraints it declares: `node_selector`, `node_affinity`,
    /// `pod_affinity`, `pod_anti_affinity`, `topology_spread`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement: Vec<String>,
    /// `metadata.labels` at creation, for SLO class selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` at creation whose value is short (at most
    /// [`SHORT_ANNOTATION`] bytes): flags, not stored manifests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The W3C `traceparent` annotation: the controller's trace this delivery belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub by: Actor,
}

/// One thing that happened to a pod. The public vocabulary (see `docs/facts.md`).
// `PodCreated` (the spec summary) is boxed: inline it made every fact 480 bytes, and
// every observation's facts a 2 KB allocation, for a fact that comes once per pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fact {
    PodCreated(Box<PodCreated>),
    CreateRejected {
        code: u16,
        reason: String,
        message: String,
        /// The admission webhook named in the message, if one denied or failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        webhook: Option<String>,
        by: Actor,
    },
    Bound {
        node: String,
        by: Actor,
    },
    BindingFailed {
        code: u16,
        message: String,
    },
    Nominated {
        node: String,
    },
    Condition {
        condition: String,
        status: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    ContainerWaiting {
        container: String,
        init: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    ContainerRunning {
        container: String,
        init: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        started_at: Option<String>,
    },
    ContainerTerminated {
        container: String,
        init: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        exit_code: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    ContainerReady {
        container: String,
        init: bool,
        ready: bool,
    },
    ContainerRestarted {
        container: String,
        init: bool,
        restart_count: i32,
        /// How the previous run ended (`lastState.terminated.reason`), e.g. `OOMKilled`.
        #[serde(skip_serializing_if = "Option::is_none")]
        last_reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_exit_code: Option<i32>,
    },
    Phase {
        phase: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    PodIp {
        ip: String,
    },
    HostIp {
        ip: String,
    },
    FinalizerAdded {
        finalizer: String,
    },
    FinalizerRemoved {
        finalizer: String,
    },
    LabelsChanged {
        set: BTreeMap<String, String>,
        removed: Vec<String>,
    },
    AnnotationsChanged {
        set: Vec<String>,
        removed: Vec<String>,
    },
    SpecChanged {
        by: Actor,
    },
    /// A container's image changed: the start of an in-place upgrade.
    ImageChanged {
        container: String,
        from: String,
        to: String,
        by: Actor,
    },
    DeletionRequested {
        #[serde(skip_serializing_if = "Option::is_none")]
        grace_seconds: Option<i64>,
        finalizers: Vec<String>,
        by: Actor,
    },
    DeleteFailed {
        code: u16,
        message: String,
        by: Actor,
    },
    EvictionRequested {
        by: Actor,
    },
    EvictionRefused {
        code: u16,
        message: String,
        by: Actor,
    },
    Gone {
        by: Actor,
    },
    Event {
        /// `v1` (core) or `events.k8s.io/v1`.
        api: String,
        reason: String,
        message: String,
        #[serde(rename = "event_type")]
        kind: String,
        component: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        container: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        field_path: Option<String>,
        count: i32,
        /// A repeat of an earlier event (a `patch`, or a series update).
        repeat: bool,
    },
}

/// A top-level field of a fact as its JSON form has it, borrowed: what matchers compare
/// without building the JSON. `Other` is a list or an object (look at the JSON).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Other,
}

fn opt_str(v: &Option<String>) -> Option<Field<'_>> {
    v.as_deref().map(Field::Str)
}

impl PodCreated {
    fn field(&self, key: &str) -> Option<Field<'_>> {
        use Field::*;
        match key {
            "namespace" => Some(Str(&self.namespace)),
            "name" => Some(Str(&self.name)),
            "generate_name" => opt_str(&self.generate_name),
            "scheduler" => Some(Str(&self.scheduler)),
            "node" => opt_str(&self.node),
            "priority" => self.priority.map(|p| Int(p.into())),
            "priority_class" => opt_str(&self.priority_class),
            "active_deadline_seconds" => self.active_deadline_seconds.map(Int),
            "termination_grace_seconds" => self.termination_grace_seconds.map(Int),
            "host_network" => Some(Bool(self.host_network)),
            "traceparent" => opt_str(&self.traceparent),
            "runtime_class" => opt_str(&self.runtime_class),
            "placement" => (!self.placement.is_empty()).then_some(Other),
            "labels" => (!self.labels.is_empty()).then_some(Other),
            "annotations" => (!self.annotations.is_empty()).then_some(Other),
            "owner" => self.owner.as_ref().map(|_| Other),
            "containers" | "volumes" | "readiness_gates" | "by" => Some(Other),
            _ => None,
        }
    }
}

impl Fact {
    /// The field `key` of the fact's JSON (`None` when the JSON has no such key), without
    /// serializing it. `tests/docs.rs` holds it to the serde form.
    pub fn field(&self, key: &str) -> Option<Field<'_>> {
        use Field::*;
        if key == "type" {
            return Some(Str(self.type_name()));
        }
        let int = |v: i64| Some(Int(v));
        match (self, key) {
            (Fact::PodCreated(c), key) => c.field(key),
            (Fact::CreateRejected { code, .. }, "code") => int((*code).into()),
            (Fact::CreateRejected { reason, .. }, "reason") => Some(Str(reason)),
            (Fact::CreateRejected { message, .. }, "message") => Some(Str(message)),
            (Fact::CreateRejected { webhook, .. }, "webhook") => opt_str(webhook),
            (Fact::Bound { node, .. }, "node") => Some(Str(node)),
            (Fact::BindingFailed { code, .. }, "code") => int((*code).into()),
            (Fact::BindingFailed { message, .. }, "message") => Some(Str(message)),
            (Fact::Nominated { node }, "node") => Some(Str(node)),
            (Fact::Condition { condition, .. }, "condition") => Some(Str(condition)),
            (Fact::Condition { status, .. }, "status") => Some(Str(status)),
            (Fact::Condition { reason, .. }, "reason") => opt_str(reason),
            (Fact::Condition { message, .. }, "message") => opt_str(message),
            (
                Fact::ContainerWaiting { container, .. }
                | Fact::ContainerRunning { container, .. }
                | Fact::ContainerTerminated { container, .. }
                | Fact::ContainerReady { container, .. }
                | Fact::ContainerRestarted { container, .. },
                "container",
            ) => Some(Str(container)),
            (
                Fact::ContainerWaiting { init, .. }
                | Fact::ContainerRunning { init, .. }
                | Fact::ContainerTerminated { init, .. }
                | Fact::ContainerReady { init, .. }
                | Fact::ContainerRestarted { init, .. },
                "init",
            ) => Some(Bool(*init)),
            (Fact::ContainerWaiting { reason, .. }, "reason") => opt_str(reason),
            (Fact::ContainerWaiting { message, .. }, "message") => opt_str(message),
            (Fact::ContainerRunning { started_at, .. }, "started_at") => opt_str(started_at),
            (Fact::ContainerTerminated { reason, .. }, "reason") => opt_str(reason),
            (Fact::ContainerTerminated { exit_code, .. }, "exit_code") => int((*exit_code).into()),
            (Fact::ContainerTerminated { signal, .. }, "signal") => signal.map(|s| Int(s.into())),
            (Fact::ContainerTerminated { message, .. }, "message") => opt_str(message),
            (Fact::ContainerReady { ready, .. }, "ready") => Some(Bool(*ready)),
            (Fact::ContainerRestarted { restart_count, .. }, "restart_count") => {
                int((*restart_count).into())
            }
            (Fact::ContainerRestarted { last_reason, .. }, "last_reason") => opt_str(last_reason),
            (Fact::ContainerRestarted { last_exit_code, .. }, "last_exit_code") => {
                last_exit_code.map(|c| Int(c.into()))
            }
            (Fact::Phase { phase, .. }, "phase") => Some(Str(phase)),
            (Fact::Phase { reason, .. }, "reason") => opt_str(reason),
            (Fact::Phase { message, .. }, "message") => opt_str(message),
            (Fact::PodIp { ip } | Fact::HostIp { ip }, "ip") => Some(Str(ip)),
            (
                Fact::FinalizerAdded { finalizer } | Fact::FinalizerRemoved { finalizer },
                "finalizer",
            ) => Some(Str(finalizer)),
            (Fact::LabelsChanged { .. } | Fact::AnnotationsChanged { .. }, "set" | "removed") => {
                Some(Other)
            }
            (Fact::ImageChanged { container, .. }, "container") => Some(Str(container)),
            (Fact::ImageChanged { from, .. }, "from") => Some(Str(from)),
            (Fact::ImageChanged { to, .. }, "to") => Some(Str(to)),
            (Fact::DeletionRequested { grace_seconds, .. }, "grace_seconds") => {
                grace_seconds.map(Int)
            }
            (Fact::DeletionRequested { .. }, "finalizers") => Some(Other),
            (Fact::DeleteFailed { code, .. } | Fact::EvictionRefused { code, .. }, "code") => {
                int((*code).into())
            }
            (
                Fact::DeleteFailed { message, .. } | Fact::EvictionRefused { message, .. },
                "message",
            ) => Some(Str(message)),
            (
                Fact::CreateRejected { .. }
                | Fact::Bound { .. }
                | Fact::SpecChanged { .. }
                | Fact::ImageChanged { .. }
                | Fact::DeletionRequested { .. }
                | Fact::DeleteFailed { .. }
                | Fact::EvictionRequested { .. }
                | Fact::EvictionRefused { .. }
                | Fact::Gone { .. },
                "by",
            ) => Some(Other),
            (Fact::Event { api, .. }, "api") => Some(Str(api)),
            (Fact::Event { reason, .. }, "reason") => Some(Str(reason)),
            (Fact::Event { message, .. }, "message") => Some(Str(message)),
            (Fact::Event { kind, .. }, "event_type") => Some(Str(kind)),
            (Fact::Event { component, .. }, "component") => Some(Str(component)),
            (Fact::Event { host, .. }, "host") => opt_str(host),
            (Fact::Event { container, .. }, "container") => opt_str(container),
            (Fact::Event { field_path, .. }, "field_path") => opt_str(field_path),
            (Fact::Event { count, .. }, "count") => int((*count).into()),
            (Fact::Event { repeat, .. }, "repeat") => Some(Bool(*repeat)),
            _ => None,
        }
    }

    /// The fact's type name, as in its JSON `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            Fact::PodCreated(_) => "pod_created",
            Fact::CreateRejected { .. } => "create_rejected",
            Fact::Bound { .. } => "bound",
            Fact::BindingFailed { .. } => "binding_failed",
            Fact::Nominated { .. } => "nominated",
            Fact::Condition { .. } => "condition",
            Fact::ContainerWaiting { .. } => "container_waiting",
            Fact::ContainerRunning { .. } => "container_running",
            Fact::ContainerTerminated { .. } => "container_terminated",
            Fact::ContainerReady { .. } => "container_ready",
            Fact::ContainerRestarted { .. } => "container_restarted",
            Fact::Phase { .. } => "phase",
            Fact::PodIp { .. } => "pod_ip",
            Fact::HostIp { .. } => "host_ip",
            Fact::FinalizerAdded { .. } => "finalizer_added",
            Fact::FinalizerRemoved { .. } => "finalizer_removed",
            Fact::LabelsChanged { .. } => "labels_changed",
            Fact::AnnotationsChanged { .. } => "annotations_changed",
            Fact::SpecChanged { .. } => "spec_changed",
            Fact::ImageChanged { .. } => "image_changed",
            Fact::DeletionRequested { .. } => "deletion_requested",
            Fact::DeleteFailed { .. } => "delete_failed",
            Fact::EvictionRequested { .. } => "eviction_requested",
            Fact::EvictionRefused { .. } => "eviction_refused",
            Fact::Gone { .. } => "gone",
            Fact::Event { .. } => "event",
        }
    }

    /// One line for humans, as `loupe timeline` prints it.
    pub fn summary(&self) -> String {
        match self {
            Fact::PodCreated(c) => {
                let owner = c
                    .owner
                    .as_ref()
                    .map(|o| format!(" by {}/{}", o.kind, o.name))
                    .unwrap_or_else(|| format!(" by {}", c.by.user));
                format!(
                    "{}/{} created{owner}, {} container(s)",
                    c.namespace,
                    c.name,
                    c.containers.len()
                )
            }
            Fact::CreateRejected { code, message, .. } => {
                format!("create rejected ({code}): {message}")
            }
            Fact::Bound { node, .. } => format!("bound to {node}"),
            Fact::BindingFailed { code, message } => format!("binding failed ({code}): {message}"),
            Fact::Nominated { node } => format!("nominated to {node}"),
            Fact::Condition {
                condition,
                status,
                reason,
                message,
            } => with_detail(format!("{condition}={status}"), reason, message),
            Fact::ContainerWaiting {
                container,
                reason,
                message,
                ..
            } => with_detail(format!("{container} waiting"), reason, message),
            Fact::ContainerRunning { container, .. } => format!("{container} running"),
            Fact::ContainerTerminated {
                container,
                reason,
                exit_code,
                ..
            } => format!(
                "{container} terminated: {} (exit {exit_code})",
                reason.as_deref().unwrap_or("-")
            ),
            Fact::ContainerReady {
                container, ready, ..
            } => format!("{container} ready={ready}"),
            Fact::ContainerRestarted {
                container,
                restart_count,
                last_reason,
                ..
            } => format!(
                "{container} restarted ({restart_count}){}",
                last_reason
                    .as_deref()
                    .map(|r| format!(" after {r}"))
                    .unwrap_or_default()
            ),
            Fact::Phase {
                phase,
                reason,
                message,
            } => with_detail(format!("phase {phase}"), reason, message),
            Fact::PodIp { ip } => format!("pod IP {ip}"),
            Fact::HostIp { ip } => format!("host IP {ip} (kubelet picked it up)"),
            Fact::FinalizerAdded { finalizer } => format!("finalizer {finalizer} added"),
            Fact::FinalizerRemoved { finalizer } => format!("finalizer {finalizer} removed"),
            Fact::LabelsChanged { set, removed } => {
                let set: Vec<_> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "labels set [{}] removed [{}]",
                    set.join(" "),
                    removed.join(" ")
                )
            }
            Fact::AnnotationsChanged { set, removed } => {
                format!(
                    "annotations set [{}] removed [{}]",
                    set.join(" "),
                    removed.join(" ")
                )
            }
            Fact::SpecChanged { by } => format!("spec changed by {}", by.user),
            Fact::ImageChanged {
                container,
                from,
                to,
                ..
            } => format!("{container} image {from} -> {to}"),
            Fact::DeletionRequested {
                grace_seconds, by, ..
            } => format!(
                "deletion requested by {} (grace {})",
                by.user,
                grace_seconds.map_or("default".into(), |g| format!("{g}s"))
            ),
            Fact::DeleteFailed { code, message, .. } => {
                format!("delete failed ({code}): {message}")
            }
            Fact::EvictionRequested { by } => format!("eviction requested by {}", by.user),
            Fact::EvictionRefused { code, message, .. } => {
                format!("eviction refused ({code}): {message}")
            }
            Fact::Gone { by } => format!("gone (removed by {})", by.user),
            Fact::Event {
                reason,
                message,
                component,
                count,
                ..
            } => {
                let count = if *count > 1 {
                    format!(" x{count}")
                } else {
                    String::new()
                };
                format!("[{component}] {reason}{count}: {message}")
            }
        }
    }
}

fn with_detail(head: String, reason: &Option<String>, message: &Option<String>) -> String {
    match (reason, message) {
        (Some(r), Some(m)) => format!("{head} ({r}: {m})"),
        (Some(r), None) => format!("{head} ({r})"),
        (None, Some(m)) => format!("{head} ({m})"),
        (None, None) => head,
    }
}

/// A fact with its place on the pod's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactRecord {
    /// Audit time (`stageTimestamp`) of the request that revealed it, µs since the epoch.
    pub ts: i64,
    pub audit_id: String,
    /// Order among the facts of one audit event.
    pub seq: u32,
    /// Arrived after the watermark had passed its time.
    pub late: bool,
    #[serde(flatten)]
    pub fact: Fact,
}

#[cfg(test)]
mod size {
    use super::Fact;

    /// Timelines hold millions of facts; a new variant with a big inline payload
    /// would multiply their memory. Box it, as `PodCreated` is.
    #[test]
    fn a_fact_stays_small() {
        let size = std::mem::size_of::<Fact>();
        assert!(size <= 256, "Fact grew to {size} bytes");
    }
}
