//! The cluster's traffic besides the pods': every node's Lease renewal (10 s) and status
//! heartbeat (5 min), the control plane's leader-election Leases (2 s), long-running
//! watches, and unrelated requests in proportion to the analysed ones. On a 5 000-node
//! cluster this is most of the audit log, so it is made on the writer's thread, beside
//! the pods' engine, each kind from a random stream of its own.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::cluster::{lease_uid, Node};
use crate::json;
use crate::render::{latency, seconds, Actors, ObjectRef, Request};
use crate::rng::Rng;

const S: i64 = 1_000_000;
const MS: i64 = 1_000;

#[derive(Clone, Copy)]
enum Beat {
    NodeLease(usize),
    NodeHeartbeat(usize),
    ControlLease(usize),
    Watch(usize),
}

/// A node as its kubelet's background requests name it.
struct NodeName {
    name: String,
    lease_uid: String,
}

pub struct Background {
    rng: Rng,
    actors: Actors,
    nodes: Vec<NodeName>,
    /// When each beat is next due: (time, order of scheduling, beat).
    due: BinaryHeap<Reverse<(i64, u64, usize)>>,
    beats: Vec<Beat>,
    order: u64,
    /// Nothing is due at or after the end of the simulated window.
    horizon: i64,
}

impl Background {
    pub fn new(
        seed: u64,
        nodes: &[Node],
        actors: Actors,
        watchers: usize,
        start: i64,
        horizon: i64,
    ) -> Background {
        let mut b = Background {
            rng: Rng::derive(seed, 37, 0),
            actors,
            nodes: nodes
                .iter()
                .map(|n| NodeName {
                    name: n.name.clone(),
                    lease_uid: n.lease_uid.clone(),
                })
                .collect(),
            due: BinaryHeap::new(),
            beats: Vec::new(),
            order: 0,
            horizon,
        };
        for n in 0..nodes.len() {
            let offset = b.rng.between(0, 10 * S);
            b.add(Beat::NodeLease(n), start + offset);
            let offset = b.rng.between(0, 300 * S);
            b.add(Beat::NodeHeartbeat(n), start + offset);
        }
        for c in 0..2 {
            b.add(Beat::ControlLease(c), start + c as i64 * 700 * MS);
        }
        for w in 0..watchers {
            let offset = b.rng.between(0, 60 * S);
            b.add(Beat::Watch(w), start + offset);
        }
        b
    }

    fn add(&mut self, beat: Beat, at: i64) {
        self.beats.push(beat);
        self.schedule(self.beats.len() - 1, at);
    }

    fn schedule(&mut self, slot: usize, at: i64) {
        if at < self.horizon {
            self.order += 1;
            self.due.push(Reverse((at, self.order, slot)));
        }
    }

    /// The requests due before `until`, in time order, each with its audit ID.
    pub fn until(&mut self, until: i64, each: &mut dyn FnMut(Request, [u8; 36])) {
        while let Some(&Reverse((at, _, slot))) = self.due.peek() {
            if at >= until {
                break;
            }
            self.due.pop();
            let (req, next) = self.fire(self.beats[slot], at);
            let id = self.rng.uuid_bytes();
            each(req, id);
            self.schedule(slot, next);
        }
    }

    /// A beat's request, and when it is next due.
    fn fire(&mut self, beat: Beat, at: i64) -> (Request, i64) {
        match beat {
            Beat::NodeLease(n) => {
                let req = self.node_lease(at, n);
                (req, at + 10 * S + self.rng.between(0, 200 * MS))
            }
            Beat::NodeHeartbeat(n) => {
                let req = self.node_heartbeat(at, n);
                (req, at + 300 * S + self.rng.between(0, 2 * S))
            }
            Beat::ControlLease(c) => {
                let req = self.control_lease(at, c);
                (req, at + 2 * S + self.rng.between(0, 50 * MS))
            }
            Beat::Watch(w) => {
                // A watch still open when the window ends is closed with it, so the paced
                // stream does not wait for it.
                let ends = (at + self.rng.between(300 * S, 600 * S)).min(self.horizon);
                let req = self.watch(at, w, ends);
                (req, ends + self.rng.between(10 * MS, S))
            }
        }
    }

    fn node_lease(&mut self, at: i64, n: usize) -> Request {
        let node = &self.nodes[n];
        Request::new(
            at,
            latency(&mut self.rng, true),
            "update",
            self.actors.kubelet(n),
            ObjectRef::new("leases", "kube-node-lease", &node.name)
                .group("coordination.k8s.io", "v1")
                .object(
                    &node.lease_uid,
                    itoa::Buffer::new().format(at / 1000 % 10_000_000),
                ),
            200,
            "Metadata",
        )
    }

    fn node_heartbeat(&mut self, at: i64, n: usize) -> Request {
        let beat = seconds(at);
        const TYPES: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];
        let body = json::object(512, |o| {
            o.obj("status", |s| {
                s.arr("$setElementOrder/conditions", |a| {
                    for t in TYPES {
                        a.obj(|c| {
                            c.str("type", t);
                        });
                    }
                })
                .arr("conditions", |a| {
                    for t in TYPES {
                        a.obj(|c| {
                            c.str("lastHeartbeatTime", &beat).str("type", t);
                        });
                    }
                });
            });
        });
        Request::new(
            at,
            latency(&mut self.rng, true),
            "patch",
            self.actors.kubelet(n),
            ObjectRef::new("nodes", "", &self.nodes[n].name).subresource("status"),
            200,
            "Request",
        )
        .request(body)
    }

    fn control_lease(&mut self, at: i64, c: usize) -> Request {
        // Leader election runs on its own client, with its own user agent suffix.
        let (name, actor) = if c == 0 {
            (
                "kube-scheduler",
                self.actors
                    .leader_election("kube-scheduler", "system:kube-scheduler"),
            )
        } else {
            (
                "kube-controller-manager",
                self.actors
                    .leader_election("kube-controller-manager", "system:kube-controller-manager"),
            )
        };
        Request::new(
            at,
            latency(&mut self.rng, true),
            "update",
            actor,
            ObjectRef::new("leases", "kube-system", name)
                .group("coordination.k8s.io", "v1")
                .object(
                    &lease_uid(name),
                    itoa::Buffer::new().format(at / 1000 % 10_000_000),
                ),
            200,
            "Metadata",
        )
    }

    fn watch(&mut self, at: i64, w: usize, until: i64) -> Request {
        const RESOURCES: [(&str, &str, &str); 4] = [
            ("pods", "", "v1"),
            ("nodes", "", "v1"),
            ("endpointslices", "discovery.k8s.io", "v1"),
            ("configmaps", "", "v1"),
        ];
        let (resource, group, version) = RESOURCES[w % RESOURCES.len()];
        let actor = if w.is_multiple_of(2) {
            self.actors.scheduler()
        } else {
            self.actors.controller("endpointslice-controller")
        };
        Request::new(
            at,
            200,
            "watch",
            actor,
            ObjectRef::new(resource, "", "").group(group, version),
            200,
            "Metadata",
        )
        .watch_until(until)
    }
}

/// Unrelated requests (GETs, lists, non-resource URLs) in proportion to the analysed
/// ones, made on the writer's thread from a random stream of their own.
pub struct Noise {
    pub per_event: f64,
    pub nodes: usize,
    pub rng: Rng,
    pub actors: Actors,
}

impl Noise {
    /// The requests that accompany an analysed request completing at `at`.
    pub fn around(&mut self, at: i64, mut each: impl FnMut(&mut Rng, Request)) {
        let mut budget = self.per_event;
        while budget > 0.0 {
            if budget >= 1.0 || self.rng.chance(budget) {
                let at = at + self.rng.between(-2 * S, 2 * S);
                let req = self.request(at);
                each(&mut self.rng, req);
            }
            budget -= 1.0;
        }
    }

    fn request(&mut self, at: i64) -> Request {
        let n = self.rng.below(self.nodes as u64) as usize;
        let kubelet = self.actors.kubelet(n);
        let (verb, object, actor, non_resource) = match self.rng.below(6) {
            0 => (
                "get",
                ObjectRef::new("configmaps", "kube-system", "kube-root-ca.crt"),
                kubelet,
                None,
            ),
            1 => (
                "get",
                ObjectRef::new("secrets", "team-0", "registry-credentials"),
                kubelet,
                None,
            ),
            2 => (
                "list",
                ObjectRef::new("pods", "", ""),
                self.actors.controller("replicaset-controller"),
                None,
            ),
            3 => (
                "get",
                ObjectRef::new("endpointslices", "default", "kubernetes")
                    .group("discovery.k8s.io", "v1"),
                self.actors.controller("endpointslice-controller"),
                None,
            ),
            4 => (
                "get",
                ObjectRef::default(),
                self.actors
                    .service("monitoring", "prometheus", "Prometheus/2.53.1"),
                Some("/metrics"),
            ),
            _ => (
                "get",
                ObjectRef::default(),
                kubelet,
                Some(["/healthz", "/livez", "/readyz", "/version"][self.rng.below(4) as usize]),
            ),
        };
        Request::new(
            at,
            latency(&mut self.rng, false),
            verb,
            actor,
            object,
            200,
            "Metadata",
        )
        .with_non_resource(non_resource)
    }
}
