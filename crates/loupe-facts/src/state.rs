use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fact::{Actor, Fact, Owner};
use crate::observe::{
    container_of, ContainerObs, EventObs, Observation, ObservedBody, PodSnapshot, RunState,
};
use crate::small_map::SmallMap;

/// What Loupe knows of one container between observations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub init: bool,
    /// `waiting:<reason>`, `running` or `terminated:<reason>:<exit>`.
    pub state: String,
    pub ready: Option<bool>,
    pub restarts: i32,
    /// Audit time of the observation that set `state`.
    pub ts: i64,
}

/// The folded state of one pod: enough to tell what each new observation changes.
/// Persisted with every commit so a restart continues where it stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodState {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub created: Option<i64>,
    pub owner: Option<Owner>,
    pub node: Option<String>,
    pub phase: Option<String>,
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub nominated: Option<String>,
    /// Condition type → (status, audit time it was set).
    pub conditions: SmallMap<(String, i64)>,
    /// Condition type → a hash of its last reason: a new reason under the same status
    /// (Ready False: ContainersNotReady → ReadinessGatesNotReady) is a fact too.
    #[serde(default)]
    pub condition_reasons: SmallMap<u64>,
    pub containers: SmallMap<ContainerRecord>,
    pub labels: SmallMap<String>,
    pub annotations: SmallMap<u64>,
    pub finalizers: Vec<String>,
    pub images: SmallMap<String>,
    pub deletion_requested: Option<i64>,
    pub gone: Option<i64>,
    /// Refused creates folded into this (synthetic) record.
    pub rejections: u32,
    pub first_ts: i64,
    pub last_ts: i64,
}

impl PodState {
    pub fn new(uid: &str, namespace: &str, name: &str) -> PodState {
        PodState {
            uid: uid.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            ..PodState::default()
        }
    }

    /// Folds one observation into the state and returns the facts it revealed.
    pub fn apply(&mut self, obs: &Observation) -> Vec<Fact> {
        if self.first_ts == 0 || obs.ts < self.first_ts {
            self.first_ts = obs.ts;
        }
        self.last_ts = self.last_ts.max(obs.ts);
        let mut facts = Vec::new();
        let by = &obs.actor;
        match &obs.body {
            ObservedBody::PodCreated { created, snapshot } => {
                if self.created.is_none() {
                    self.created = Some(obs.ts);
                    self.owner = created.owner.clone();
                    if self.name.is_empty() {
                        self.name = created.name.clone();
                    }
                    facts.push(Fact::PodCreated(created.clone()));
                    self.apply_snapshot(snapshot, obs.ts, by, true, &mut facts);
                }
            }
            ObservedBody::CreateRejected {
                code,
                reason,
                message,
                webhook,
            } => {
                self.rejections += 1;
                self.phase = Some("Rejected".into());
                facts.push(Fact::CreateRejected {
                    code: *code,
                    reason: reason.clone(),
                    message: message.clone(),
                    webhook: webhook.clone(),
                    by: by.clone(),
                });
            }
            ObservedBody::PodWrite(snapshot) => {
                self.apply_snapshot(snapshot, obs.ts, by, false, &mut facts)
            }
            ObservedBody::Bound { node } => self.bind(node, by, &mut facts),
            ObservedBody::BindingFailed { code, message } => facts.push(Fact::BindingFailed {
                code: *code,
                message: message.clone(),
            }),
            ObservedBody::DeleteRequested {
                grace,
                snapshot,
                gone,
            } => {
                let final_kubelet_delete = *gone && by.component == "kubelet";
                if self.deletion_requested.is_none() && !final_kubelet_delete {
                    self.deletion_requested = Some(obs.ts);
                    let finalizers = snapshot
                        .as_ref()
                        .and_then(|s| s.finalizers.clone())
                        .unwrap_or_else(|| self.finalizers.clone());
                    facts.push(Fact::DeletionRequested {
                        grace_seconds: *grace,
                        finalizers,
                        by: by.clone(),
                    });
                }
                if let Some(snapshot) = snapshot {
                    self.apply_snapshot(snapshot, obs.ts, by, false, &mut facts);
                }
                if *gone {
                    self.mark_gone(obs.ts, by, &mut facts);
                }
            }
            ObservedBody::DeleteFailed { code, message } => facts.push(Fact::DeleteFailed {
                code: *code,
                message: message.clone(),
                by: by.clone(),
            }),
            ObservedBody::Eviction { code, message } => {
                if (200..300).contains(code) {
                    facts.push(Fact::EvictionRequested { by: by.clone() });
                } else {
                    facts.push(Fact::EvictionRefused {
                        code: *code,
                        message: message.clone(),
                        by: by.clone(),
                    });
                }
            }
            ObservedBody::Event(e) => facts.push(event_fact(e)),
            ObservedBody::Node(_) | ObservedBody::Pvc(_) | ObservedBody::Nothing => {}
        }
        facts
    }

    pub fn is_gone(&self) -> bool {
        self.gone.is_some()
    }

    fn bind(&mut self, node: &str, by: &Actor, facts: &mut Vec<Fact>) {
        if self.node.as_deref() != Some(node) {
            self.node = Some(node.to_string());
            facts.push(Fact::Bound {
                node: node.to_string(),
                by: by.clone(),
            });
        }
    }

    fn mark_gone(&mut self, ts: i64, by: &Actor, facts: &mut Vec<Fact>) {
        if self.gone.is_none() {
            self.gone = Some(ts);
            facts.push(Fact::Gone { by: by.clone() });
        }
    }

    /// `initial`: the snapshot of a create; labels and images set then are not changes.
    fn apply_snapshot(
        &mut self,
        s: &PodSnapshot,
        ts: i64,
        by: &Actor,
        initial: bool,
        facts: &mut Vec<Fact>,
    ) {
        if let Some(node) = &s.node_name {
            if initial {
                self.node = Some(node.clone());
            } else {
                self.bind(node, by, facts);
            }
        }
        self.apply_labels(s, initial, facts);
        self.apply_annotations(s, initial, facts);
        self.apply_finalizers(s, facts);
        self.apply_images(s, by, initial, facts);
        if s.touches_spec && !initial {
            facts.push(Fact::SpecChanged { by: by.clone() });
        }
        if let Some(phase) = &s.phase {
            if self.phase.as_deref() != Some(phase) {
                self.phase = Some(phase.clone());
                facts.push(Fact::Phase {
                    phase: phase.clone(),
                    reason: s.reason.clone(),
                    message: s.message.clone(),
                });
            }
        }
        set_if_changed(&mut self.host_ip, &s.host_ip, facts, |ip| Fact::HostIp {
            ip,
        });
        set_if_changed(&mut self.pod_ip, &s.pod_ip, facts, |ip| Fact::PodIp { ip });
        let nominated = s.nominated_node.as_ref().filter(|n| !n.is_empty()).cloned();
        set_if_changed(&mut self.nominated, &nominated, facts, |node| {
            Fact::Nominated { node }
        });
        for (condition, status, reason, message) in &s.conditions {
            let known = self.conditions.get(condition);
            let reason_hash = reason.as_deref().map(fnv1a);
            let same_status = known.map(|(st, _)| st) == Some(status);
            let new_reason =
                reason_hash.is_some_and(|h| self.condition_reasons.get(condition) != Some(&h));
            if let Some(h) = reason_hash {
                if known.is_none_or(|(_, at)| *at <= ts) {
                    self.condition_reasons.insert(condition.clone(), h);
                }
            }
            if same_status && !(new_reason && known.is_some_and(|(_, at)| *at <= ts)) {
                continue;
            }
            // An older observation never overwrites a newer one (late arrivals).
            if known.is_none_or(|(_, at)| *at <= ts) {
                self.conditions
                    .insert(condition.clone(), (status.clone(), ts));
            }
            facts.push(Fact::Condition {
                condition: condition.clone(),
                status: status.clone(),
                reason: reason.clone(),
                message: message.clone(),
            });
        }
        for c in &s.containers {
            self.apply_container(c, ts, facts);
        }
        if s.full
            && s.deletion_timestamp.is_some()
            && s.deletion_grace == Some(0)
            && self.finalizers.is_empty()
            && !initial
        {
            self.mark_gone(ts, by, facts);
        }
        if s.deletion_timestamp.is_some() && self.deletion_requested.is_none() {
            self.deletion_requested = Some(ts);
            facts.push(Fact::DeletionRequested {
                grace_seconds: s.deletion_grace,
                finalizers: self.finalizers.clone(),
                by: by.clone(),
            });
        }
    }

    fn apply_labels(&mut self, s: &PodSnapshot, initial: bool, facts: &mut Vec<Fact>) {
        let Some(labels) = &s.labels else { return };
        let (set, removed) = merge_map(&mut self.labels, labels, s.full);
        if !initial && (!set.is_empty() || !removed.is_empty()) {
            let set = set
                .into_iter()
                .filter_map(|k| Some((k.clone(), self.labels.get(&k)?.clone())))
                .collect();
            facts.push(Fact::LabelsChanged { set, removed });
        }
    }

    fn apply_annotations(&mut self, s: &PodSnapshot, initial: bool, facts: &mut Vec<Fact>) {
        let Some(annotations) = &s.annotations else {
            return;
        };
        let (set, removed) = merge_map(&mut self.annotations, annotations, s.full);
        if !initial && (!set.is_empty() || !removed.is_empty()) {
            facts.push(Fact::AnnotationsChanged { set, removed });
        }
    }

    fn apply_finalizers(&mut self, s: &PodSnapshot, facts: &mut Vec<Fact>) {
        if let Some(list) = &s.finalizers {
            if !s.finalizers_merge {
                let removed: Vec<String> = self
                    .finalizers
                    .iter()
                    .filter(|f| !list.contains(f))
                    .cloned()
                    .collect();
                for f in removed {
                    self.finalizers.retain(|x| x != &f);
                    facts.push(Fact::FinalizerRemoved { finalizer: f });
                }
            }
            for f in list {
                if !self.finalizers.contains(f) {
                    self.finalizers.push(f.clone());
                    facts.push(Fact::FinalizerAdded {
                        finalizer: f.clone(),
                    });
                }
            }
        }
        for f in &s.delete_finalizers {
            if self.finalizers.contains(f) {
                self.finalizers.retain(|x| x != f);
                facts.push(Fact::FinalizerRemoved {
                    finalizer: f.clone(),
                });
            }
        }
    }

    fn apply_images(&mut self, s: &PodSnapshot, by: &Actor, initial: bool, facts: &mut Vec<Fact>) {
        for (container, image) in s.images.iter().flatten() {
            if image.is_empty() {
                continue;
            }
            match self.images.insert(container.clone(), image.clone()) {
                Some(old) if old != *image && !initial => facts.push(Fact::ImageChanged {
                    container: container.clone(),
                    from: old,
                    to: image.clone(),
                    by: by.clone(),
                }),
                _ => {}
            }
        }
    }

    fn apply_container(&mut self, c: &ContainerObs, ts: i64, facts: &mut Vec<Fact>) {
        let record = self
            .containers
            .get_or_insert_with(&c.name, || ContainerRecord {
                init: c.init,
                ..ContainerRecord::default()
            });
        let init = c.init;
        if let Some(state) = &c.state {
            let key = state_key(state);
            if record.state != key {
                if record.ts <= ts {
                    record.state = key;
                    record.ts = ts;
                }
                facts.push(state_fact(&c.name, init, state));
            }
        }
        if let Some(count) = c.restart_count {
            if count > record.restarts {
                record.restarts = count;
                facts.push(Fact::ContainerRestarted {
                    container: c.name.clone(),
                    init,
                    restart_count: count,
                    last_reason: c.last_terminated.as_ref().and_then(|(r, _)| r.clone()),
                    last_exit_code: c.last_terminated.as_ref().map(|(_, code)| *code),
                });
            }
        }
        if let Some(ready) = c.ready {
            let changed = match record.ready {
                Some(known) => known != ready,
                None => ready,
            };
            record.ready = Some(ready);
            if changed {
                facts.push(Fact::ContainerReady {
                    container: c.name.clone(),
                    init,
                    ready,
                });
            }
        }
    }
}

/// Applies a map from a pod body (a patch: `None` deletes; a full object: absent keys are
/// gone too) and returns the keys set to a new value and the keys removed.
fn merge_map<V: Clone + PartialEq>(
    known: &mut SmallMap<V>,
    given: &BTreeMap<String, Option<V>>,
    full: bool,
) -> (Vec<String>, Vec<String>) {
    let mut set = Vec::new();
    let mut removed = Vec::new();
    for (k, v) in given {
        match v {
            Some(v) if known.get(k) != Some(v) => {
                known.insert(k.clone(), v.clone());
                set.push(k.clone());
            }
            None if known.remove(k).is_some() => removed.push(k.clone()),
            _ => {}
        }
    }
    if full {
        let gone: Vec<String> = known
            .keys()
            .filter(|k| !given.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            known.remove(&k);
            removed.push(k);
        }
    }
    (set, removed)
}

fn set_if_changed(
    slot: &mut Option<String>,
    new: &Option<String>,
    facts: &mut Vec<Fact>,
    fact: impl FnOnce(String) -> Fact,
) {
    if let Some(v) = new {
        if slot.as_ref() != Some(v) {
            *slot = Some(v.clone());
            facts.push(fact(v.clone()));
        }
    }
}

fn state_key(state: &RunState) -> String {
    match state {
        RunState::Waiting { reason, .. } => format!("waiting:{}", reason.as_deref().unwrap_or("")),
        RunState::Running { .. } => "running".to_string(),
        RunState::Terminated {
            reason, exit_code, ..
        } => format!("terminated:{}:{exit_code}", reason.as_deref().unwrap_or("")),
    }
}

fn state_fact(container: &str, init: bool, state: &RunState) -> Fact {
    let container = container.to_string();
    match state {
        RunState::Waiting { reason, message } => Fact::ContainerWaiting {
            container,
            init,
            reason: reason.clone(),
            message: message.clone(),
        },
        RunState::Running { started_at } => Fact::ContainerRunning {
            container,
            init,
            started_at: started_at.clone(),
        },
        RunState::Terminated {
            reason,
            exit_code,
            signal,
            message,
        } => Fact::ContainerTerminated {
            container,
            init,
            reason: reason.clone(),
            exit_code: *exit_code,
            signal: *signal,
            message: message.clone(),
        },
    }
}

/// The fact an Event becomes. `e` is complete here: repeats were resolved upstream.
pub(crate) fn event_fact(e: &EventObs) -> Fact {
    let field_path = e.involved.as_ref().and_then(|i| i.field_path.clone());
    Fact::Event {
        api: e.api.clone(),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
        kind: e.kind.clone().unwrap_or_else(|| "Normal".into()),
        component: e.component.clone().unwrap_or_default(),
        host: e.host.clone().filter(|h| !h.is_empty()),
        container: field_path
            .as_deref()
            .and_then(container_of)
            .map(str::to_string),
        field_path,
        count: e.count.unwrap_or(1),
        repeat: e.repeat,
    }
}

/// FNV-1a, 64-bit: a stable hash for remembering a value without keeping it.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
