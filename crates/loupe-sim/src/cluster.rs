//! The simulated cluster: nodes, workloads and the pod templates they stamp out.

use std::collections::HashSet;

use crate::rng::Rng;

/// Kubernetes minor versions the kubelets run: the current one and the three before it,
/// so Event wording drift (`Created container c` → `Container created`) is exercised.
pub const KUBELET_MINORS: [u32; 4] = [31, 32, 33, 34];
pub const CONTROL_PLANE_MINOR: u32 = 34;
/// The readiness gate some workloads declare (a load balancer controller sets it).
pub const READINESS_GATE: &str = "cloud.example.com/load-balancer-ready";

pub struct Node {
    pub name: String,
    pub ip: String,
    /// Multiplies kubelet-side latencies: 1.0 is a healthy node, 3.0 a slow one.
    pub speed: f64,
    pub minor: u32,
    /// Images already present on the node.
    pub images: HashSet<String>,
    /// When the node's (serialized) image puller is busy: (start, end) µs, in order. A
    /// pod's whole life is planned at its creation, so a later pull (an upgrade's) can be
    /// booked before an earlier one: pulls take the first free gap, not the end.
    pub pulls: Vec<(i64, i64)>,
    pub next_ip: u32,
    pub index: usize,
    /// The UID of its `kube-node-lease` Lease, renewed every 10 s.
    pub lease_uid: String,
}

impl Node {
    /// Books the serialized puller for `len` µs from `at` or the first gap after it;
    /// returns when the pull starts.
    pub fn book_pull(&mut self, at: i64, len: i64) -> i64 {
        let mut start = at;
        let mut slot = self.pulls.len();
        for (i, &(b, e)) in self.pulls.iter().enumerate() {
            if e <= start {
                continue;
            }
            if b >= start + len {
                slot = i;
                break;
            }
            start = e;
        }
        self.pulls.insert(slot, (start, start + len));
        start
    }

    /// Forgets pulls that ended before `t` (no pod created from then on pulls earlier).
    pub fn forget_pulls_before(&mut self, t: i64) {
        let keep = self.pulls.partition_point(|&(_, e)| e < t);
        self.pulls.drain(..keep);
    }

    pub fn kubelet_agent(&self) -> String {
        format!(
            "kubelet/v1.{}.{} (linux/amd64) kubernetes/{}",
            self.minor,
            self.minor % 7 + 2,
            git_hash(self.minor)
        )
    }

    /// The next pod IP from this node's /24.
    pub fn allocate_ip(&mut self) -> String {
        self.next_ip = self.next_ip % 250 + 1;
        format!(
            "10.{}.{}.{}",
            64 + self.index / 256,
            self.index % 256,
            self.next_ip + 2
        )
    }
}

pub fn git_hash(minor: u32) -> &'static str {
    match minor {
        31 => "a78aa47",
        32 => "9894294",
        33 => "a894bf6",
        _ => "5d2b2e4",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    Job,
    DaemonSet,
}

impl WorkloadKind {
    /// The controller that creates and deletes this kind's pods.
    pub fn controller(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "replicaset-controller",
            WorkloadKind::StatefulSet => "statefulset-controller",
            WorkloadKind::Job => "job-controller",
            WorkloadKind::DaemonSet => "daemon-set-controller",
        }
    }
    pub fn owner_kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
    pub fn owner_api(self) -> &'static str {
        match self {
            WorkloadKind::Job => "batch/v1",
            _ => "apps/v1",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub image_bytes: u64,
    pub post_start: bool,
    pub pre_stop: bool,
    pub readiness: bool,
    pub startup: bool,
    pub liveness: bool,
    /// An init container with `restartPolicy: Always` (a sidecar).
    pub sidecar: bool,
    pub cpu_m: u32,
    pub mem_mi: u32,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// The owner named in the pods' ownerReferences (the ReplicaSet of a Deployment).
    pub owner: String,
    pub owner_uid: String,
    pub labels: Vec<(String, String)>,
    pub init: Vec<ContainerSpec>,
    pub containers: Vec<ContainerSpec>,
    pub readiness_gate: Option<String>,
    /// StatefulSets: the volumeClaimTemplate name (claims are `<tpl>-<pod>`).
    pub claim_template: Option<String>,
    pub config_map: Option<String>,
    pub secret_env: Option<String>,
    pub finalizer: Option<String>,
    pub grace_seconds: i64,
    pub priority_class: Option<String>,
    /// Extra env entries per container: pod bodies of 1–20 KB as in real clusters.
    pub padding: usize,
    pub next_ordinal: u32,
    pub weight: u32,
}

impl Workload {
    pub fn controller_user(&self) -> String {
        format!(
            "system:serviceaccount:kube-system:{}",
            self.kind.controller()
        )
    }
    pub fn controller_agent(&self) -> String {
        format!(
            "kube-controller-manager/v1.{CONTROL_PLANE_MINOR}.2 (linux/amd64) kubernetes/{}/system:serviceaccount:kube-system:{}",
            git_hash(CONTROL_PLANE_MINOR),
            self.kind.controller()
        )
    }
    pub fn restart_never(&self) -> bool {
        self.kind == WorkloadKind::Job
    }
}

/// Size and shape of a simulated cluster.
#[derive(Debug, Clone)]
pub struct Shape {
    pub nodes: usize,
    pub workloads: usize,
    pub namespaces: usize,
    pub slow_node_share: f64,
}

const REGISTRY: &str = "registry.example.com";

fn container(rng: &mut Rng, name: &str, image: &str, padding_hint: bool) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: image.to_string(),
        image_bytes: 15_000_000 + rng.below(280_000_000),
        post_start: false,
        pre_stop: false,
        readiness: padding_hint,
        startup: false,
        liveness: false,
        sidecar: false,
        cpu_m: [50, 100, 250, 500][rng.below(4) as usize],
        mem_mi: [64, 128, 256, 512][rng.below(4) as usize],
    }
}

impl Node {
    /// Whether the node has `image`: pulled during the run, or there from the start (most
    /// images of running workloads are; decided by a hash, so a 5 000-node cluster does
    /// not hold millions of cache entries).
    pub fn has_image(&self, image: &str, seed: u64) -> bool {
        if self.images.contains(image) {
            return true;
        }
        let h = image.bytes().fold(
            seed ^ (self.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3),
        );
        let mut r = Rng::new(h);
        // Fresh images (an upgrade's new tag, a missing one) are never pre-pulled.
        !image.contains(":2.0.") && !image.ends_with("-missing") && r.chance(WARM_SHARE)
    }
}

/// Share of the workload images a node has before the run starts.
const WARM_SHARE: f64 = 0.75;

/// A lease's (stable) UID.
pub fn lease_uid(name: &str) -> String {
    let h = name.bytes().fold(0x1ea5e, |h: u64, b| {
        h.wrapping_mul(131).wrapping_add(u64::from(b))
    });
    Rng::new(h).uuid()
}

pub fn build_nodes(shape: &Shape, seed: u64) -> Vec<Node> {
    (0..shape.nodes)
        .map(|i| {
            let mut rng = Rng::derive(seed, 11, i as u64);
            let speed = if rng.chance(shape.slow_node_share) {
                2.0 + rng.unit() * 2.0
            } else {
                0.8 + rng.unit() * 0.5
            };
            let name = format!("node-{}-{:04}", ["a", "b", "c"][i % 3], i);
            Node {
                lease_uid: lease_uid(&name),
                name,
                ip: format!("10.0.{}.{}", 1 + i / 250, 10 + i % 250),
                speed,
                minor: KUBELET_MINORS[(i / 3) % KUBELET_MINORS.len()],
                images: HashSet::new(),
                pulls: Vec::new(),
                next_ip: 0,
                index: i,
            }
        })
        .collect()
}

pub fn build_workloads(shape: &Shape, seed: u64) -> Vec<Workload> {
    const APPS: [&str; 12] = [
        "web", "api", "cart", "search", "payments", "auth", "catalog", "mailer", "reports",
        "ingest", "billing", "profile",
    ];
    (0..shape.workloads)
        .map(|i| {
            let mut rng = Rng::derive(seed, 13, i as u64);
            let kind = match i % 10 {
                0..=5 => WorkloadKind::Deployment,
                6 | 7 => WorkloadKind::StatefulSet,
                8 => WorkloadKind::Job,
                _ => WorkloadKind::DaemonSet,
            };
            let app = format!("{}-{}", APPS[i % APPS.len()], i / APPS.len());
            let namespace = if kind == WorkloadKind::DaemonSet {
                "kube-system".to_string()
            } else {
                format!("team-{}", i % shape.namespaces.max(1))
            };
            let version = 1 + rng.below(9);
            let mut main = container(
                &mut rng,
                "app",
                &format!("{REGISTRY}/{app}:1.{version}.0"),
                kind != WorkloadKind::Job,
            );
            main.post_start = rng.chance(0.3);
            main.pre_stop = rng.chance(0.3);
            main.startup = rng.chance(0.3) && kind != WorkloadKind::Job;
            main.liveness = kind != WorkloadKind::Job;
            let mut containers = vec![main];
            let mut init = Vec::new();
            if rng.chance(0.4) {
                init.push(container(
                    &mut rng,
                    "migrate",
                    &format!("{REGISTRY}/{app}-migrate:1.{version}.0"),
                    false,
                ));
            }
            if rng.chance(0.3) && kind != WorkloadKind::Job {
                let mut proxy = container(
                    &mut rng,
                    "proxy",
                    &format!("{REGISTRY}/envoy:1.31.2"),
                    false,
                );
                proxy.sidecar = true;
                init.push(proxy);
            }
            if rng.chance(0.35) {
                containers.push(container(
                    &mut rng,
                    "log-shipper",
                    &format!("{REGISTRY}/fluent-bit:3.1.9"),
                    false,
                ));
            }
            let hash = format!("{:x}", rng.next_u64() & 0xff_ffff_ffff);
            let owner = match kind {
                WorkloadKind::Deployment => format!("{app}-{}", &hash[..hash.len().min(10)]),
                _ => app.clone(),
            };
            Workload {
                kind,
                labels: vec![
                    ("app.kubernetes.io/name".into(), app.clone()),
                    ("app.kubernetes.io/part-of".into(), "shop".into()),
                ],
                namespace,
                owner,
                owner_uid: rng.uuid(),
                init,
                containers,
                readiness_gate: rng.chance(0.15).then(|| READINESS_GATE.to_string()),
                claim_template: (kind == WorkloadKind::StatefulSet).then(|| "data".to_string()),
                config_map: rng.chance(0.5).then(|| format!("{app}-config")),
                secret_env: rng.chance(0.4).then(|| format!("{app}-credentials")),
                finalizer: rng
                    .chance(0.1)
                    .then(|| "example.com/cleanup-protection".to_string()),
                grace_seconds: [30, 30, 30, 60, 10][rng.below(5) as usize],
                priority_class: rng.chance(0.2).then(|| "high-priority".to_string()),
                padding: rng.below(90) as usize,
                name: app,
                next_ordinal: 0,
                weight: match kind {
                    WorkloadKind::Deployment => 6,
                    WorkloadKind::StatefulSet => 2,
                    WorkloadKind::Job => 3,
                    WorkloadKind::DaemonSet => 1,
                },
            }
        })
        .collect()
}
