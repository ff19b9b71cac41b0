//! What one simulated request does to a pod: the steps a plan is made of, and the
//! ground-truth label of each pod.

use serde::Serialize;

use crate::faults::{Code, FaultClass};

/// A container of the pod: an init container or a main one, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub init: bool,
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CState {
    Waiting {
        reason: &'static str,
        message: Option<String>,
    },
    Running {
        ready: bool,
    },
    Terminated {
        exit: i32,
        reason: &'static str,
    },
}

/// A kubelet (or scheduler, or gate controller) status patch, as the changes it makes.
#[derive(Debug, Clone, Default)]
pub struct StatusChange {
    pub phase: Option<&'static str>,
    /// (type, status, reason, message)
    pub conditions: Vec<(&'static str, bool, Option<&'static str>, Option<String>)>,
    pub containers: Vec<(Slot, CState)>,
    pub assign_ip: bool,
    pub host_ip: bool,
    pub start_time: bool,
    pub pod_reason: Option<(&'static str, String)>,
    pub nominated: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Kubelet,
    AttachDetach,
    NodeController,
}

#[derive(Debug, Clone)]
pub struct EventAct {
    pub component: Component,
    pub reason: &'static str,
    pub message: String,
    pub warning: bool,
    pub container: Option<Slot>,
    /// 1 creates the Event; a higher count patches it (the client's event correlator).
    pub count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusActor {
    Scheduler,
    /// The controller behind a readiness gate.
    GateController,
    PodGc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleter {
    Controller,
    User,
    PodGc,
}

#[derive(Debug, Clone)]
pub enum Act {
    Create,
    CreateRefused {
        code: u16,
        reason: &'static str,
        message: String,
    },
    /// A core Event on the pod's owner by its controller (SuccessfulCreate, FailedCreate…).
    OwnerEvent {
        reason: &'static str,
        message: String,
        warning: bool,
        count: u32,
    },
    Bind,
    /// An events.k8s.io Event by the scheduler; `series` 0 creates it, n ≥ 2 patches it.
    SchedulerEvent {
        reason: &'static str,
        action: &'static str,
        note: String,
        warning: bool,
        series: u32,
    },
    /// A status patch by someone other than the kubelet.
    ControllerStatus(StatusActor, StatusChange),
    Event(EventAct),
    /// A kubelet status patch.
    Status(StatusChange),
    /// The node's Ready condition, as the node controller marks it.
    NodeReady(bool),
    Delete {
        by: Deleter,
        grace: i64,
    },
    Evict {
        refused: bool,
    },
    RemoveFinalizer,
    FinalDelete,
    Upgrade {
        image: String,
    },
}

/// One request of a pod's plan, at its completion time (the audit `stageTimestamp`).
#[derive(Debug, Clone)]
pub struct Step {
    pub at: i64,
    pub act: Act,
}

/// The true milestones of a pod, each the `stageTimestamp` (µs) of the request that
/// marks it, as the taxonomy defines them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Milestones {
    pub created: Option<i64>,
    pub bound: Option<i64>,
    /// First kubelet activity (status patch or Event) for the pod.
    pub picked: Option<i64>,
    /// The status patch in which every main container is running.
    pub containers_started: Option<i64>,
    pub ready: Option<i64>,
    pub delete_requested: Option<i64>,
    pub gone: Option<i64>,
    pub upgrade_requested: Option<i64>,
    pub upgraded: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub code: Code,
    pub class: FaultClass,
    pub stage: &'static str,
}

impl Verdict {
    pub fn of(code: Code) -> Verdict {
        let info = code.info();
        Verdict {
            code,
            class: info.class,
            stage: info.stage,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkloadRef {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

/// The ground truth of one pod (or, for refused creates, of one attempt that never
/// became a pod). Written beside the audit log; never read by the analyzers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Label {
    pub cluster: String,
    /// Empty when the create was refused: no pod, no UID.
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub workload: WorkloadRef,
    pub node: Option<String>,
    pub create: Verdict,
    pub delete: Option<Verdict>,
    pub upgrade: Option<Verdict>,
    /// Refused creates: how many attempts the controller made.
    pub attempts: u32,
    /// The pod's `traceparent` annotation, when its controller traces its work.
    pub traceparent: Option<String>,
    pub milestones: Milestones,
    /// Delivered pods: their platform time as the simulated components spent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformTruth>,
}

/// A stretch of a delivery the user owns, as the simulator scheduled it: `pull` (a pull
/// session, queueing included), `transfer` (the pull itself), `init_run`, `post_start`,
/// `readiness`, `gate`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserSpan {
    pub kind: &'static str,
    pub start: i64,
    pub end: i64,
}

/// A delivered pod's platform time from the simulator's own intervals (never from the
/// audit log): wall time less the user's stretches (reference §1.4 and §5.1).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlatformTruth {
    /// Created → every container started, less pull sessions and init container runs:
    /// the kubelet's `podStartSLOduration`.
    pub sig_us: i64,
    /// Created → Ready, less transfers, init runs, postStart hooks, readiness and gates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_us: Option<i64>,
    pub user: Vec<UserSpan>,
}

impl PlatformTruth {
    /// From the milestones and the user's stretches; `None` if the pod never started.
    pub fn of(m: &Milestones, user: Vec<UserSpan>) -> Option<PlatformTruth> {
        let (created, started) = (m.created?, m.containers_started?);
        let less = |end: i64, kinds: &[&str]| {
            let taken = union_length(
                user.iter()
                    .filter(|u| kinds.contains(&u.kind))
                    .map(|u| (u.start.max(created), u.end.min(end))),
            );
            end - created - taken
        };
        Some(PlatformTruth {
            sig_us: less(started, &["pull", "init_run"]),
            delivery_us: m.ready.map(|ready| {
                less(
                    ready,
                    &["transfer", "init_run", "post_start", "readiness", "gate"],
                )
            }),
            user,
        })
    }
}

/// The length of the union of half-open intervals.
fn union_length(items: impl Iterator<Item = (i64, i64)>) -> i64 {
    let mut v: Vec<(i64, i64)> = items.filter(|(a, b)| b > a).collect();
    v.sort_unstable();
    let (mut total, mut current): (i64, Option<(i64, i64)>) = (0, None);
    for (a, b) in v {
        current = match current {
            Some((s, e)) if a <= e => Some((s, e.max(b))),
            Some((s, e)) => {
                total += e - s;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    total + current.map_or(0, |(s, e)| e - s)
}
