//! The simulation loop: pods are created on schedule, each one's plan is rendered step
//! by step in time order (so every response shows the pod as it is at that moment), and
//! on the caller's thread the writer turns the requests into audit events, adds the
//! cluster's background traffic and noise, and lets lines leave in the order the
//! apiservers complete them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use serde_json::json;

use crate::background::{Background, Noise};
use crate::cluster::{build_nodes, build_workloads, Node, Shape, Workload};
use crate::faults::Lifecycle;
use crate::json;
use crate::model::{Act, Component, Deleter, EventAct, Label, StatusActor, Step};
use crate::plan::{plan, PlanInput};
use crate::render::*;
use crate::rng::Rng;
use crate::SimConfig;

const S: i64 = 1_000_000;
const MS: i64 = 1_000;
/// The longest a simulated request takes (the webhook timeout, plus margin).
const MAX_LATENCY: i64 = 12 * S;

/// What a simulation produced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub pods: u64,
    pub refused_creates: u64,
    pub events: u64,
    pub bytes: u64,
    pub first_us: i64,
    pub last_us: i64,
    /// Pods (or refused attempts) per injected create code, by name.
    pub codes: std::collections::BTreeMap<String, u64>,
}

struct Live {
    model: PodModel,
    steps: Vec<Step>,
    next: usize,
    /// Events already created: (key) → name, so repeats patch the same object.
    started: i64,
}

struct Engine<'a> {
    config: &'a SimConfig,
    actors: Actors,
    nodes: Vec<Node>,
    workloads: Vec<Workload>,
    rng: Rng,
    heap: BinaryHeap<Reverse<(i64, u64, usize)>>,
    pods: Vec<Option<Live>>,
    free_pods: Vec<usize>,
    order: u64,
    pipe: Pipe,
    summary: Summary,
    horizon: i64,
}

/// What the engine hands the writer, in order: requests to turn into audit lines, the
/// audit times before which lines may be released, and the pods' labels.
// Nearly every item is a request: boxing it would allocate once per event.
#[allow(clippy::large_enum_variant)]
enum Item {
    Request { req: Request, audit_id: [u8; 36] },
    Release(i64),
    Label(Box<Label>),
}

/// Items cross between the threads in batches of this many.
const BATCH: usize = 256;

/// The engine's end of the channel to the writer.
struct Pipe {
    batch: Vec<Item>,
    tx: SyncSender<Vec<Item>>,
    /// Emptied batches coming back, reused while their memory is warm.
    spent: Receiver<Vec<Item>>,
}

impl Pipe {
    fn push(&mut self, item: Item) {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let empty = self
                .spent
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH));
            let batch = std::mem::replace(&mut self.batch, empty);
            // The writer hangs up only by panicking, and `run` resumes that panic.
            let _ = self.tx.send(batch);
        }
    }
}

/// Turns requests into audit lines and releases them in order of their keys.
struct Writer {
    background: Background,
    noise: Noise,
    audit: AuditWriter,
    /// Lines waiting for their time to be written, by second of their key: (key, seq,
    /// line). A second's lines are sorted when it is written.
    out: BTreeMap<i64, Vec<(i64, u64, String)>>,
    out_seq: u64,
    events: u64,
    bytes: u64,
}

/// Runs the simulation: `sink` gets each audit line in output order with the audit
/// time it is delivered at (its apiserver's batch), `labels` each pod's
/// ground truth as soon as it is planned (in creation order).
///
/// Two threads: the engine plans pods and renders their bodies on one, the audit events
/// are written and ordered on the caller's, which alone calls `sink` and `labels`. Both
/// work through one ordered stream, so the output does not depend on their timing.
pub fn run(
    config: &SimConfig,
    sink: &mut dyn FnMut(i64, String),
    labels: &mut dyn FnMut(&Label),
) -> Summary {
    let (tx, rx) = sync_channel::<Vec<Item>>(16);
    let (spent_tx, spent_rx) = sync_channel::<Vec<Item>>(16);
    let shape = Shape {
        nodes: config.nodes.max(1),
        workloads: config.workloads.max(1),
        namespaces: config.namespaces.max(1),
        slow_node_share: config.slow_node_share,
    };
    let nodes = build_nodes(&shape, config.seed);
    let workloads = build_workloads(&shape, config.seed);
    let actors = Actors::new(&nodes);
    // Creation times first: they fix the window every plan is cut to.
    let mut rng = Rng::derive(config.seed, 23, 0);
    let mut arrivals = Vec::with_capacity(config.pods);
    let mut t = config.start_us;
    for _ in 0..config.pods {
        arrivals.push(t);
        let gap = -(1.0 - rng.unit()).ln() / config.pods_per_second.max(1e-6);
        t += (gap * 1e6) as i64 + 1;
    }
    let horizon = t + (config.tail_seconds * 1e6) as i64;
    let mut writer = Writer {
        background: Background::new(
            config.seed,
            &nodes,
            actors.clone(),
            config.watchers,
            config.start_us,
            horizon,
        ),
        noise: Noise {
            per_event: config.noise_per_event,
            nodes: nodes.len(),
            rng: Rng::derive(config.seed, 31, 0),
            actors: actors.clone(),
        },
        audit: AuditWriter {
            request_received: config.request_received,
            apiservers: config.apiservers,
            stamps: Stamps::default(),
            lines: Vec::new(),
        },
        out: BTreeMap::new(),
        out_seq: 0,
        events: 0,
        bytes: 0,
    };
    let summary = std::thread::scope(|scope| {
        let timeline = (rng, arrivals, horizon);
        let engine = std::thread::Builder::new()
            .name("sim-engine".into())
            .spawn_scoped(scope, move || {
                simulate(config, nodes, workloads, actors, timeline, tx, spent_rx)
            })
            .expect("a thread for the simulation engine");
        for mut batch in rx {
            for item in batch.drain(..) {
                writer.take(item, sink, labels);
            }
            // The engine may have stopped taking them back: then the batch is freed.
            let _ = spent_tx.try_send(batch);
        }
        match engine.join() {
            Ok(summary) => summary,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    Summary {
        events: writer.events,
        bytes: writer.bytes,
        ..summary
    }
}

/// The engine's thread: the whole simulation, handed to the writer item by item.
fn simulate(
    config: &SimConfig,
    nodes: Vec<Node>,
    workloads: Vec<Workload>,
    actors: Actors,
    (rng, arrivals, horizon): (Rng, Vec<i64>, i64),
    tx: SyncSender<Vec<Item>>,
    spent: Receiver<Vec<Item>>,
) -> Summary {
    let mut engine = Engine {
        config,
        actors,
        nodes,
        workloads,
        rng,
        heap: BinaryHeap::new(),
        pods: Vec::new(),
        free_pods: Vec::new(),
        order: 0,
        pipe: Pipe {
            batch: Vec::with_capacity(BATCH),
            tx,
            spent,
        },
        summary: Summary {
            first_us: config.start_us,
            ..Summary::default()
        },
        horizon,
    };
    let weights: Vec<u32> = engine.workloads.iter().map(|w| w.weight).collect();
    let total: u32 = weights.iter().sum();
    for (i, created) in arrivals.into_iter().enumerate() {
        engine.advance(created);
        let mut rng = Rng::derive(config.seed, 29, i as u64);
        let mut pick = rng.below(total as u64) as u32;
        let wl = weights
            .iter()
            .position(|w| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        let create = config.faults.draw(&mut rng, Lifecycle::Create);
        // A fault the workload cannot have is not injected: the label stays true.
        let create = if crate::plan::applies(create, &engine.workloads[wl]) {
            create
        } else {
            crate::faults::Code::Success
        };
        let delete = rng.chance(config.delete_share).then(|| {
            let code = config.faults.draw(&mut rng, Lifecycle::Delete);
            let code = if crate::plan::delete_applies(code, create) {
                code
            } else {
                crate::faults::Code::DeleteSuccess
            };
            let life = rng.lognormal_us(config.lifetime_seconds * 1000.0, 0.8);
            (code, life)
        });
        let upgrade = (config.workload_upgrades(&engine.workloads[wl])
            && rng.chance(config.upgrade_share))
        .then(|| {
            let code = config.faults.draw(&mut rng, Lifecycle::Upgrade);
            (code, rng.lognormal_us(config.lifetime_seconds * 300.0, 0.5))
        });
        let input = PlanInput {
            cluster: config.cluster.clone(),
            created_at: created,
            create,
            delete,
            upgrade,
            horizon: engine.horizon,
            stuck_life: rng.lognormal_us(config.stuck_seconds * 1000.0, 0.4),
        };
        let plan = plan(
            &input,
            &mut engine.workloads[wl],
            &mut engine.nodes,
            config.seed,
            i as u64,
        );
        engine.pipe.push(Item::Label(Box::new(plan.label.clone())));
        *engine
            .summary
            .codes
            .entry(create.name().to_string())
            .or_insert(0) += 1;
        if plan.label.uid.is_empty() {
            engine.summary.refused_creates += 1;
        } else {
            engine.summary.pods += 1;
        }
        let model = PodModel::new(plan.shape, wl, &engine.workloads[wl]);
        if let Some(first) = plan.steps.first().map(|s| s.at) {
            let slot = engine.free_pods.pop().unwrap_or_else(|| {
                engine.pods.push(None);
                engine.pods.len() - 1
            });
            engine.pods[slot] = Some(Live {
                model,
                steps: plan.steps,
                next: 0,
                started: created,
            });
            engine.schedule(first, slot);
        }
    }
    engine.advance(engine.horizon);
    engine.pipe.push(Item::Release(i64::MAX));
    engine.pipe.flush();
    engine.summary.last_us = engine.horizon;
    engine.summary
}

/// Turns requests into their audit events, as their apiservers deliver them.
struct AuditWriter {
    request_received: bool,
    apiservers: usize,
    stamps: Stamps,
    /// Events written since the writer last took them.
    lines: Vec<Line>,
}

impl AuditWriter {
    /// A request's events, and the noise that comes with an analysed one.
    fn with_noise(&mut self, noise: &mut Noise, req: &Request, audit_id: &[u8; 36]) {
        self.write(req, audit_id);
        if req.level != "Metadata" {
            noise.around(req.at, |rng, req| self.write(&req, &rng.uuid_bytes()));
        }
    }

    fn write(&mut self, req: &Request, audit_id: &[u8; 36]) {
        // Apiservers after the first deliver in batches (a webhook's max wait): their
        // lines arrive up to `period` after lines of the first.
        let period = delivery_period(&req.actor, self.apiservers);
        let lag = move |ts: i64| {
            if period == 0 {
                ts
            } else {
                (ts / period + 1) * period
            }
        };
        write_request(
            req,
            std::str::from_utf8(audit_id).expect("a UUID is ASCII"),
            self.request_received,
            &lag,
            &mut self.stamps,
            &mut self.lines,
        );
    }
}

impl Writer {
    fn take(
        &mut self,
        item: Item,
        sink: &mut dyn FnMut(i64, String),
        labels: &mut dyn FnMut(&Label),
    ) {
        match item {
            Item::Request { req, audit_id } => {
                self.audit.with_noise(&mut self.noise, &req, &audit_id)
            }
            Item::Release(before) => {
                // The background's lines come at most a request's latency before its
                // time: all those keyed before `before` are made first.
                let (audit, noise) = (&mut self.audit, &mut self.noise);
                self.background
                    .until(before.saturating_add(MAX_LATENCY), &mut |req, id| {
                        audit.with_noise(noise, &req, &id)
                    });
                self.drain(before, sink);
            }
            Item::Label(label) => labels(&label),
        }
    }

    /// Writes the lines keyed before `before`, in (key, sequence) order.
    fn drain(&mut self, before: i64, sink: &mut dyn FnMut(i64, String)) {
        for line in self.audit.lines.drain(..) {
            self.out_seq += 1;
            let second = line.key.div_euclid(S);
            let waiting = self.out.entry(second).or_default();
            waiting.push((line.key, self.out_seq, line.json));
        }
        while let Some(mut first) = self.out.first_entry() {
            let second = *first.key();
            if second * S >= before {
                break;
            }
            let waiting = first.get_mut();
            // Keys and sequence numbers together are unique: an unstable sort is exact.
            waiting.sort_unstable_by_key(|(key, seq, _)| (*key, *seq));
            let due = waiting.partition_point(|(key, _, _)| *key < before);
            let whole = due == waiting.len();
            for (key, _, json) in waiting.drain(..due) {
                self.events += 1;
                self.bytes += json.len() as u64 + 1;
                sink(key, json);
            }
            if !whole {
                break;
            }
            first.remove();
        }
    }
}

impl<'a> Engine<'a> {
    /// The pod in `slot` has its next step at `at`.
    fn schedule(&mut self, at: i64, slot: usize) {
        self.order += 1;
        self.heap.push(Reverse((at, self.order, slot)));
    }

    /// Renders everything due before `until`, then releases the lines no later step can
    /// precede.
    fn advance(&mut self, until: i64) {
        let mut drained_to = i64::MIN;
        while let Some(Reverse((at, _, slot))) = self.heap.peek().copied() {
            if at >= until {
                break;
            }
            self.heap.pop();
            self.step(slot);
            // Release lines as time passes, so a long quiet stretch (noise only) is not
            // held in memory before it is written.
            if at > drained_to + S {
                drained_to = at;
                self.release(at - MAX_LATENCY - self.max_lag());
            }
        }
        // A request is received up to its latency before it completes (a webhook timeout
        // is 10 s), and apiservers deliver in batches: hold lines back by that much.
        self.release(until - MAX_LATENCY - self.max_lag());
    }

    fn max_lag(&self) -> i64 {
        self.config.apiservers.saturating_sub(1) as i64 * S
    }

    /// Lets the writer release the lines keyed before `before`: no later step can
    /// precede them.
    fn release(&mut self, before: i64) {
        self.pipe.push(Item::Release(before));
    }

    /// Renders a pod's next step and schedules the one after; a pod whose plan is done
    /// frees its slot.
    fn step(&mut self, slot: usize) {
        if self.render_pod_step(slot) {
            if let Some(next) = self.pods[slot].as_ref().map(|p| p.steps[p.next].at) {
                self.schedule(next, slot);
            }
        } else {
            self.pods[slot] = None;
            self.free_pods.push(slot);
        }
    }

    /// Hands a request to the writer, with its audit ID (drawn here, in engine order).
    fn write(&mut self, req: Request) {
        let audit_id = self.rng.uuid_bytes();
        self.pipe.push(Item::Request { req, audit_id });
    }

    /// Writes a pod-related request, and unrelated noise in proportion to it.
    fn emit(&mut self, req: Request) {
        // The writer adds unrelated noise in proportion to the analysed requests.
        self.write(req);
    }

    /// Renders the next step of a pod; false once its plan is done.
    fn render_pod_step(&mut self, slot: usize) -> bool {
        let Some(mut live) = self.pods[slot].take() else {
            return false;
        };
        let step = live.steps[live.next].clone();
        live.next += 1;
        self.render(&mut live, &step);
        let more = live.next < live.steps.len();
        self.pods[slot] = Some(live);
        more
    }

    fn render(&mut self, live: &mut Live, step: &Step) {
        let wl_index = live.model.workload;
        let at = step.at;
        let node_ix = live.model.shape.node.unwrap_or(0);
        let ns = self.workloads[wl_index].namespace.clone();
        let name = live.model.shape.name.clone();
        let write = |rng: &mut Rng| latency(rng, true);
        match &step.act {
            Act::Create => {
                let wl = &self.workloads[wl_index];
                let request = live.model.create_request(wl);
                let response = live.model.pod_json(wl);
                let object_name = if live.model.shape.generate_name.is_some() {
                    ""
                } else {
                    name.as_str()
                };
                let req = Request::new(
                    at,
                    write(&mut self.rng) + 2 * MS,
                    "create",
                    self.actors.controller(wl.kind.controller()),
                    ObjectRef::new("pods", &ns, object_name),
                    201,
                    "RequestResponse",
                )
                .request(request)
                .response(response);
                self.emit(req);
            }
            Act::CreateRefused {
                code,
                reason,
                message,
            } => {
                let wl = &self.workloads[wl_index];
                let request = live.model.create_request(wl);
                let response = to_json(
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": message, "reason": reason, "details": {"name": name, "kind": "pods"}, "code": code}),
                );
                let req = Request::new(
                    at,
                    write(&mut self.rng) + if *code == 500 { 10 * S } else { 0 },
                    "create",
                    self.actors.controller(wl.kind.controller()),
                    ObjectRef::new("pods", &ns, ""),
                    *code,
                    "RequestResponse",
                )
                .failed((reason, message.clone()))
                .request(request)
                .response(response);
                self.emit(req);
            }
            Act::OwnerEvent {
                reason,
                message,
                warning,
                count,
            } => {
                let wl = &self.workloads[wl_index];
                let involved = ObjectReference {
                    api_version: wl.kind.owner_api(),
                    kind: wl.kind.owner_kind(),
                    namespace: &ns,
                    name: &wl.owner,
                    uid: &wl.owner_uid,
                    resource_version: "4711",
                    field_path: None,
                }
                .json();
                let event_name = event_name(&wl.owner, reason, &[message], wl.owner_uid.as_bytes());
                let body = core_event_body(
                    &event_name,
                    &ns,
                    &involved,
                    reason,
                    message,
                    wl.kind.controller(),
                    None,
                    *warning,
                    *count,
                    live.started,
                    at,
                );
                let actor = self.actors.controller(wl.kind.controller());
                self.event_request(at, actor, &ns, &event_name, *count, body);
            }
            Act::Bind => {
                let node = &self.nodes[node_ix];
                let body = json::object(256, |o| {
                    o.str("apiVersion", "v1")
                        .str("kind", "Binding")
                        .obj("metadata", |m| {
                            m.null("creationTimestamp")
                                .str("name", &name)
                                .str("namespace", &ns)
                                .str("uid", &live.model.shape.uid);
                        })
                        .obj("target", |t| {
                            t.str("kind", "Node").str("name", &node.name);
                        });
                });
                live.model.bind(node, at);
                let req = Request::new(
                    at,
                    write(&mut self.rng),
                    "create",
                    self.actors.scheduler(),
                    ObjectRef::new("pods", &ns, &name)
                        .subresource("binding")
                        .object(&live.model.shape.uid, ""),
                    201,
                    "Request",
                )
                .request(body);
                self.emit(req);
            }
            Act::SchedulerEvent {
                reason,
                action,
                note,
                warning,
                series,
            } => {
                let wl = &self.workloads[wl_index];
                let regarding = pod_reference(&live.model, wl, None);
                let event_name =
                    event_name(&name, reason, &[note], live.model.shape.uid.as_bytes());
                let body = scheduler_event_body(
                    &event_name,
                    &ns,
                    &regarding,
                    reason,
                    action,
                    note,
                    *warning,
                    *series,
                    at,
                );
                let verb = if *series >= 2 { "patch" } else { "create" };
                let req = Request::new(
                    at,
                    write(&mut self.rng),
                    verb,
                    self.actors.scheduler(),
                    ObjectRef::new("events", &ns, &event_name).group("events.k8s.io", "v1"),
                    if verb == "create" { 201 } else { 200 },
                    "Request",
                )
                .request(body);
                self.emit(req);
            }
            Act::ControllerStatus(actor, change) => {
                let wl = &self.workloads[wl_index];
                let body = live
                    .model
                    .apply_status(change, &mut self.nodes[node_ix], wl, at);
                let actor = match actor {
                    StatusActor::Scheduler => self.actors.scheduler(),
                    StatusActor::GateController => {
                        self.actors
                            .service("lb-system", "lb-controller", "lb-controller/v0.9.1")
                    }
                    StatusActor::PodGc => self.actors.controller("pod-garbage-collector"),
                };
                self.status_request(at, actor, &ns, &name, body);
            }
            Act::Status(change) => {
                let wl = &self.workloads[wl_index];
                let body = live
                    .model
                    .apply_status(change, &mut self.nodes[node_ix], wl, at);
                let actor = self.actors.kubelet(node_ix);
                // The kubelet reads the pod before each status patch.
                let get = Request::new(
                    at - 3 * MS,
                    800,
                    "get",
                    actor.clone(),
                    ObjectRef::new("pods", &ns, &name),
                    200,
                    "Metadata",
                );
                self.emit(get);
                self.status_request(at, actor, &ns, &name, body);
            }
            Act::Event(e) => self.pod_event(live, e, at),
            Act::NodeReady(ready) => {
                let node = &self.nodes[node_ix];
                let (status, reason, message) = if *ready {
                    ("True", "KubeletReady", "kubelet is posting ready status")
                } else {
                    (
                        "Unknown",
                        "NodeStatusUnknown",
                        "Kubelet stopped posting node status.",
                    )
                };
                let body = to_json(
                    &json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": reason,
                    "message": message, "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": seconds(at)}]}}),
                );
                let req = Request::new(
                    at,
                    write(&mut self.rng),
                    "patch",
                    self.actors.controller("node-controller"),
                    ObjectRef::new("nodes", "", &node.name).subresource("status"),
                    200,
                    "Request",
                )
                .request(body);
                self.emit(req);
            }
            Act::Delete { by, grace } => {
                let wl = &self.workloads[wl_index];
                let (actor, body) = match by {
                    Deleter::Controller => (
                        self.actors
                            .controller(if wl.kind == crate::cluster::WorkloadKind::Job {
                                "generic-garbage-collector"
                            } else {
                                wl.kind.controller()
                            }),
                        delete_options(None, Some(&live.model.shape.uid), true),
                    ),
                    Deleter::User => (self.actors.user(), delete_options(None, None, true)),
                    Deleter::PodGc => (
                        self.actors.controller("pod-garbage-collector"),
                        delete_options(Some(0), Some(&live.model.shape.uid), false),
                    ),
                };
                live.model.request_delete(at, *grace);
                let response = live.model.pod_json(wl);
                self.pod_write(at, actor, "delete", &ns, &name, body, response);
            }
            Act::FinalDelete => {
                let wl = &self.workloads[wl_index];
                live.model.request_delete(at, 0);
                let body = delete_options(Some(0), Some(&live.model.shape.uid), false);
                let response = live.model.pod_json(wl);
                let actor = self.actors.kubelet(node_ix);
                self.pod_write(at, actor, "delete", &ns, &name, body, response);
            }
            Act::Evict { refused } => {
                let body = to_json(&json!({"kind": "Eviction", "apiVersion": "policy/v1",
                    "metadata": {"name": name, "namespace": ns, "creationTimestamp": null}}));
                let (code, failure, response) = if *refused {
                    let message =
                        "Cannot evict pod as it would violate the pod's disruption budget.";
                    (
                        429,
                        Some(("TooManyRequests", message.to_string())),
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                            "reason": "TooManyRequests", "details": {"causes": [{"reason": "DisruptionBudget",
                            "message": format!("The disruption budget {}-pdb needs 2 healthy pods and has 2 currently", self.workloads[wl_index].name)}]}, "code": 429}),
                    )
                } else {
                    (
                        201,
                        None,
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                    )
                };
                let actor = self.actors.drainer();
                let req = Request::new(
                    at,
                    write(&mut self.rng),
                    "create",
                    actor,
                    ObjectRef::new("pods", &ns, &name).subresource("eviction"),
                    code,
                    "RequestResponse",
                )
                .with_failure(failure)
                .request(body)
                .response(to_json(&response));
                self.emit(req);
            }
            Act::RemoveFinalizer => {
                let wl = &self.workloads[wl_index];
                let finalizer = live.model.remove_finalizer().unwrap_or_default();
                let body = to_json(
                    &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [finalizer]}}),
                );
                let response = live.model.pod_json(wl);
                let actor = self.actors.service(
                    "platform",
                    "cleanup-controller",
                    "cleanup-controller/v1.4.0 (linux/amd64)",
                );
                self.pod_write(at, actor, "patch", &ns, &name, body, response);
            }
            Act::Upgrade { image } => {
                let wl = &self.workloads[wl_index];
                let order: Vec<serde_json::Value> = wl
                    .containers
                    .iter()
                    .map(|c| json!({"name": c.name}))
                    .collect();
                let body = to_json(
                    &json!({"spec": {"$setElementOrder/containers": order, "containers": [{"image": image, "name": wl.containers[0].name}]}}),
                );
                live.model.set_image(image);
                let response = live.model.pod_json(wl);
                let actor = self.actors.user();
                self.pod_write(at, actor, "patch", &ns, &name, body, response);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pod_write(
        &mut self,
        at: i64,
        actor: Arc<Actor>,
        verb: &'static str,
        ns: &str,
        name: &str,
        body: String,
        response: String,
    ) {
        let req = Request::new(
            at,
            latency(&mut self.rng, true),
            verb,
            actor,
            ObjectRef::new("pods", ns, name),
            200,
            "RequestResponse",
        )
        .request(body)
        .response(response);
        self.emit(req);
    }

    fn status_request(&mut self, at: i64, actor: Arc<Actor>, ns: &str, name: &str, body: String) {
        let req = Request::new(
            at,
            latency(&mut self.rng, true),
            "patch",
            actor,
            ObjectRef::new("pods", ns, name).subresource("status"),
            200,
            "Request",
        )
        .request(body);
        self.emit(req);
    }

    fn event_request(
        &mut self,
        at: i64,
        actor: Arc<Actor>,
        ns: &str,
        event_name: &str,
        count: u32,
        body: String,
    ) {
        let verb = if count > 1 { "patch" } else { "create" };
        let object_name = if verb == "create" { "" } else { event_name };
        let mut object = ObjectRef::new("events", ns, object_name);
        if verb == "create" {
            object.name = event_name.to_string();
        }
        let req = Request::new(
            at,
            latency(&mut self.rng, true),
            verb,
            actor,
            object,
            if verb == "create" { 201 } else { 200 },
            "Request",
        )
        .request(body);
        self.emit(req);
    }

    fn pod_event(&mut self, live: &Live, e: &EventAct, at: i64) {
        let wl = &self.workloads[live.model.workload];
        let node = &self.nodes[live.model.shape.node.unwrap_or(0)];
        let field = e.container.map(|slot| {
            let (list, name) = if slot.init {
                ("initContainers", &wl.init[slot.index].name)
            } else {
                ("containers", &wl.containers[slot.index].name)
            };
            format!("spec.{list}{{{name}}}")
        });
        let involved = pod_reference(&live.model, wl, field.as_deref());
        let event_name = event_name(
            &live.model.shape.name,
            e.reason,
            &[&e.message, field.as_deref().unwrap_or_default()],
            live.model.shape.uid.as_bytes(),
        );
        let (component, host, actor) = match e.component {
            Component::Kubelet => (
                "kubelet",
                Some(node.name.as_str()),
                self.actors.kubelet(node.index),
            ),
            Component::AttachDetach => (
                "attachdetach-controller",
                None,
                self.actors.controller("attachdetach-controller"),
            ),
            Component::NodeController => (
                "node-controller",
                None,
                self.actors.controller("node-controller"),
            ),
        };
        let ns = wl.namespace.clone();
        let body = core_event_body(
            &event_name,
            &ns,
            &involved,
            e.reason,
            &e.message,
            component,
            host,
            e.warning,
            e.count,
            at,
            at,
        );
        self.event_request(at, actor, &ns, &event_name, e.count, body);
    }
}

/// How long the apiserver an actor's requests go to holds its lines (0 for the first:
/// no batching). An actor always talks to the same apiserver.
fn delivery_period(actor: &Actor, apiservers: usize) -> i64 {
    let h = actor
        .user
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (h % apiservers.max(1) as u64) as i64 * S
}

/// `DeleteOptions` as clients send them (keys in order).
fn delete_options(grace: Option<i64>, uid: Option<&str>, background: bool) -> String {
    json::object(160, |o| {
        o.str("apiVersion", "v1");
        if let Some(g) = grace {
            o.int("gracePeriodSeconds", g);
        }
        o.str("kind", "DeleteOptions");
        if let Some(uid) = uid {
            o.obj("preconditions", |p| {
                p.str("uid", uid);
            });
        }
        if background {
            o.str("propagationPolicy", "Background");
        }
    })
}

/// A client-side Event name: `<object>.<16 hex>`, stable for a repeated Event so its
/// repeats patch the same object.
fn event_name(object: &str, reason: &str, key: &[&str], salt: &[u8]) -> String {
    let h = reason
        .bytes()
        .chain(key.iter().flat_map(|part| part.bytes()))
        .chain(salt.iter().copied())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let mut name = String::with_capacity(object.len() + 17);
    name.push_str(object);
    name.push('.');
    push_hex(&mut name, h | 0x1000_0000_0000_0000);
    name
}

impl SimConfig {
    fn workload_upgrades(&self, wl: &Workload) -> bool {
        matches!(
            wl.kind,
            crate::cluster::WorkloadKind::Deployment | crate::cluster::WorkloadKind::StatefulSet
        )
    }
}
