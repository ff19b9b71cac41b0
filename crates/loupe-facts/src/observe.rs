use std::borrow::Cow;
use std::collections::BTreeMap;

use loupe_audit::objects::{
    ApiEvent, Binding, ContainerState, ContainerStatus, CoreEvent, DeleteOptions, InvolvedObject,
    Node, ObjectMeta, Pod, PodSpec, Pvc,
};
use loupe_audit::{AuditEvent, Body, Micros, Resource};
use serde::{Deserialize, Serialize};

use crate::fact::{Actor, ContainerSpec, Owner, PodCreated, VolumeSpec};

/// What an observation is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subject {
    /// A pod; `uid` is missing when the request did not carry it (resolve by name).
    Pod {
        uid: Option<String>,
        namespace: String,
        name: Option<String>,
    },
    /// A create the apiserver refused: no pod exists. Retries of one workload share it.
    RejectedCreate {
        namespace: String,
        name: String,
    },
    Node {
        name: String,
    },
    Pvc {
        namespace: String,
        name: String,
    },
    /// An event about an object that is neither a pod nor a node (kept raw, counted).
    Unrelated,
}

/// One container's reported status in a pod write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerObs {
    pub name: String,
    pub init: bool,
    pub state: Option<RunState>,
    pub ready: Option<bool>,
    pub restart_count: Option<i32>,
    pub last_terminated: Option<(Option<String>, i32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunState {
    Waiting {
        reason: Option<String>,
        message: Option<String>,
    },
    Running {
        started_at: Option<String>,
    },
    Terminated {
        reason: Option<String>,
        exit_code: i32,
        signal: Option<i32>,
        message: Option<String>,
    },
}

/// What a pod body (full object or patch) says. `None` means "not mentioned".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodSnapshot {
    /// A full object (response or PUT body), not a patch: absent maps mean empty.
    pub full: bool,
    pub labels: Option<BTreeMap<String, Option<String>>>,
    /// Annotation values are kept as hashes: they can be large and only changes matter.
    pub annotations: Option<BTreeMap<String, Option<u64>>>,
    pub finalizers: Option<Vec<String>>,
    /// A strategic-merge list (`$setElementOrder/finalizers`): elements are additions.
    pub finalizers_merge: bool,
    pub delete_finalizers: Vec<String>,
    pub deletion_timestamp: Option<String>,
    pub deletion_grace: Option<i64>,
    pub node_name: Option<String>,
    pub images: Option<Vec<(String, String)>>,
    /// The request was a `patch` of the pod that changes its `spec`.
    pub touches_spec: bool,
    pub phase: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub conditions: Vec<(String, String, Option<String>, Option<String>)>,
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub nominated_node: Option<String>,
    pub containers: Vec<ContainerObs>,
}

/// A Kubernetes Event, core `v1` or `events.k8s.io/v1`, created or patched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventObs {
    pub api: String,
    pub namespace: String,
    pub name: String,
    /// Missing in a Request-level repeat patch: resolve by the event's name.
    pub involved: Option<InvolvedRef>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub kind: Option<String>,
    pub component: Option<String>,
    pub host: Option<String>,
    pub count: Option<i32>,
    pub repeat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvolvedRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub field_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeObs {
    pub ready: Option<(String, Option<String>, Option<String>)>,
    pub unschedulable: Option<bool>,
    pub deleted: bool,
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PvcObs {
    pub phase: Option<String>,
    pub storage_class: Option<String>,
    pub volume: Option<String>,
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ObservedBody {
    /// What becomes the pod's [`Fact::PodCreated`](crate::Fact::PodCreated).
    PodCreated {
        created: Box<PodCreated>,
        snapshot: Box<PodSnapshot>,
    },
    CreateRejected {
        code: u16,
        reason: String,
        message: String,
        webhook: Option<String>,
    },
    PodWrite(Box<PodSnapshot>),
    Bound {
        node: String,
    },
    BindingFailed {
        code: u16,
        message: String,
    },
    DeleteRequested {
        grace: Option<i64>,
        snapshot: Option<Box<PodSnapshot>>,
        gone: bool,
    },
    DeleteFailed {
        code: u16,
        message: String,
    },
    Eviction {
        code: u16,
        message: String,
    },
    Event(Box<EventObs>),
    Node(NodeObs),
    Pvc(PvcObs),
    /// Relevant resource, but the request changed nothing Loupe follows (e.g. a 409).
    Nothing,
}

/// What one audit event says, owned and free of any earlier context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub ts: Micros,
    pub audit_id: String,
    pub actor: Actor,
    pub code: u16,
    pub subject: Subject,
    pub body: ObservedBody,
}

/// Why a body could not be read: the event is kept raw and counted as malformed.
#[derive(Debug)]
pub enum ObserveError {
    Json(serde_json::Error),
    /// A pod or Event body refused by the scanner ([`Pod::from_json`], …).
    Body(loupe_audit::DecodeError),
}

impl std::fmt::Display for ObserveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObserveError::Json(e) => e.fmt(f),
            ObserveError::Body(loupe_audit::DecodeError::Syntax { what, at }) => {
                write!(f, "{what} at byte {at} of the body")
            }
            ObserveError::Body(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ObserveError {}

impl From<serde_json::Error> for ObserveError {
    fn from(e: serde_json::Error) -> ObserveError {
        ObserveError::Json(e)
    }
}

impl From<loupe_audit::DecodeError> for ObserveError {
    fn from(e: loupe_audit::DecodeError) -> ObserveError {
        ObserveError::Body(e)
    }
}

/// Reads one relevant audit event. `Ok(None)` for events Loupe does not analyse.
pub fn observe(event: &AuditEvent<'_>) -> Result<Option<Observation>, ObserveError> {
    let target = event.target();
    if !target.is_relevant() || !event.stage.is_final() {
        return Ok(None);
    }
    let Some(ts) = event.time() else {
        return Ok(None);
    };
    let object_ref = event.object_ref.clone().unwrap_or_default();
    let namespace = object_ref.namespace.to_string();
    let ref_name = non_empty(&object_ref.name);
    let actor = Actor::from_user(event.acting_user(), &event.user_agent);
    let code = event.code();
    let verb = &*event.verb;
    let mut subject = Subject::Pod {
        uid: non_empty(&object_ref.uid),
        namespace: namespace.clone(),
        name: ref_name.clone(),
    };
    let body = match target.resource {
        Resource::Pod if verb == "create" => {
            let (s, b) = observe_create(event, namespace, ref_name, &actor)?;
            subject = s;
            b
        }
        Resource::Pod | Resource::PodStatus if matches!(verb, "patch" | "update") => {
            if !event.succeeded() {
                ObservedBody::Nothing
            } else {
                let (snap, meta) = pod_write(event, verb == "update")?;
                fill_pod_subject(&mut subject, meta);
                ObservedBody::PodWrite(Box::new(snap))
            }
        }
        Resource::Pod if verb == "delete" => observe_delete(event, &mut subject)?,
        Resource::PodBinding => {
            let binding: Option<Binding> = event.request().transpose()?;
            let binding = binding.unwrap_or_default();
            if let Some(uid) = binding.metadata.uid.as_deref().and_then(non_empty) {
                if let Subject::Pod { uid: u, .. } = &mut subject {
                    *u = Some(uid);
                }
            }
            if event.succeeded() && !binding.target.name.is_empty() {
                ObservedBody::Bound {
                    node: binding.target.name.to_string(),
                }
            } else {
                ObservedBody::BindingFailed {
                    code,
                    message: status_message(event),
                }
            }
        }
        Resource::PodEviction if verb == "create" => ObservedBody::Eviction {
            code,
            message: status_message(event),
        },
        Resource::CoreEvent | Resource::EventsApiEvent => {
            if !event.succeeded() || verb == "delete" || verb == "deletecollection" {
                return Ok(None);
            }
            let obs = observe_event(event, target.resource == Resource::CoreEvent, verb)?;
            subject = match &obs.involved {
                Some(i) if i.kind == "Pod" => Subject::Pod {
                    uid: non_empty(&i.uid),
                    namespace: i.namespace.clone(),
                    name: non_empty(&i.name),
                },
                Some(i) if i.kind == "Node" => Subject::Node {
                    name: i.name.clone(),
                },
                Some(_) => Subject::Unrelated,
                // A repeat without its object: the processor resolves it by event name.
                None => Subject::Unrelated,
            };
            ObservedBody::Event(Box::new(obs))
        }
        Resource::Node | Resource::NodeStatus => {
            let name = ref_name.unwrap_or_default();
            subject = Subject::Node { name };
            if !event.succeeded() {
                ObservedBody::Nothing
            } else {
                ObservedBody::Node(observe_node(event, verb)?)
            }
        }
        Resource::Pvc | Resource::PvcStatus => {
            subject = Subject::Pvc {
                namespace,
                name: ref_name.unwrap_or_default(),
            };
            if !event.succeeded() {
                ObservedBody::Nothing
            } else {
                ObservedBody::Pvc(observe_pvc(event, verb)?)
            }
        }
        _ => ObservedBody::Nothing,
    };
    Ok(Some(Observation {
        ts,
        audit_id: event.audit_id.to_string(),
        actor,
        code,
        subject,
        body,
    }))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn status_message(event: &AuditEvent<'_>) -> String {
    event
        .response_status
        .as_ref()
        .map(|s| s.message.to_string())
        .unwrap_or_default()
}

/// The body that best describes the pod after the request: the response if it is a Pod.
fn best_pod_body<'a>(event: &AuditEvent<'a>) -> Result<(Option<Pod<'a>>, bool), ObserveError> {
    if let Some(raw) = event.response_object {
        // The apiserver writes `kind` first: a `Status` (the answer to a binding, some
        // deletes) is told from a Pod without a second pass over the body.
        if !is_status(raw.get()) {
            let pod = Pod::from_json(raw.get())?;
            if pod.kind.as_deref().is_none_or(|k| k == "Pod") {
                return Ok((Some(pod), true));
            }
        }
    }
    Ok((request_pod(event).transpose()?, false))
}

fn request_pod<'a>(event: &AuditEvent<'a>) -> Option<Result<Pod<'a>, loupe_audit::DecodeError>> {
    event.request_object.map(|raw| Pod::from_json(raw.get()))
}

fn is_status(body: &str) -> bool {
    let head = &body.as_bytes()[..body.len().min(48)];
    head.windows(8).any(|w| w == b"\"Status\"")
}

struct PodMeta {
    uid: Option<String>,
    name: Option<String>,
}

fn fill_pod_subject(subject: &mut Subject, meta: PodMeta) {
    if let Subject::Pod { uid, name, .. } = subject {
        if uid.is_none() {
            *uid = meta.uid;
        }
        if name.is_none() {
            *name = meta.name;
        }
    }
}

fn pod_write(event: &AuditEvent<'_>, is_put: bool) -> Result<(PodSnapshot, PodMeta), ObserveError> {
    let (pod, from_response) = best_pod_body(event)?;
    let mut pod = pod.unwrap_or_default();
    let mut meta = PodMeta {
        uid: pod.metadata.uid.as_deref().and_then(non_empty),
        name: pod.metadata.name.as_deref().and_then(non_empty),
    };
    if meta.uid.is_none() && from_response {
        // The uid precondition of a kubelet patch, when only the response was decoded.
        if let Some(Ok(req)) = request_pod(event) {
            meta.uid = req.metadata.uid.as_deref().and_then(non_empty);
        }
    }
    let full = from_response || is_put;
    let merge = !full && request_has_finalizer_order(event);
    let mut snapshot = snapshot(&mut pod, full, merge);
    // A spec change is what the request asked for, not what the response shows (which
    // always has a spec): a `patch` of the pod itself whose body has one.
    snapshot.touches_spec = event.verb == "patch"
        && event.target().resource == Resource::Pod
        && request_pod(event)
            .and_then(Result::ok)
            .is_some_and(|r| r.spec.is_some());
    Ok((snapshot, meta))
}

fn request_has_finalizer_order(event: &AuditEvent<'_>) -> bool {
    event
        .request_object
        .is_some_and(|r| r.get().contains("$setElementOrder/finalizers"))
}

fn snapshot(pod: &mut Pod<'_>, full: bool, finalizers_merge: bool) -> PodSnapshot {
    let m = &pod.metadata;
    let mut snap = PodSnapshot {
        full,
        labels: owned_map(&m.labels, full),
        annotations: m.annotations.as_ref().map(|a| {
            a.iter()
                .map(|(k, v)| (k.to_string(), v.as_deref().map(fnv1a)))
                .collect()
        }),
        finalizers: m
            .finalizers
            .as_ref()
            .map(|f| f.iter().map(|s| s.to_string()).collect())
            .or_else(|| full.then(Vec::new)),
        finalizers_merge,
        delete_finalizers: m
            .delete_finalizers
            .iter()
            .flatten()
            .map(|s| s.to_string())
            .collect(),
        deletion_timestamp: m.deletion_timestamp.as_deref().map(str::to_string),
        deletion_grace: m.deletion_grace_period_seconds,
        ..PodSnapshot::default()
    };
    if full && snap.annotations.is_none() {
        snap.annotations = Some(BTreeMap::new());
    }
    if let Some(spec) = &pod.spec {
        snap.node_name = spec.node_name.as_deref().map(str::to_string);
        snap.images = spec.containers.as_ref().map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.image.as_deref().unwrap_or("").to_string(),
                    )
                })
                .collect()
        });
    }
    if let Some(status) = pod.status.take() {
        snap.phase = status.phase.map(Cow::into_owned);
        snap.reason = status.reason.map(Cow::into_owned);
        snap.message = status.message.map(Cow::into_owned);
        snap.pod_ip = status.pod_ip.map(Cow::into_owned).filter(|s| !s.is_empty());
        snap.host_ip = status
            .host_ip
            .map(Cow::into_owned)
            .filter(|s| !s.is_empty());
        snap.nominated_node = status.nominated_node_name.map(Cow::into_owned);
        snap.conditions = status
            .conditions
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c.type_.into_owned(),
                    c.status.into_owned(),
                    c.reason.map(Cow::into_owned).filter(|s| !s.is_empty()),
                    c.message.map(Cow::into_owned).filter(|s| !s.is_empty()),
                )
            })
            .collect();
        let init = status
            .init_container_statuses
            .into_iter()
            .flatten()
            .map(|c| (true, c));
        let main = status
            .container_statuses
            .into_iter()
            .flatten()
            .map(|c| (false, c));
        snap.containers = init.chain(main).map(|(i, c)| container_obs(i, c)).collect();
    }
    snap
}

fn owned_map(
    map: &Option<loupe_audit::objects::StrMap<'_>>,
    full: bool,
) -> Option<BTreeMap<String, Option<String>>> {
    match map {
        Some(m) => Some(
            m.iter()
                .map(|(k, v)| (k.to_string(), v.as_deref().map(str::to_string)))
                .collect(),
        ),
        None if full => Some(BTreeMap::new()),
        None => None,
    }
}

fn container_obs(init: bool, c: ContainerStatus<'_>) -> ContainerObs {
    ContainerObs {
        name: c.name.into_owned(),
        init,
        state: c.state.and_then(run_state),
        ready: c.ready,
        restart_count: c.restart_count,
        last_terminated: c
            .last_state
            .and_then(|s| s.terminated)
            .map(|t| (t.reason.map(Cow::into_owned), t.exit_code)),
    }
}

fn run_state(s: ContainerState<'_>) -> Option<RunState> {
    if let Some(t) = s.terminated {
        return Some(RunState::Terminated {
            reason: t.reason.map(Cow::into_owned),
            exit_code: t.exit_code,
            signal: t.signal,
            message: t.message.map(Cow::into_owned),
        });
    }
    if let Some(r) = s.running {
        return Some(RunState::Running {
            started_at: r.started_at.map(Cow::into_owned),
        });
    }
    s.waiting.map(|w| RunState::Waiting {
        reason: w.reason.map(Cow::into_owned),
        message: w.message.map(Cow::into_owned),
    })
}

/// A stable hash (FNV-1a): persisted pod states compare across restarts and releases.
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn observe_create(
    event: &AuditEvent<'_>,
    namespace: String,
    ref_name: Option<String>,
    actor: &Actor,
) -> Result<(Subject, ObservedBody), ObserveError> {
    if !event.succeeded() {
        let request: Option<Pod> = event.request().transpose().ok().flatten();
        let name = request
            .as_ref()
            .and_then(|p| {
                let name = p.metadata.name.as_deref().filter(|n| !n.is_empty());
                name.or(p.metadata.generate_name.as_deref())
            })
            .map(str::to_string)
            .or(ref_name)
            .unwrap_or_default();
        let status = event.response_status.clone().unwrap_or_default();
        let message = status.message.to_string();
        return Ok((
            Subject::RejectedCreate { namespace, name },
            ObservedBody::CreateRejected {
                code: event.code(),
                reason: status.reason.to_string(),
                webhook: webhook_in(&message),
                message,
            },
        ));
    }
    let (pod, full) = best_pod_body(event)?;
    let mut pod = pod.unwrap_or_default();
    let meta = &pod.metadata;
    let uid = meta.uid.as_deref().and_then(non_empty);
    let name = meta.name.as_deref().and_then(non_empty).or(ref_name);
    let ns = meta
        .namespace
        .as_deref()
        .and_then(non_empty)
        .unwrap_or(namespace);
    let created = created_fact(
        &ns,
        name.as_deref().unwrap_or(""),
        meta,
        pod.spec.as_ref(),
        actor,
    );
    let snapshot = snapshot(&mut pod, full, false);
    Ok((
        Subject::Pod {
            uid,
            namespace: ns,
            name,
        },
        ObservedBody::PodCreated {
            created: Box::new(created),
            snapshot: Box::new(snapshot),
        },
    ))
}

/// A container's requests, or its limits where no request is given (the apiserver's
/// default); quantities as written, numbers as their JSON text.
fn requests(raw: Body<'_>) -> BTreeMap<String, String> {
    #[derive(serde::Deserialize, Default)]
    struct Resources {
        #[serde(default)]
        requests: BTreeMap<String, serde_json::Value>,
        #[serde(default)]
        limits: BTreeMap<String, serde_json::Value>,
    }
    let r: Resources = serde_json::from_str(raw.get()).unwrap_or_default();
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    let mut out: BTreeMap<String, String> =
        r.limits.into_iter().map(|(k, v)| (k, text(v))).collect();
    out.extend(r.requests.into_iter().map(|(k, v)| (k, text(v))));
    out
}

/// Which placement constraints a spec declares.
fn placement(spec: &PodSpec<'_>) -> Vec<String> {
    let present = |raw: Option<Body<'_>>| {
        raw.is_some_and(|r| !matches!(r.get().trim(), "null" | "{}" | "[]"))
    };
    let mut out = Vec::new();
    if present(spec.node_selector) {
        out.push("node_selector".to_string());
    }
    if let Some(affinity) = spec.affinity {
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Affinity<'a> {
            #[serde(borrow, default)]
            node_affinity: Option<Body<'a>>,
            #[serde(borrow, default)]
            pod_affinity: Option<Body<'a>>,
            #[serde(borrow, default)]
            pod_anti_affinity: Option<Body<'a>>,
        }
        let a: Affinity = serde_json::from_str(affinity.get()).unwrap_or_default();
        for (name, raw) in [
            ("node_affinity", a.node_affinity),
            ("pod_affinity", a.pod_affinity),
            ("pod_anti_affinity", a.pod_anti_affinity),
        ] {
            if present(raw) {
                out.push(name.to_string());
            }
        }
    }
    if present(spec.topology_spread_constraints) {
        out.push("topology_spread".to_string());
    }
    out
}

fn created_fact(
    namespace: &str,
    name: &str,
    meta: &ObjectMeta<'_>,
    spec: Option<&PodSpec<'_>>,
    actor: &Actor,
) -> PodCreated {
    let owner = meta.owner_references.as_ref().and_then(|owners| {
        owners
            .iter()
            .find(|o| o.controller == Some(true))
            .or(owners.first())
            .map(|o| Owner {
                kind: o.kind.to_string(),
                name: o.name.to_string(),
            })
    });
    let mut containers = Vec::new();
    let mut volumes = Vec::new();
    let mut gates = Vec::new();
    if let Some(spec) = spec {
        let init = spec.init_containers.iter().flatten().map(|c| (true, c));
        let main = spec.containers.iter().flatten().map(|c| (false, c));
        for (is_init, c) in init.chain(main) {
            let probes = [
                ("startup", c.startup_probe.is_some()),
                ("readiness", c.readiness_probe.is_some()),
                ("liveness", c.liveness_probe.is_some()),
            ];
            containers.push(ContainerSpec {
                name: c.name.to_string(),
                image: c.image.as_deref().unwrap_or("").to_string(),
                init: is_init,
                sidecar: is_init && c.restart_policy.as_deref() == Some("Always"),
                probes: probes
                    .iter()
                    .filter(|(_, has)| *has)
                    .map(|(p, _)| p.to_string())
                    .collect(),
                post_start: c.lifecycle.as_ref().is_some_and(|l| l.post_start.is_some()),
                pre_stop: c.lifecycle.as_ref().is_some_and(|l| l.pre_stop.is_some()),
                privileged: c.security_context.as_ref().and_then(|s| s.privileged) == Some(true),
                requests: c.resources.map(requests).unwrap_or_default(),
            });
        }
        volumes = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| VolumeSpec {
                name: v.name.to_string(),
                kind: v.kind().to_string(),
                claim: v
                    .persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.to_string()),
            })
            .collect();
        gates = spec
            .readiness_gates
            .iter()
            .flatten()
            .map(|g| g.condition_type.to_string())
            .collect();
    }
    PodCreated {
        namespace: namespace.to_string(),
        name: name.to_string(),
        generate_name: meta.generate_name.as_deref().map(str::to_string),
        owner,
        scheduler: spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler")
            .to_string(),
        node: spec
            .and_then(|s| s.node_name.as_deref())
            .map(str::to_string),
        priority: spec.and_then(|s| s.priority),
        priority_class: spec
            .and_then(|s| s.priority_class_name.as_deref())
            .map(str::to_string),
        containers,
        volumes,
        readiness_gates: gates,
        active_deadline_seconds: spec.and_then(|s| s.active_deadline_seconds),
        termination_grace_seconds: spec.and_then(|s| s.termination_grace_period_seconds),
        host_network: spec.and_then(|s| s.host_network) == Some(true),
        runtime_class: spec
            .and_then(|s| s.runtime_class_name.as_deref())
            .map(str::to_string),
        placement: spec.map(placement).unwrap_or_default(),
        labels: present_values(meta.labels.as_ref(), usize::MAX),
        annotations: present_values(meta.annotations.as_ref(), crate::fact::SHORT_ANNOTATION),
        traceparent: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get("traceparent"))
            .and_then(|v| v.as_deref())
            .map(str::to_string),
        by: actor.clone(),
    }
}

/// The keys of `map` with a value of at most `longest` bytes.
fn present_values(
    map: Option<&loupe_audit::objects::StrMap<'_>>,
    longest: usize,
) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k, v.as_deref()?)))
        .filter(|(_, v)| v.len() <= longest)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The admission webhook named in an apiserver error message, if any.
fn webhook_in(message: &str) -> Option<String> {
    let start = message.find("webhook \"")? + "webhook \"".len();
    let len = message[start..].find('"')?;
    Some(message[start..start + len].to_string())
}

fn observe_delete(
    event: &AuditEvent<'_>,
    subject: &mut Subject,
) -> Result<ObservedBody, ObserveError> {
    let options: Option<DeleteOptions> = event.request().transpose().ok().flatten();
    let grace = options.as_ref().and_then(|o| o.grace_period_seconds);
    if let Some(uid) = options
        .as_ref()
        .and_then(|o| o.preconditions.as_ref())
        .and_then(|p| p.uid.as_deref())
        .and_then(non_empty)
    {
        fill_pod_subject(
            subject,
            PodMeta {
                uid: Some(uid),
                name: None,
            },
        );
    }
    if !event.succeeded() {
        return Ok(ObservedBody::DeleteFailed {
            code: event.code(),
            message: status_message(event),
        });
    }
    let (pod, from_response) = best_pod_body(event)?;
    let snapshot = match pod {
        Some(mut pod) if from_response => {
            fill_pod_subject(
                subject,
                PodMeta {
                    uid: pod.metadata.uid.as_deref().and_then(non_empty),
                    name: pod.metadata.name.as_deref().and_then(non_empty),
                },
            );
            Some(Box::new(snapshot(&mut pod, true, false)))
        }
        _ => None,
    };
    let gone = match &snapshot {
        // The object is removed when nothing holds it and no grace period is left.
        Some(s) => {
            let no_finalizers = s.finalizers.as_ref().is_none_or(Vec::is_empty);
            no_finalizers
                && (s.deletion_grace == Some(0)
                    || grace == Some(0)
                    || s.deletion_timestamp.is_none())
        }
        None => grace == Some(0),
    };
    Ok(ObservedBody::DeleteRequested {
        grace: grace.or(snapshot.as_ref().and_then(|s| s.deletion_grace)),
        snapshot,
        gone,
    })
}

fn involved(obj: Option<InvolvedObject<'_>>) -> Option<InvolvedRef> {
    obj.filter(|o| !o.kind.is_empty() || !o.name.is_empty())
        .map(|o| InvolvedRef {
            kind: o.kind.into_owned(),
            namespace: o.namespace.into_owned(),
            name: o.name.into_owned(),
            uid: o.uid.into_owned(),
            field_path: o.field_path.map(Cow::into_owned),
        })
}

fn observe_event(event: &AuditEvent<'_>, core: bool, verb: &str) -> Result<EventObs, ObserveError> {
    let raw = event.response_object.or(event.request_object);
    let object_ref = event.object_ref.clone().unwrap_or_default();
    let mut obs = EventObs {
        api: if core { "v1" } else { "events.k8s.io/v1" }.to_string(),
        namespace: object_ref.namespace.to_string(),
        name: object_ref.name.to_string(),
        involved: None,
        reason: None,
        message: None,
        kind: None,
        component: None,
        host: None,
        count: None,
        repeat: verb != "create",
    };
    let Some(raw) = raw else { return Ok(obs) };
    if core {
        let e = CoreEvent::from_json(raw.get())?;
        if let Some(name) = e.metadata.name.as_deref().filter(|n| !n.is_empty()) {
            obs.name = name.to_string();
        }
        obs.involved = involved(e.involved_object);
        obs.reason = e.reason.map(Cow::into_owned);
        obs.message = e.message.map(Cow::into_owned);
        obs.kind = e.type_.map(Cow::into_owned);
        let source = e.source.unwrap_or_default();
        obs.component = source
            .component
            .or(e.reporting_component)
            .map(Cow::into_owned)
            .filter(|c| !c.is_empty());
        obs.host = source.host.map(Cow::into_owned);
        obs.count = e.count.or(e.series.as_ref().and_then(|s| s.count));
        obs.repeat |= obs.count.is_some_and(|c| c > 1) || e.series.is_some();
    } else {
        let e = ApiEvent::from_json(raw.get())?;
        if let Some(name) = e.metadata.name.as_deref().filter(|n| !n.is_empty()) {
            obs.name = name.to_string();
        }
        obs.involved = involved(e.regarding);
        obs.reason = e.reason.map(Cow::into_owned);
        obs.message = e.note.map(Cow::into_owned);
        obs.kind = e.type_.map(Cow::into_owned);
        let source = e.deprecated_source.unwrap_or_default();
        obs.component = e
            .reporting_controller
            .or(source.component)
            .map(Cow::into_owned)
            .filter(|c| !c.is_empty());
        obs.host = source.host.map(Cow::into_owned);
        obs.count = e
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(e.deprecated_count);
        obs.repeat |= e.series.is_some();
    }
    Ok(obs)
}

fn observe_node(event: &AuditEvent<'_>, verb: &str) -> Result<NodeObs, ObserveError> {
    let (raw, _) = (event.response_object.or(event.request_object), ());
    let node: Node = match raw {
        Some(raw) if verb != "delete" => serde_json::from_str(raw.get())?,
        _ => Node::default(),
    };
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            (
                c.status.into_owned(),
                c.reason.map(Cow::into_owned),
                c.message.map(Cow::into_owned),
            )
        });
    Ok(NodeObs {
        ready,
        unschedulable: node.spec.and_then(|s| s.unschedulable),
        deleted: verb == "delete",
        created: verb == "create",
    })
}

fn observe_pvc(event: &AuditEvent<'_>, verb: &str) -> Result<PvcObs, ObserveError> {
    let raw = event.response_object.or(event.request_object);
    let pvc: Pvc = match raw {
        Some(raw) if verb != "delete" => serde_json::from_str(raw.get())?,
        _ => Pvc::default(),
    };
    Ok(PvcObs {
        phase: pvc.status.and_then(|s| s.phase).map(Cow::into_owned),
        storage_class: pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            .map(str::to_string),
        volume: pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .map(str::to_string),
        deleted: verb == "delete",
    })
}

/// The container a kubelet event names in its `fieldPath` (`spec.containers{app}`).
pub fn container_of(field_path: &str) -> Option<&str> {
    let start = field_path.find('{')? + 1;
    let end = field_path[start..].find('}')? + start;
    Some(&field_path[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_webhook_names_and_containers() {
        assert_eq!(
            webhook_in(r#"admission webhook "policy.example.com" denied the request: no"#)
                .as_deref(),
            Some("policy.example.com")
        );
        assert_eq!(
            webhook_in(r#"Internal error occurred: failed calling webhook "w.x": timeout"#)
                .as_deref(),
            Some("w.x")
        );
        assert_eq!(webhook_in("exceeded quota: q"), None);
        assert_eq!(container_of("spec.containers{app}"), Some("app"));
        assert_eq!(
            container_of("spec.initContainers{init-db}"),
            Some("init-db")
        );
        assert_eq!(container_of("spec"), None);
    }
}
