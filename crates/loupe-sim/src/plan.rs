//! Plans one pod's life as the requests the real components would make: the
//! controller's create, the scheduler's binding, the kubelet's Events and status
//! patches, the deletes; with the injected fault changing the course where it strikes.
//! Pure: times come from the pod's own random stream and the node's state.

use std::collections::HashMap;

use crate::cluster::{Node, Workload, WorkloadKind};
use crate::faults::Code;
use crate::model::*;
use crate::rng::Rng;

const S: i64 = 1_000_000;
const MS: i64 = 1_000;

/// What the spec of this pod holds beyond its workload's template (a fault can need a
/// volume or a probe the template lacks).
#[derive(Debug, Clone)]
pub struct PodShape {
    pub uid: String,
    pub name: String,
    pub generate_name: Option<String>,
    pub node: Option<usize>,
    /// Image of each main container (an upgrade changes the first).
    pub images: Vec<String>,
    pub init_images: Vec<String>,
    pub config_map: Option<String>,
    pub secret_env: Option<String>,
    pub claim: Option<String>,
    pub startup_probe: bool,
    pub readiness_probe: bool,
    /// The first main container declares a postStart (preStop) hook.
    pub post_start: bool,
    pub pre_stop: bool,
    pub finalizer: Option<String>,
    pub readiness_gate: Option<String>,
    /// A W3C `traceparent` annotation from a controller that traces its work.
    pub traceparent: Option<String>,
    pub created_at: i64,
}

pub struct PodPlan {
    pub shape: PodShape,
    pub steps: Vec<Step>,
    pub label: Label,
}

/// Inputs of a pod's plan beyond the cluster.
pub struct PlanInput {
    pub cluster: String,
    pub created_at: i64,
    pub create: Code,
    pub delete: Option<(Code, i64)>,
    pub upgrade: Option<(Code, i64)>,
    /// No plan goes past this (the end of the simulated window).
    pub horizon: i64,
    /// How long a stuck pod waits before its owner gives up and deletes it.
    pub stuck_life: i64,
}

enum Reached {
    /// Delivered (Ready, or Running for Jobs) at this time.
    Delivered(i64),
    /// Stuck or failed: loops run until the pod is deleted.
    Stuck,
}

/// A repeated Event's identity: reason, message, container (init?, index).
type EventKey = (&'static str, String, Option<(bool, usize)>);

struct Planner<'a> {
    rng: Rng,
    steps: Vec<Step>,
    m: Milestones,
    wl: &'a Workload,
    nodes: &'a mut [Node],
    shape: PodShape,
    /// Repeated Events: (reason, message) → count so far.
    counts: HashMap<EventKey, u32>,
    limit: i64,
    bound: bool,
    seed: u64,
    /// The longest a create-time pull waited behind the node's other pulls.
    queued: i64,
    /// The create's stretches the user owns, for the platform-time truth.
    user: Vec<UserSpan>,
}

/// Plans pod `index` of workload `wl`.
pub fn plan(
    input: &PlanInput,
    wl: &mut Workload,
    nodes: &mut [Node],
    seed: u64,
    index: u64,
) -> PodPlan {
    let mut rng = Rng::derive(seed, 17, index);
    let uid = rng.uuid();
    let (name, generate_name) = match wl.kind {
        WorkloadKind::StatefulSet => {
            let n = format!("{}-{}", wl.name, wl.next_ordinal);
            wl.next_ordinal += 1;
            (n, None)
        }
        _ => {
            let prefix = format!("{}-", wl.owner);
            (format!("{prefix}{}", rng.name_suffix()), Some(prefix))
        }
    };
    let code = input.create;
    let mut images: Vec<String> = wl.containers.iter().map(|c| c.image.clone()).collect();
    match code {
        Code::InvalidImageName => {
            images[0] = images[0].replace("registry.example.com/", "registry.example.com/Team/")
        }
        Code::ImageNotFound => images[0] = format!("{}-missing", images[0]),
        _ => {}
    }
    let node = pick_node(&mut rng, wl, nodes, index);
    let shape = PodShape {
        uid,
        name,
        generate_name,
        node,
        images,
        init_images: wl.init.iter().map(|c| c.image.clone()).collect(),
        config_map: wl
            .config_map
            .clone()
            .or_else(|| (code == Code::VolumeSourceMissing).then(|| format!("{}-config", wl.name))),
        secret_env: wl.secret_env.clone().or_else(|| {
            (code == Code::CreateContainerConfigError).then(|| format!("{}-credentials", wl.name))
        }),
        claim: wl.claim_template.clone().or_else(|| {
            matches!(
                code,
                Code::VolumeMultiAttach
                    | Code::VolumeAttachTooMuchTime
                    | Code::FailedScheduling_Volume
            )
            .then(|| "data".to_string())
        }),
        startup_probe: wl.containers[0].startup || code == Code::StartupProbeFailed,
        readiness_probe: wl.containers[0].readiness || code == Code::ContainerReadinessFailed,
        post_start: wl.containers[0].post_start
            || matches!(
                code,
                Code::FailedPostStartHook | Code::PostStartHookTooMuchTime
            ),
        pre_stop: wl.containers[0].pre_stop
            || matches!(input.delete, Some((Code::PreStopHookFailed, _))),
        finalizer: wl.finalizer.clone().or_else(|| {
            matches!(input.delete, Some((Code::FinalizerBlocked, _)))
                .then(|| "example.com/cleanup-protection".to_string())
        }),
        readiness_gate: wl.readiness_gate.clone().or_else(|| {
            (code == Code::ReadinessGateNotReady)
                .then(|| crate::cluster::READINESS_GATE.to_string())
        }),
        traceparent: rng.chance(0.2).then(|| {
            format!(
                "00-{:016x}{:016x}-{:016x}-01",
                rng.next_u64() | 1,
                rng.next_u64(),
                rng.next_u64() | 1
            )
        }),
        created_at: input.created_at,
    };
    let mut p = Planner {
        rng,
        steps: Vec::new(),
        m: Milestones::default(),
        wl,
        nodes,
        shape,
        counts: HashMap::new(),
        limit: input.horizon,
        bound: false,
        seed,
        queued: 0,
        user: Vec::new(),
    };
    // Delivered pods live on for their lifetime; a stuck pod's owner gives up after a
    // while and deletes it.
    let deleted_at = |reached: &Reached| -> Option<i64> {
        let (_, after) = input.delete?;
        Some(match reached {
            Reached::Delivered(t) => t + after,
            Reached::Stuck => input.created_at + input.stuck_life,
        })
    };
    if matches!(
        code,
        Code::ApiQuotaExceeded | Code::ApiAdmissionDenied | Code::ApiWebhookFailure
    ) {
        let attempts = p.refused_creates(input.created_at, code);
        return p.finish(input, Verdict::of(code), None, None, attempts);
    }
    // The create phase is planned with a provisional limit, then steps past the delete
    // are dropped: a pod's loops stop when it is deleted.
    let reached = p.create(input.created_at, code);
    let delete_at = deleted_at(&reached).filter(|t| *t < input.horizon);
    let mut upgrade = None;
    if let (Reached::Delivered(ready), Some((up_code, after))) = (&reached, input.upgrade) {
        let at = ready + after;
        // Only upgrades that can finish (or fail) before the delete: an upgrade cut short
        // by it would have no outcome of its own.
        if delete_at.is_none_or(|d| at + 120 * S < d) && at + 120 * S < input.horizon {
            p.limit = delete_at.unwrap_or(input.horizon);
            p.upgrade(at, up_code);
            upgrade = Some(Verdict::of(up_code));
        }
    }
    let mut delete = None;
    if let Some(at) = delete_at {
        p.steps.retain(|s| s.at < at);
        for m in [
            &mut p.m.picked,
            &mut p.m.containers_started,
            &mut p.m.ready,
            &mut p.m.upgraded,
        ] {
            if m.is_some_and(|t| t >= at) {
                *m = None;
            }
        }
        p.limit = input.horizon;
        let code = input.delete.map(|d| d.0).unwrap_or(Code::DeleteSuccess);
        let code = p.delete(at, code);
        delete = Some(Verdict::of(code));
    }
    p.finish(input, Verdict::of(code), delete, upgrade, 1)
}

/// A wait behind other pulls this long is `ImagePullQueueTooMuchTime` even when nothing
/// was injected (the injected fault waits 40–80 s).
pub const EMERGENT_QUEUE_WAIT: i64 = 30 * S;

/// Whether `code` can strike a pod of `wl` (an init container fault needs an init
/// container; a run-to-completion pod is never Ready, so it has no readiness gate to wait
/// for and is not evicted after delivery).
pub fn applies(code: Code, wl: &Workload) -> bool {
    match code {
        Code::InitContainerFailed => wl.init.iter().any(|c| !c.sidecar),
        Code::ReadinessGateNotReady | Code::Evicted => wl.kind != WorkloadKind::Job,
        _ => true,
    }
}

/// Whether a delete fault can strike a pod whose create ended with `create`: a pod the
/// kubelet already failed (evicted, rejected) has no running container to stop.
pub fn delete_applies(code: Code, create: Code) -> bool {
    let terminal = matches!(
        create,
        Code::Evicted | Code::AdmissionRejected_OutOfResource
    );
    !(terminal && matches!(code, Code::GracePeriodExceeded | Code::PreStopHookFailed))
}

fn pick_node(rng: &mut Rng, wl: &Workload, nodes: &[Node], index: u64) -> Option<usize> {
    if nodes.is_empty() {
        return None;
    }
    Some(match wl.kind {
        WorkloadKind::DaemonSet => (index as usize) % nodes.len(),
        _ => rng.below(nodes.len() as u64) as usize,
    })
}

/// Go's `time.Duration.String()` of a duration truncated to milliseconds, as the
/// kubelet prints pull times.
pub fn go_duration(us: i64) -> String {
    let ms = us / MS;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let secs = if rem % 1000 == 0 {
        format!("{}s", rem / 1000)
    } else {
        let frac = format!("{:03}", rem % 1000);
        format!("{}.{}s", rem / 1000, frac.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

impl<'a> Planner<'a> {
    fn push(&mut self, at: i64, act: Act) {
        if at < self.limit {
            self.steps.push(Step { at, act });
        }
    }

    fn node(&self) -> &Node {
        &self.nodes[self.shape.node.unwrap_or(0)]
    }

    fn speed(&self) -> f64 {
        self.node().speed
    }

    /// A kubelet-side latency: log-normal, scaled by the node's speed.
    fn k(&mut self, median_ms: f64) -> i64 {
        let speed = self.speed();
        ((self.rng.lognormal_us(median_ms, 0.5) as f64) * speed) as i64 + 1
    }

    fn kubelet(&mut self, at: i64, act: Act) {
        if self.m.picked.is_none() && at < self.limit {
            self.m.picked = Some(at);
        }
        self.push(at, act);
    }

    /// `Initialized=True`, the main containers waiting to be created.
    fn initialized(&self, c: &mut StatusChange) {
        c.conditions.push(("Initialized", true, None, None));
        for k in 0..self.wl.containers.len() {
            c.containers.push((
                Slot {
                    init: false,
                    index: k,
                },
                CState::Waiting {
                    reason: "ContainerCreating",
                    message: None,
                },
            ));
        }
    }

    /// Notes a stretch of the create the user owns (the platform-time truth).
    fn owned(&mut self, kind: &'static str, start: i64, end: i64) {
        self.user.push(UserSpan { kind, start, end });
    }

    fn status(&mut self, at: i64, change: StatusChange) {
        self.kubelet(at, Act::Status(change));
    }

    fn event(
        &mut self,
        at: i64,
        reason: &'static str,
        message: String,
        warning: bool,
        container: Option<Slot>,
    ) {
        self.event_by(at, Component::Kubelet, reason, message, warning, container);
    }

    fn event_by(
        &mut self,
        at: i64,
        component: Component,
        reason: &'static str,
        message: String,
        warning: bool,
        container: Option<Slot>,
    ) {
        if at >= self.limit {
            return;
        }
        let key = (
            reason,
            message.clone(),
            container.map(|s| (s.init, s.index)),
        );
        let count = self.counts.entry(key).or_insert(0);
        *count += 1;
        let act = Act::Event(EventAct {
            component,
            reason,
            message,
            warning,
            container,
            count: *count,
        });
        if component == Component::Kubelet {
            self.kubelet(at, act);
        } else {
            self.push(at, act);
        }
    }

    fn pod_ref(&self) -> String {
        format!(
            "{}_{}({})",
            self.shape.name, self.wl.namespace, self.shape.uid
        )
    }

    fn minor(&self) -> u32 {
        self.node().minor
    }

    fn created_message(&self, c: &str) -> String {
        match self.minor() {
            ..=32 => format!("Created container {c}"),
            33 => format!("Created container: {c}"),
            _ => "Container created".to_string(),
        }
    }

    fn started_message(&self, c: &str) -> String {
        match self.minor() {
            ..=33 => format!("Started container {c}"),
            _ => "Container started".to_string(),
        }
    }

    fn container_name(&self, slot: Slot) -> String {
        if slot.init {
            self.wl.init[slot.index].name.clone()
        } else {
            self.wl.containers[slot.index].name.clone()
        }
    }

    /// Calls `f` at the kubelet's back-off times (10 s doubling to 5 min) until the pod's
    /// plan ends.
    fn backoff(&mut self, start: i64, mut f: impl FnMut(&mut Self, i64, u32)) {
        let (mut at, mut wait, mut n) = (start, 10 * S, 1u32);
        while at < self.limit && n < 400 {
            f(self, at, n);
            at += wait + self.rng.between(0, S);
            wait = (wait * 2).min(300 * S);
            n += 1;
        }
    }

    /// Calls `f` every `period` (with jitter) until the plan ends.
    fn every(&mut self, start: i64, period: i64, mut f: impl FnMut(&mut Self, i64, u32)) {
        let (mut at, mut n) = (start, 1u32);
        while at < self.limit && n < 400 {
            f(self, at, n);
            at += period + self.rng.between(0, period / 5 + 1);
            n += 1;
        }
    }

    fn refused_creates(&mut self, t0: i64, code: Code) -> u32 {
        let (status, reason, message) = match code {
            Code::ApiQuotaExceeded => (
                403,
                "Forbidden",
                format!(
                    "pods \"{}\" is forbidden: exceeded quota: compute-resources, requested: limits.cpu=500m, used: limits.cpu=19750m, limited: limits.cpu=20",
                    self.shape.name
                ),
            ),
            Code::ApiAdmissionDenied => (
                403,
                "Forbidden",
                "admission webhook \"validate.policy.example.com\" denied the request: container \"app\" must set resources.limits.memory".to_string(),
            ),
            _ => (
                500,
                "InternalError",
                "Internal error occurred: failed calling webhook \"mutate.sidecar.example.com\": failed to call webhook: Post \"https://sidecar-injector.mesh.svc:443/mutate?timeout=10s\": context deadline exceeded".to_string(),
            ),
        };
        // The ReplicaSet controller's rate limiter: 5 ms doubling, capped at 1000 s; a
        // quota storm shows as ~16 refusals in 3 minutes.
        let (mut at, mut wait, mut n) = (t0, 5 * MS, 0u32);
        let verb_msg = format!("Error creating: {message}");
        while at < self.limit && n < 64 {
            n += 1;
            self.push(
                at,
                Act::CreateRefused {
                    code: status,
                    reason,
                    message: message.clone(),
                },
            );
            let count = n;
            self.push(
                at + 2 * MS,
                Act::OwnerEvent {
                    reason: "FailedCreate",
                    message: verb_msg.clone(),
                    warning: true,
                    count,
                },
            );
            at += wait.max(250 * MS) + self.rng.between(0, 200 * MS);
            wait = (wait * 2).min(1000 * S);
        }
        n
    }

    fn create(&mut self, t0: i64, code: Code) -> Reached {
        self.push(t0, Act::Create);
        self.m.created = Some(t0);
        let owner_msg = match self.wl.kind {
            WorkloadKind::StatefulSet => format!(
                "create Pod {} in StatefulSet {} successful",
                self.shape.name, self.wl.name
            ),
            _ => format!("Created pod: {}", self.shape.name),
        };
        self.push(
            t0 + 3 * MS,
            Act::OwnerEvent {
                reason: "SuccessfulCreate",
                message: owner_msg,
                warning: false,
                count: 1,
            },
        );
        let Some(bound) = self.schedule(t0, code) else {
            return Reached::Stuck;
        };
        self.kubelet_start(bound, code)
    }

    fn schedule(&mut self, t0: i64, code: Code) -> Option<i64> {
        let nodes = self.nodes.len();
        let mut at = t0 + self.rng.lognormal_us(20.0, 0.7) + 500;
        let unschedulable = match code {
            Code::FailedScheduling_Insufficient => Some(format!(
                "0/{nodes} nodes are available: {} Insufficient cpu, {} Insufficient memory. preemption: 0/{nodes} nodes are available: {nodes} No preemption victims found for incoming pod.",
                nodes - nodes / 3, nodes / 3
            )),
            Code::FailedScheduling_Affinity => Some(format!(
                "0/{nodes} nodes are available: {nodes} node(s) didn't match Pod's node affinity/selector. preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling."
            )),
            Code::FailedScheduling_Taint => Some(format!(
                "0/{nodes} nodes are available: {nodes} node(s) had untolerated taint {{dedicated: gpu}}. preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling."
            )),
            Code::FailedScheduling_Volume => Some(format!(
                "0/{nodes} nodes are available: persistentvolumeclaim \"data-{}\" not found. preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling.",
                self.shape.name
            )),
            _ => None,
        };
        if let Some(message) = unschedulable {
            // The scheduler retries on cluster events and on its back-off (1 s doubling to
            // 10 s), then every 5 min from the unschedulable queue; the Event is a series.
            let first = at;
            let mut change = StatusChange::default();
            change.conditions.push((
                "PodScheduled",
                false,
                Some("Unschedulable"),
                Some(message.clone()),
            ));
            self.push(first, Act::ControllerStatus(StatusActor::Scheduler, change));
            let note = message.clone();
            self.every(first + 2 * MS, 60 * S, |p, at, n| {
                p.push(
                    at,
                    Act::SchedulerEvent {
                        reason: "FailedScheduling",
                        action: "Scheduling",
                        note: note.clone(),
                        warning: true,
                        series: if n == 1 { 0 } else { n },
                    },
                );
            });
            return None;
        }
        if code == Code::ScheduleTooMuchTime {
            at += self.rng.between(8 * S, 30 * S);
        }
        if code == Code::PreemptionWait {
            let nodes = self.nodes.len();
            let target = self.node().name.clone();
            let message = format!(
                "0/{nodes} nodes are available: {nodes} Insufficient cpu. preemption: 0/{nodes} nodes are available: {} No preemption victims found for incoming pod, 1 Preemption is possible.",
                nodes.saturating_sub(1)
            );
            let mut change = StatusChange::default();
            change.conditions.push((
                "PodScheduled",
                false,
                Some("Unschedulable"),
                Some(message.clone()),
            ));
            self.push(at, Act::ControllerStatus(StatusActor::Scheduler, change));
            self.push(
                at + MS,
                Act::SchedulerEvent {
                    reason: "FailedScheduling",
                    action: "Scheduling",
                    note: message,
                    warning: true,
                    series: 0,
                },
            );
            let nominated = StatusChange {
                nominated: Some(target),
                ..StatusChange::default()
            };
            self.push(
                at + 3 * MS,
                Act::ControllerStatus(StatusActor::Scheduler, nominated),
            );
            // The victims get their grace period before the pod fits.
            at += self.rng.between(5 * S, 35 * S);
        }
        self.push(at, Act::Bind);
        self.m.bound = Some(at);
        self.bound = true;
        let note = format!(
            "Successfully assigned {}/{} to {}",
            self.wl.namespace,
            self.shape.name,
            self.node().name
        );
        let t_arg = at + self.rng.between(MS, 6 * MS);
        self.push(
            t_arg,
            Act::SchedulerEvent {
                reason: "Scheduled",
                action: "Binding",
                note,
                warning: false,
                series: 0,
            },
        );
        Some(at)
    }

    fn initial_status(&self) -> StatusChange {
        let mut c = StatusChange {
            phase: Some("Pending"),
            host_ip: true,
            start_time: true,
            ..StatusChange::default()
        };
        let has_init = !self.wl.init.is_empty();
        c.conditions
            .push(("PodReadyToStartContainers", false, None, None));
        if has_init {
            let names: Vec<&str> = self.wl.init.iter().map(|i| i.name.as_str()).collect();
            c.conditions.push((
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    names.join(" ")
                )),
            ));
        } else {
            c.conditions.push(("Initialized", true, None, None));
        }
        self.not_ready(&mut c);
        for i in 0..self.wl.init.len() {
            c.containers.push((
                Slot {
                    init: true,
                    index: i,
                },
                CState::Waiting {
                    reason: "PodInitializing",
                    message: None,
                },
            ));
        }
        let reason = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        for i in 0..self.wl.containers.len() {
            c.containers.push((
                Slot {
                    init: false,
                    index: i,
                },
                CState::Waiting {
                    reason,
                    message: None,
                },
            ));
        }
        c
    }

    /// `Ready` and `ContainersReady` False, naming the containers not ready.
    fn not_ready(&self, c: &mut StatusChange) {
        let unready = self.unready_message();
        for condition in ["Ready", "ContainersReady"] {
            c.conditions.push((
                condition,
                false,
                Some("ContainersNotReady"),
                Some(unready.clone()),
            ));
        }
    }

    fn unready_message(&self) -> String {
        let names: Vec<&str> = self.wl.containers.iter().map(|c| c.name.as_str()).collect();
        format!("containers with unready status: [{}]", names.join(" "))
    }

    fn kubelet_start(&mut self, bound: i64, code: Code) -> Reached {
        let mut picked = bound + self.k(120.0);
        match code {
            Code::KubeletDelay => picked += self.rng.between(15 * S, 60 * S),
            Code::NodeNotReady => {
                let at = bound + self.rng.between(S, 5 * S);
                self.push(at, Act::NodeReady(false));
                self.event_by(
                    at + 40 * S,
                    Component::NodeController,
                    "NodeNotReady",
                    "Node is not ready".into(),
                    true,
                    None,
                );
                return Reached::Stuck;
            }
            Code::AdmissionRejected_OutOfResource => {
                let message = "Node didn't have enough resource: cpu, requested: 2000, used: 3500, capacity: 4000".to_string();
                self.event(picked, "OutOfcpu", message.clone(), true, None);
                let mut c = self.initial_status();
                c.phase = Some("Failed");
                c.pod_reason = Some(("OutOfcpu", format!("Pod was rejected: {message}")));
                self.status(picked + 2 * MS, c);
                return Reached::Stuck;
            }
            _ => {}
        }
        let first = self.initial_status();
        self.status(picked, first);
        let Some(volumes) = self.volumes(bound, picked, code) else {
            return Reached::Stuck;
        };
        let Some(sandbox) = self.sandbox(volumes, code) else {
            return Reached::Stuck;
        };
        let Some(inited) = self.init_containers(sandbox, code) else {
            return Reached::Stuck;
        };
        let Some(started) = self.main_containers(inited, code) else {
            return Reached::Stuck;
        };
        self.readiness(started, code)
    }

    fn volumes(&mut self, bound: i64, picked: i64, code: Code) -> Option<i64> {
        let mut ready = picked + self.k(40.0);
        let volume = self
            .shape
            .claim
            .clone()
            .or_else(|| self.shape.config_map.as_ref().map(|_| "config".to_string()));
        let pv = format!("pvc-{}", &self.shape.uid[..18]);
        let timeout = |unmounted: &str, unattached: &str| {
            format!("Unable to attach or mount volumes: unmounted volumes=[{unmounted}], unattached volumes=[{unattached}], failed to process volumes=[]: timed out waiting for the condition")
        };
        match code {
            Code::VolumeSourceMissing => {
                let cm = self.shape.config_map.clone().unwrap_or_default();
                let message = format!(
                    "MountVolume.SetUp failed for volume \"config\" : configmap \"{cm}\" not found"
                );
                // The volume manager retries with its own back-off (0.5 s doubling to 2m2s).
                let (mut at, mut wait) = (picked + self.k(30.0), 500 * MS);
                while at < picked + 123 * S {
                    self.event(at, "FailedMount", message.clone(), true, None);
                    at += wait;
                    wait = (wait * 2).min(122 * S);
                }
                let agg = timeout("config", "");
                self.every(picked + 123 * S, 123 * S, |p, at, _| {
                    p.event(at, "FailedMount", agg.clone(), true, None);
                });
                return None;
            }
            Code::VolumeMountTimeout => {
                let name = volume.unwrap_or_else(|| "config".into());
                let agg = timeout(&name, "");
                self.every(picked + 123 * S, 123 * S, |p, at, _| {
                    p.event(at, "FailedMount", agg.clone(), true, None);
                });
                return None;
            }
            Code::VolumeMultiAttach => {
                let message = format!("Multi-Attach error for volume \"{pv}\" Volume is already exclusively attached to one node and can't be attached to another");
                let t_arg = bound + self.rng.between(100 * MS, S);
                self.every(t_arg, 30 * S, |p, at, _| {
                    p.event_by(
                        at,
                        Component::AttachDetach,
                        "FailedAttachVolume",
                        message.clone(),
                        true,
                        None,
                    );
                });
                let agg = timeout("data", "data");
                self.every(picked + 123 * S, 123 * S, |p, at, _| {
                    p.event(at, "FailedMount", agg.clone(), true, None);
                });
                return None;
            }
            _ => {}
        }
        if self.shape.claim.is_some() {
            let mut attached = bound + self.rng.lognormal_us(1500.0, 0.5);
            if code == Code::VolumeAttachTooMuchTime {
                attached += self.rng.between(40 * S, 90 * S);
            }
            self.event_by(
                attached,
                Component::AttachDetach,
                "SuccessfulAttachVolume",
                format!("AttachVolume.Attach succeeded for volume \"{pv}\""),
                false,
                None,
            );
            ready = ready.max(attached + self.k(300.0));
        }
        Some(ready)
    }

    fn sandbox(&mut self, from: i64, code: Code) -> Option<i64> {
        let sandbox_err = |what: &str| format!("Failed to create pod sandbox: {what}");
        let id = format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        let failure = match code {
            Code::IPAllocationFailed => Some((
                "FailedCreatePodSandBox",
                sandbox_err(&format!("rpc error: code = Unknown desc = failed to setup network for sandbox \"{id}\": plugin type=\"host-local\" failed (add): failed to allocate for range 0: no IP addresses available in range set: 10.64.{}.1-10.64.{}.254", self.node().index % 256, self.node().index % 256)),
                5 * S,
            )),
            Code::CNISetupFailed => Some((
                "FailedCreatePodSandBox",
                sandbox_err(&format!("rpc error: code = Unknown desc = failed to setup network for sandbox \"{id}\": plugin type=\"calico\" failed (add): error getting ClusterInformation: Get \"https://10.96.0.1:443/apis/crd.projectcalico.org/v1/clusterinformations/default\": x509: certificate signed by unknown authority")),
                5 * S,
            )),
            Code::SandboxCreateTimeout => Some((
                "FailedCreatePodSandBox",
                sandbox_err("rpc error: code = DeadlineExceeded desc = context deadline exceeded"),
                // The kubelet's --runtime-request-timeout (2 m).
                120 * S,
            )),
            Code::SandboxCreateFailed => Some((
                "FailedCreatePodSandBox",
                sandbox_err("rpc error: code = Unknown desc = failed to get sandbox image \"registry.k8s.io/pause:3.10\": failed to pull image \"registry.k8s.io/pause:3.10\": failed to pull and unpack image \"registry.k8s.io/pause:3.10\": failed to resolve reference \"registry.k8s.io/pause:3.10\": failed to do request: Head \"https://registry.k8s.io/v2/pause/manifests/3.10\": dial tcp 34.96.108.209:443: i/o timeout"),
                5 * S,
            )),
            Code::NetworkNotReady => Some((
                "NetworkNotReady",
                "network is not ready: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized".to_string(),
                2 * S,
            )),
            _ => None,
        };
        if let Some((reason, message, first_after)) = failure {
            let start = from + first_after + self.k(300.0);
            self.backoff(start, |p, at, _| {
                p.event(at, reason, message.clone(), true, None);
            });
            return None;
        }
        let mut ready = from + self.k(700.0);
        if code == Code::PodSetupTooMuchTime {
            ready += self.rng.between(20 * S, 40 * S);
        }
        let mut c = StatusChange::default();
        c.conditions
            .push(("PodReadyToStartContainers", true, None, None));
        c.assign_ip = true;
        self.status(ready, c);
        if code == Code::SandboxRecreateLoop {
            let loops = 3 + self.rng.below(4) as u32;
            for _ in 0..loops {
                ready += self.rng.between(8 * S, 15 * S);
                self.event(
                    ready,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.".into(),
                    false,
                    None,
                );
                let mut down = StatusChange::default();
                down.conditions
                    .push(("PodReadyToStartContainers", false, None, None));
                let t_arg = ready + self.k(50.0);
                self.status(t_arg, down);
                ready += self.k(900.0);
                let mut up = StatusChange::default();
                up.conditions
                    .push(("PodReadyToStartContainers", true, None, None));
                self.status(ready, up);
            }
        }
        Some(ready)
    }

    /// Ensures the image of `slot`: cached, or pulled through the node's serialized
    /// puller. Returns when the image is there, or `None` if the pull fails for good.
    fn pull(&mut self, at: i64, slot: Slot, image: &str, bytes: u64, code: Code) -> Option<i64> {
        let node = self.shape.node.unwrap_or(0);
        let cached = self.nodes[node].has_image(image, self.seed);
        let fault_here = !slot.init && slot.index == 0;
        let failure = match code {
            Code::ImageNotFound | Code::UpgradeImageNotFound if fault_here => Some(format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
            )),
            Code::ImagePullAuthFailed if fault_here => Some(format!(
                "rpc error: code = Unknown desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"
            )),
            Code::ImageRegistryUnavailable if fault_here => Some(format!(
                "rpc error: code = Unknown desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": failed to do request: Head \"https://registry.example.com/v2/{}/manifests/latest\": dial tcp 10.0.0.5:443: i/o timeout",
                image.rsplit('/').next().unwrap_or(image).split(':').next().unwrap_or("")
            )),
            _ => None,
        };
        if code == Code::InvalidImageName && fault_here {
            let message = format!("Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format: repository name (Team/{}) must be lowercase", image.rsplit('/').next().unwrap_or(""));
            self.every(at, 15 * S, |p, t, _| {
                p.event(t, "InspectFailed", message.clone(), true, Some(slot));
                p.event(
                    t + MS,
                    "Failed",
                    "Error: InvalidImageName".into(),
                    true,
                    Some(slot),
                );
                let mut c = StatusChange::default();
                c.containers.push((
                    slot,
                    CState::Waiting {
                        reason: "InvalidImageName",
                        message: Some(message.clone()),
                    },
                ));
                p.status(t + 3 * MS, c);
            });
            return None;
        }
        if let Some(err) = failure {
            let pulling = format!("Pulling image \"{image}\"");
            let failed = format!("Failed to pull image \"{image}\": {err}");
            let back = format!("Back-off pulling image \"{image}\"");
            self.backoff(at, |p, t, _| {
                p.event(t, "Pulling", pulling.clone(), false, Some(slot));
                let failed_at = t + p.rng.between(300 * MS, 3 * S);
                p.event(failed_at, "Failed", failed.clone(), true, Some(slot));
                p.event(
                    failed_at + MS,
                    "Failed",
                    "Error: ErrImagePull".into(),
                    true,
                    Some(slot),
                );
                let mut c = StatusChange::default();
                c.containers.push((
                    slot,
                    CState::Waiting {
                        reason: "ErrImagePull",
                        message: Some(err.clone()),
                    },
                ));
                p.status(failed_at + 5 * MS, c);
                let backoff_at = failed_at + p.rng.between(S, 3 * S);
                p.event(backoff_at, "BackOff", back.clone(), false, Some(slot));
                p.event(
                    backoff_at + MS,
                    "Failed",
                    "Error: ImagePullBackOff".into(),
                    true,
                    Some(slot),
                );
                let mut c = StatusChange::default();
                c.containers.push((
                    slot,
                    CState::Waiting {
                        reason: "ImagePullBackOff",
                        message: Some(format!(
                            "Back-off pulling image \"{image}\": ErrImagePull: {err}"
                        )),
                    },
                ));
                p.status(backoff_at + 4 * MS, c);
            });
            return None;
        }
        // An injected slow pull is of an image the node does not have, and it does not
        // hold the node's puller: its slowness stays on the pod it was injected into.
        let slow_pull = fault_here
            && matches!(
                code,
                Code::ImagePullTooMuchTime | Code::ImagePullQueueTooMuchTime
            );
        if cached && !slow_pull {
            let t = at + self.k(5.0);
            self.event(
                t,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
                false,
                Some(slot),
            );
            return Some(t);
        }
        self.event(
            at,
            "Pulling",
            format!("Pulling image \"{image}\""),
            false,
            Some(slot),
        );
        let mut bytes = bytes;
        // ~60 MB/s from the registry, slower on slow nodes.
        let mut pull =
            ((bytes as f64 / 60e6) * 1e6 * self.speed()) as i64 + self.rng.lognormal_us(400.0, 0.4);
        let mut start = at;
        if fault_here {
            match code {
                Code::ImagePullTooMuchTime => {
                    bytes = 2_147_483_648 + self.rng.below(500_000_000);
                    pull = self.rng.between(90 * S, 180 * S);
                }
                Code::ImagePullQueueTooMuchTime => start = at + self.rng.between(40 * S, 80 * S),
                _ => {}
            }
        }
        if !slow_pull {
            // Pods are planned in creation order: no later plan pulls before this pod's
            // creation, so older bookings can go.
            self.nodes[node].forget_pulls_before(self.shape.created_at);
            start = self.nodes[node].book_pull(at, pull);
            if self.m.upgrade_requested.is_none() {
                self.queued = self.queued.max(start - at);
            }
        }
        let done = start + pull;
        if self.m.upgrade_requested.is_none() {
            self.owned("pull", at, done);
            self.owned("transfer", start, done);
        }
        self.nodes[node].images.insert(image.to_string());
        self.event(
            done,
            "Pulled",
            format!(
                "Successfully pulled image \"{image}\" in {} ({} including waiting). Image size: {bytes} bytes.",
                go_duration(pull),
                go_duration(done - at)
            ),
            false,
            Some(slot),
        );
        Some(done)
    }

    /// Created and Started Events of a container, from when its image is there.
    fn create_and_start(&mut self, at: i64, slot: Slot, code: Code) -> Option<i64> {
        let name = self.container_name(slot);
        let fault_here = !slot.init && slot.index == 0;
        if fault_here && code == Code::CreateContainerConfigError {
            let secret = self.shape.secret_env.clone().unwrap_or_default();
            let image = self.shape.images[0].clone();
            self.every(at, 20 * S, |p, t, _| {
                p.event(
                    t,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                    false,
                    Some(slot),
                );
                p.event(
                    t + 2 * MS,
                    "Failed",
                    format!("Error: secret \"{secret}\" not found"),
                    true,
                    Some(slot),
                );
                let mut c = StatusChange::default();
                c.containers.push((
                    slot,
                    CState::Waiting {
                        reason: "CreateContainerConfigError",
                        message: Some(format!("secret \"{secret}\" not found")),
                    },
                ));
                p.status(t + 5 * MS, c);
            });
            return None;
        }
        if fault_here && code == Code::CreateContainerError {
            let cname = format!(
                "{name}_{}_{}_{}_0",
                self.shape.name, self.wl.namespace, self.shape.uid
            );
            let holder = format!(
                "{:016x}{:016x}{:016x}{:016x}",
                self.rng.next_u64(),
                self.rng.next_u64(),
                self.rng.next_u64(),
                self.rng.next_u64()
            );
            let message = format!("failed to reserve container name \"{cname}\": name \"{cname}\" is reserved for \"{holder}\"");
            let t_arg = at + self.k(4000.0);
            self.backoff(t_arg, |p, t, _| {
                p.event(t, "Failed", format!("Error: {message}"), true, Some(slot));
                let mut c = StatusChange::default();
                c.containers.push((
                    slot,
                    CState::Waiting {
                        reason: "CreateContainerError",
                        message: Some(message.clone()),
                    },
                ));
                p.status(t + 4 * MS, c);
            });
            return None;
        }
        let created = at + self.k(60.0);
        let msg = self.created_message(&name);
        self.event(created, "Created", msg, false, Some(slot));
        if fault_here && matches!(code, Code::RunContainerError) {
            let message = "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/app/server\": stat /app/server: no such file or directory: unknown".to_string();
            let t_arg = created + self.k(80.0);
            self.event(
                t_arg,
                "Failed",
                format!("Error: {message}"),
                true,
                Some(slot),
            );
            let mut c = StatusChange::default();
            c.containers.push((
                slot,
                CState::Terminated {
                    exit: 128,
                    reason: "StartError",
                },
            ));
            let t_arg = created + self.k(100.0);
            self.status(t_arg, c);
            self.crash_loop(created + S, slot, None);
            return None;
        }
        let mut started = created + self.k(100.0);
        if fault_here && code == Code::ContainerStartTooMuchTime {
            started += self.rng.between(15 * S, 30 * S);
        }
        let msg = self.started_message(&name);
        self.event(started, "Started", msg, false, Some(slot));
        Some(started)
    }

    /// A container that keeps exiting: BackOff Events, CrashLoopBackOff waits, restarts.
    fn crash_loop(&mut self, from: i64, slot: Slot, exit: Option<(i32, &'static str)>) {
        let name = self.container_name(slot);
        let pod_ref = self.pod_ref();
        let created = self.created_message(&name);
        let started = self.started_message(&name);
        let back = if self.minor() >= 32 {
            format!("Back-off restarting failed container {name} in pod {pod_ref}")
        } else {
            "Back-off restarting failed container".to_string()
        };
        let (mut at, mut wait) = (from, 10 * S);
        let mut n = 0;
        while at < self.limit && n < 200 {
            n += 1;
            let mut c = StatusChange::default();
            c.containers.push((
                slot,
                CState::Waiting {
                    reason: "CrashLoopBackOff",
                    message: Some(format!(
                        "back-off {} restarting failed container={name} pod={pod_ref}",
                        go_duration(wait)
                    )),
                },
            ));
            self.status(at, c);
            self.event(at + MS, "BackOff", back.clone(), true, Some(slot));
            let restart = at + wait;
            self.event(restart, "Created", created.clone(), false, Some(slot));
            let started_at = restart + self.k(100.0);
            self.event(started_at, "Started", started.clone(), false, Some(slot));
            let mut run = StatusChange::default();
            run.containers
                .push((slot, CState::Running { ready: false }));
            let t_arg = started_at + self.k(40.0);
            self.status(t_arg, run);
            let dies = restart + self.rng.between(S, 5 * S);
            let (code, reason) = exit.unwrap_or((128, "StartError"));
            let mut dead = StatusChange::default();
            dead.containers
                .push((slot, CState::Terminated { exit: code, reason }));
            self.status(dies, dead);
            at = dies + self.k(50.0);
            wait = (wait * 2).min(300 * S);
        }
    }

    fn init_containers(&mut self, from: i64, code: Code) -> Option<i64> {
        let mut at = from;
        let count = self.wl.init.len();
        for i in 0..count {
            let slot = Slot {
                init: true,
                index: i,
            };
            let image = self.shape.init_images[i].clone();
            let bytes = self.wl.init[i].image_bytes;
            at = self.pull(at, slot, &image, bytes, code)?;
            at = self.create_and_start(at, slot, code)?;
            let run_started = at;
            let sidecar = self.wl.init[i].sidecar;
            let mut c = StatusChange::default();
            c.containers
                .push((slot, CState::Running { ready: sidecar }));
            let last = i + 1 == count || self.wl.init[i + 1..].iter().all(|c| c.sidecar);
            if sidecar && last {
                // Every init container that runs to completion has: a started sidecar
                // is all the rest needs.
                self.initialized(&mut c);
            }
            at += self.k(30.0);
            self.status(at, c);
            if sidecar {
                continue;
            }
            at += self.rng.lognormal_us(1500.0, 0.6);
            if code == Code::InitContainerFailed && self.wl.init[..i].iter().all(|c| c.sidecar) {
                let mut c = StatusChange::default();
                c.containers.push((
                    slot,
                    CState::Terminated {
                        exit: 1,
                        reason: "Error",
                    },
                ));
                self.status(at, c);
                let t_arg = at + self.k(50.0);
                self.crash_loop(t_arg, slot, Some((1, "Error")));
                return None;
            }
            self.owned("init_run", run_started, at);
            let mut c = StatusChange::default();
            c.containers.push((
                slot,
                CState::Terminated {
                    exit: 0,
                    reason: "Completed",
                },
            ));
            if last {
                self.initialized(&mut c);
            }
            self.status(at, c);
        }
        Some(at)
    }

    fn main_containers(&mut self, from: i64, code: Code) -> Option<i64> {
        let mut at = from;
        let count = self.wl.containers.len();
        for i in 0..count {
            let slot = Slot {
                init: false,
                index: i,
            };
            let image = self.shape.images[i].clone();
            let bytes = self.wl.containers[i].image_bytes;
            at = self.pull(at, slot, &image, bytes, code)?;
            at = self.create_and_start(at, slot, code)?;
            if self.wl.containers[i].post_start || (i == 0 && self.shape.post_start) {
                if i == 0 && code == Code::FailedPostStartHook {
                    let fail = at + self.rng.between(S, 3 * S);
                    self.event(
                        fail,
                        "FailedPostStartHook",
                        "PostStartHook failed".into(),
                        true,
                        Some(slot),
                    );
                    self.event(
                        fail + MS,
                        "Killing",
                        "FailedPostStartHook".into(),
                        false,
                        Some(slot),
                    );
                    let mut c = StatusChange::default();
                    c.containers.push((
                        slot,
                        CState::Terminated {
                            exit: 137,
                            reason: "Error",
                        },
                    ));
                    let t_arg = fail + self.k(300.0);
                    self.status(t_arg, c);
                    self.crash_loop(fail + S, slot, Some((137, "Error")));
                    return None;
                }
                let hook = if i == 0 && code == Code::PostStartHookTooMuchTime {
                    self.rng.between(60 * S, 120 * S)
                } else {
                    self.rng.lognormal_us(400.0, 0.5)
                };
                self.owned("post_start", at, at + hook);
                at += hook;
            }
        }
        // One patch once every container runs: the SIG SLI's end point.
        at += self.k(40.0);
        let mut c = StatusChange {
            phase: Some("Running"),
            ..StatusChange::default()
        };
        let probes = self.shape.readiness_probe;
        for i in 0..count {
            let ready = !(i == 0 && (probes || self.shape.startup_probe));
            c.containers.push((
                Slot {
                    init: false,
                    index: i,
                },
                CState::Running { ready },
            ));
        }
        let all_ready = !probes && !self.shape.startup_probe;
        if all_ready && self.shape.readiness_gate.is_none() {
            c.conditions.push(("ContainersReady", true, None, None));
            c.conditions.push(("Ready", true, None, None));
            if self.wl.kind != WorkloadKind::Job {
                self.m.ready = Some(at);
            }
        }
        self.status(at, c);
        self.m.containers_started = Some(at);
        Some(at)
    }

    fn readiness(&mut self, started: i64, code: Code) -> Reached {
        let slot = Slot {
            init: false,
            index: 0,
        };
        let name = self.container_name(slot);
        let ip = "10.64.0.10";
        match code {
            Code::CrashLoopBackOff | Code::OOMKilled => {
                let exit = if code == Code::OOMKilled {
                    (137, "OOMKilled")
                } else {
                    (1, "Error")
                };
                let dies = started + self.rng.between(S, 6 * S);
                let mut c = StatusChange::default();
                c.containers.push((
                    slot,
                    CState::Terminated {
                        exit: exit.0,
                        reason: exit.1,
                    },
                ));
                self.status(dies, c);
                let t_arg = dies + self.k(50.0);
                self.crash_loop(t_arg, slot, Some(exit));
                return Reached::Stuck;
            }
            Code::StartupProbeFailed => {
                let message = format!(
                    "Startup probe failed: dial tcp {ip}:8080: connect: connection refused"
                );
                let kill = format!("Container {name} failed startup probe, will be restarted");
                let mut at = started + 10 * S;
                while at < self.limit {
                    for _ in 0..3 {
                        self.event(at, "Unhealthy", message.clone(), true, Some(slot));
                        at += 10 * S;
                    }
                    self.event(at, "Killing", kill.clone(), false, Some(slot));
                    let mut c = StatusChange::default();
                    c.containers.push((
                        slot,
                        CState::Terminated {
                            exit: 137,
                            reason: "Error",
                        },
                    ));
                    let t_arg = at + self.k(400.0);
                    self.status(t_arg, c);
                    let mut run = StatusChange::default();
                    run.containers
                        .push((slot, CState::Running { ready: false }));
                    let t_arg = at + self.k(1500.0);
                    self.status(t_arg, run);
                    at += 12 * S;
                }
                return Reached::Stuck;
            }
            Code::ContainerReadinessFailed => {
                let message =
                    "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string();
                self.every(started + 5 * S, 10 * S, |p, at, _| {
                    p.event(at, "Unhealthy", message.clone(), true, Some(slot));
                });
                return Reached::Stuck;
            }
            _ => {}
        }
        if self.wl.kind == WorkloadKind::Job {
            let done = started + self.rng.lognormal_us(15_000.0, 0.6);
            let mut c = StatusChange {
                phase: Some("Succeeded"),
                ..StatusChange::default()
            };
            for i in 0..self.wl.containers.len() {
                c.containers.push((
                    Slot {
                        init: false,
                        index: i,
                    },
                    CState::Terminated {
                        exit: 0,
                        reason: "Completed",
                    },
                ));
            }
            c.conditions
                .push(("Ready", false, Some("PodCompleted"), None));
            c.conditions
                .push(("ContainersReady", false, Some("PodCompleted"), None));
            self.status(done, c);
            return Reached::Delivered(done);
        }
        let mut ready = self.m.ready.unwrap_or(started);
        if self.m.ready.is_none() {
            ready = started
                + self.rng.lognormal_us(
                    if self.shape.startup_probe {
                        4000.0
                    } else {
                        1500.0
                    },
                    0.4,
                );
            let mut c = StatusChange::default();
            c.containers.push((slot, CState::Running { ready: true }));
            c.conditions.push(("ContainersReady", true, None, None));
            if let Some(gate) = self.shape.readiness_gate.clone() {
                c.conditions.push((
                    "Ready",
                    false,
                    Some("ReadinessGatesNotReady"),
                    Some(format!(
                        "corresponding condition of pod readiness gate \"{gate}\" does not exist."
                    )),
                ));
            } else {
                c.conditions.push(("Ready", true, None, None));
            }
            self.status(ready, c);
            self.owned("readiness", started, ready);
            if self.shape.readiness_gate.is_some() {
                if code == Code::ReadinessGateNotReady {
                    return Reached::Stuck;
                }
                let gate_at = ready + self.rng.lognormal_us(2500.0, 0.5);
                let mut g = StatusChange::default();
                g.conditions.push(("Gate", true, None, None));
                self.push(
                    gate_at,
                    Act::ControllerStatus(StatusActor::GateController, g),
                );
                let containers_ready = ready;
                ready = gate_at + self.k(200.0);
                self.owned("gate", containers_ready, ready);
                let mut c = StatusChange::default();
                c.conditions.push(("Ready", true, None, None));
                self.status(ready, c);
            }
            self.m.ready = Some(ready);
        }
        if code == Code::Evicted {
            let at = ready + self.rng.between(30 * S, 120 * S);
            let message = format!(
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 92160Ki. Container {name} was using 1432Mi, request is 256Mi, has larger consumption of memory. "
            );
            self.event(at, "Evicted", message.clone(), true, None);
            let mut c = StatusChange {
                phase: Some("Failed"),
                ..StatusChange::default()
            };
            c.pod_reason = Some(("Evicted", message));
            c.conditions.push((
                "DisruptionTarget",
                true,
                Some("TerminationByKubelet"),
                Some("The node was low on resource: memory. ".into()),
            ));
            c.conditions.push(("Ready", false, Some("PodFailed"), None));
            c.conditions
                .push(("ContainersReady", false, Some("PodFailed"), None));
            for i in 0..self.wl.containers.len() {
                c.containers.push((
                    Slot {
                        init: false,
                        index: i,
                    },
                    CState::Terminated {
                        exit: 137,
                        reason: "Error",
                    },
                ));
            }
            let t_arg = at + self.k(2000.0);
            self.status(t_arg, c);
            return Reached::Stuck;
        }
        Reached::Delivered(ready)
    }

    fn upgrade(&mut self, at: i64, code: Code) {
        let slot = Slot {
            init: false,
            index: 0,
        };
        let name = self.container_name(slot);
        let old = self.shape.images[0].clone();
        let base = old
            .rsplit_once(':')
            .map_or(old.as_str(), |(b, _)| b)
            .to_string();
        let image = if code == Code::UpgradeImageNotFound {
            format!("{base}:2.0.0-missing")
        } else {
            format!("{base}:2.0.{}", self.rng.below(9))
        };
        self.push(
            at,
            Act::Upgrade {
                image: image.clone(),
            },
        );
        self.m.upgrade_requested = Some(at);
        let kill = at + self.k(300.0);
        self.event(
            kill,
            "Killing",
            format!("Container {name} definition changed, will be restarted"),
            false,
            Some(slot),
        );
        let mut c = StatusChange::default();
        c.containers.push((
            slot,
            CState::Terminated {
                exit: 0,
                reason: "Completed",
            },
        ));
        self.not_ready(&mut c);
        let stopped = kill + self.k(600.0);
        self.status(stopped, c);
        let bytes = self.wl.containers[0].image_bytes;
        let from = stopped + self.k(20.0);
        let Some(pulled) = self.pull(from, slot, &image, bytes, code) else {
            return;
        };
        let Some(started) = self.create_and_start(pulled, slot, code) else {
            return;
        };
        let mut run = StatusChange::default();
        run.containers
            .push((slot, CState::Running { ready: false }));
        let t_arg = started + self.k(40.0);
        self.status(t_arg, run);
        if code == Code::UpgradeRunContainerError {
            let dies = started + self.rng.between(S, 4 * S);
            let mut c = StatusChange::default();
            c.containers.push((
                slot,
                CState::Terminated {
                    exit: 1,
                    reason: "Error",
                },
            ));
            self.status(dies, c);
            let t_arg = dies + self.k(50.0);
            self.crash_loop(t_arg, slot, Some((1, "Error")));
            return;
        }
        let ready = started + self.rng.lognormal_us(1500.0, 0.4);
        let mut c = StatusChange::default();
        c.containers.push((slot, CState::Running { ready: true }));
        c.conditions.push(("ContainersReady", true, None, None));
        c.conditions.push(("Ready", true, None, None));
        self.status(ready, c);
        self.m.upgraded = Some(ready);
    }

    /// Plans the delete; returns the code it really ends with (a fault of the kubelet's
    /// part cannot strike a pod no kubelet has).
    fn delete(&mut self, at: i64, code: Code) -> Code {
        if code == Code::EvictionBlockedByPDB {
            // A node drain retries the eviction every 5 s; the budget never allows it.
            self.every(at, 5 * S, |p, t, _| p.push(t, Act::Evict { refused: true }));
            return code;
        }
        let by = if self.rng.chance(0.7) {
            Deleter::Controller
        } else {
            Deleter::User
        };
        let grace = self.wl.grace_seconds;
        self.push(at, Act::Delete { by, grace });
        self.m.delete_requested = Some(at);
        if by == Deleter::Controller && self.wl.kind != WorkloadKind::Job {
            let message = match self.wl.kind {
                WorkloadKind::StatefulSet => format!(
                    "delete Pod {} in StatefulSet {} successful",
                    self.shape.name, self.wl.name
                ),
                _ => format!("Deleted pod: {}", self.shape.name),
            };
            self.push(
                at + 2 * MS,
                Act::OwnerEvent {
                    reason: "SuccessfulDelete",
                    message,
                    warning: false,
                    count: 1,
                },
            );
        }
        let finalizer_removed = match (&self.shape.finalizer, code) {
            (Some(_), Code::FinalizerBlocked) => None,
            (Some(_), _) => Some(at + self.rng.lognormal_us(800.0, 0.5)),
            (None, _) => Some(at),
        };
        if self.shape.finalizer.is_some() {
            if let Some(t) = finalizer_removed {
                self.push(t, Act::RemoveFinalizer);
            }
        }
        if !self.bound {
            // Never scheduled: the apiserver removes it at once (after its finalizers).
            if let Some(t) = finalizer_removed {
                self.m.gone = Some(t.max(at));
            }
            return if code == Code::FinalizerBlocked {
                code
            } else {
                Code::DeleteSuccess
            };
        }
        if code == Code::NodeUnreachableTerminating {
            self.push(at + S, Act::NodeReady(false));
            // The node lifecycle controller marks the pods of a node it stopped hearing
            // from (node-monitor-grace-period, 40 s).
            self.event_by(
                at + 41 * S,
                Component::NodeController,
                "NodeNotReady",
                "Node is not ready".into(),
                true,
                None,
            );
            let gc = at + self.rng.between(360 * S, 720 * S);
            let mut c = StatusChange::default();
            c.conditions.push((
                "DisruptionTarget",
                true,
                Some("DeletionByPodGC"),
                Some("PodGC: node no longer exists".into()),
            ));
            self.push(gc, Act::ControllerStatus(StatusActor::PodGc, c));
            self.push(
                gc + 5 * MS,
                Act::Delete {
                    by: Deleter::PodGc,
                    grace: 0,
                },
            );
            if let Some(t) = finalizer_removed {
                self.m.gone = Some((gc + 5 * MS).max(t));
            }
            return code;
        }
        let mut kill = at + self.k(150.0);
        if code == Code::KubeletKillDelay {
            kill += self.rng.between(20 * S, 60 * S);
        }
        for i in 0..self.wl.containers.len() {
            let name = self.wl.containers[i].name.clone();
            self.event(
                kill + i as i64 * MS,
                "Killing",
                format!("Stopping container {name}"),
                false,
                Some(Slot {
                    init: false,
                    index: i,
                }),
            );
        }
        let mut stopped = kill;
        if self.shape.pre_stop {
            stopped += self.rng.lognormal_us(1200.0, 0.5);
            if code == Code::PreStopHookFailed {
                self.event(
                    stopped,
                    "FailedPreStopHook",
                    "PreStopHook failed".into(),
                    true,
                    Some(Slot {
                        init: false,
                        index: 0,
                    }),
                );
            }
        }
        stopped += self.k(400.0);
        let (exit, reason) = if code == Code::GracePeriodExceeded {
            stopped = at + grace * S + self.rng.between(10 * MS, 300 * MS);
            (137, "Error")
        } else {
            (0, "Completed")
        };
        let mut c = StatusChange {
            phase: Some(if exit == 0 { "Succeeded" } else { "Failed" }),
            ..StatusChange::default()
        };
        for i in 0..self.wl.containers.len() {
            c.containers.push((
                Slot {
                    init: false,
                    index: i,
                },
                CState::Terminated { exit, reason },
            ));
        }
        for i in 0..self.wl.init.len() {
            if self.wl.init[i].sidecar {
                c.containers.push((
                    Slot {
                        init: true,
                        index: i,
                    },
                    CState::Terminated {
                        exit: 0,
                        reason: "Completed",
                    },
                ));
            }
        }
        c.conditions
            .push(("Ready", false, Some("PodCompleted"), None));
        c.conditions
            .push(("ContainersReady", false, Some("PodCompleted"), None));
        c.conditions
            .push(("PodReadyToStartContainers", false, None, None));
        self.status(stopped, c);
        let final_delete = stopped + self.k(200.0);
        self.kubelet(final_delete, Act::FinalDelete);
        if let Some(t) = finalizer_removed {
            if final_delete < self.limit {
                self.m.gone = Some(final_delete.max(t));
            }
        }
        code
    }

    fn finish(
        mut self,
        input: &PlanInput,
        create: Verdict,
        delete: Option<Verdict>,
        upgrade: Option<Verdict>,
        attempts: u32,
    ) -> PodPlan {
        // The node's serialized puller can make a pod wait with nothing injected: then
        // that is what truly happened to it.
        let create = if create.code == Code::Success && self.queued > EMERGENT_QUEUE_WAIT {
            Verdict::of(Code::ImagePullQueueTooMuchTime)
        } else {
            create
        };
        // Milestones past the window are not in the output.
        let horizon = input.horizon;
        for m in [
            &mut self.m.created,
            &mut self.m.bound,
            &mut self.m.picked,
            &mut self.m.containers_started,
            &mut self.m.ready,
            &mut self.m.delete_requested,
            &mut self.m.gone,
            &mut self.m.upgrade_requested,
            &mut self.m.upgraded,
        ] {
            if m.is_some_and(|t| t >= horizon) {
                *m = None;
            }
        }
        self.steps.retain(|s| s.at < horizon);
        self.steps.sort_by_key(|s| s.at);
        let refused = matches!(
            create.code,
            Code::ApiQuotaExceeded | Code::ApiAdmissionDenied | Code::ApiWebhookFailure
        );
        let label = Label {
            cluster: input.cluster.clone(),
            uid: if refused {
                String::new()
            } else {
                self.shape.uid.clone()
            },
            namespace: self.wl.namespace.clone(),
            name: if refused {
                String::new()
            } else {
                self.shape.name.clone()
            },
            workload: WorkloadRef {
                kind: match self.wl.kind {
                    WorkloadKind::Deployment => "Deployment",
                    WorkloadKind::StatefulSet => "StatefulSet",
                    WorkloadKind::Job => "Job",
                    WorkloadKind::DaemonSet => "DaemonSet",
                },
                namespace: self.wl.namespace.clone(),
                name: self.wl.name.clone(),
            },
            node: self.bound.then(|| self.node().name.clone()),
            create,
            delete,
            upgrade,
            attempts,
            traceparent: if refused {
                None
            } else {
                self.shape.traceparent.clone()
            },
            platform: if refused {
                None
            } else {
                PlatformTruth::of(&self.m, std::mem::take(&mut self.user))
            },
            milestones: self.m,
        };
        PodPlan {
            shape: self.shape,
            steps: self.steps,
            label,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(850_400), "850ms");
        assert_eq!(go_duration(1_500_000), "1.5s");
        assert_eq!(go_duration(3_000_000), "3s");
        assert_eq!(go_duration(133_400_000), "2m13.4s");
        assert_eq!(go_duration(3_723_250_000), "1h2m3.25s");
    }
}
