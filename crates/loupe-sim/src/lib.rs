//! `loupe-sim`: a cluster simulator that writes exactly what a kube-apiserver's audit
//! log holds for a population of pods, with faults injected by result code and the
//! ground truth of every pod beside it.
//!
//! No Kubernetes cluster runs where Loupe is built and tested, and public audit logs
//! with whole pod lifecycles do not exist; KWOK's own logs lack the kubelet (see the
//! reference, §6). So the simulator models the real components: controllers create
//! pods with `generateName`, the scheduler binds them and reports through
//! `events.k8s.io` Events, kubelets (`system:node:<node>`, kubelet user agents of four
//! minor versions) write core Events and strategic-merge status patches, users and
//! controllers delete gracefully, finalizers are removed by patches, the kubelet's
//! grace-0 delete removes the pod. Noise (leases, node status, GETs, lists, watches
//! that end at `ResponseStarted`, non-resource URLs) comes in proportion.
//!
//! Layers, each pure: [`cluster`] (nodes, workloads), [`faults`] (the code table),
//! [`plan`] (one pod's requests, in time), [`render`] (requests → audit JSON, through a
//! field-by-field JSON writer), `background` (leases, heartbeats, watches), and
//! [`engine`] (the loop that interleaves them in completion order, on two threads: pods
//! on one, audit events, background and noise on the caller's). [`LineWriter`] writes
//! the lines to any `io::Write` without copying them first.
//! Deterministic for a seed: the same config gives the same bytes.

mod background;
pub mod cluster;
pub mod engine;
pub mod faults;
mod json;
mod lines;
pub mod model;
pub mod plan;
pub mod render;
pub mod rng;

pub use engine::{run, Summary};
pub use faults::{Code, CodeInfo, FaultClass, FaultError, FaultMix, Lifecycle, CODES};
pub use lines::LineWriter;
pub use model::{Label, Milestones, Verdict};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub cluster: String,
    pub seed: u64,
    /// Pods created over the run (a refused create counts as one).
    pub pods: usize,
    pub nodes: usize,
    pub workloads: usize,
    pub namespaces: usize,
    /// Mean pod creations per second of audit time (Poisson arrivals).
    pub pods_per_second: f64,
    /// Audit time of the first event, µs.
    pub start_us: i64,
    pub faults: FaultMix,
    /// Share of pods deleted within the run (the rest are still in flight at its end).
    pub delete_share: f64,
    /// Share of Deployment/StatefulSet pods whose image is changed in place.
    pub upgrade_share: f64,
    /// Median life of a delivered pod before it is deleted, seconds.
    pub lifetime_seconds: f64,
    /// Median time before the owner of a stuck pod gives up and deletes it, seconds.
    pub stuck_seconds: f64,
    /// Audit time simulated after the last creation, seconds.
    pub tail_seconds: f64,
    pub apiservers: usize,
    /// Write `RequestReceived` events as well (a policy without `omitStages`).
    pub request_received: bool,
    /// Unrelated requests (GETs, lists, non-resource URLs) per pod-related request.
    pub noise_per_event: f64,
    /// Long-running watches open at any time.
    pub watchers: usize,
    pub slow_node_share: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            cluster: "sim".into(),
            seed: 1,
            pods: 200,
            nodes: 6,
            workloads: 12,
            namespaces: 3,
            pods_per_second: 2.0,
            start_us: 1_767_225_600_000_000, // 2026-01-01T00:00:00Z
            faults: FaultMix::default(),
            delete_share: 0.7,
            upgrade_share: 0.1,
            lifetime_seconds: 240.0,
            stuck_seconds: 420.0,
            tail_seconds: 300.0,
            apiservers: 2,
            request_received: true,
            noise_per_event: 2.0,
            watchers: 8,
            slow_node_share: 0.15,
        }
    }
}

/// A named preset of cluster size and churn.
pub struct Profile {
    pub name: &'static str,
    pub about: &'static str,
    pub config: fn() -> SimConfig,
}

pub const PROFILES: &[Profile] = &[
    Profile {
        name: "dev",
        about: "a small dev cluster: 3 nodes, 200 pods at 1/s, 1 apiserver",
        config: || SimConfig {
            nodes: 3,
            workloads: 6,
            namespaces: 2,
            pods: 200,
            pods_per_second: 1.0,
            apiservers: 1,
            watchers: 4,
            ..SimConfig::default()
        },
    },
    Profile {
        name: "default",
        about: "a team cluster: 6 nodes, 200 pods at 2/s, 2 apiservers, 5% faults",
        config: || SimConfig {
            faults: FaultMix::every_code(0.05 / 50.0),
            ..SimConfig::default()
        },
    },
    Profile {
        name: "large",
        about: "5 000 nodes and 150 000 pods at 50/s, 3 apiservers",
        config: || SimConfig {
            nodes: 5000,
            workloads: 3000,
            namespaces: 200,
            pods: 150_000,
            pods_per_second: 50.0,
            apiservers: 3,
            watchers: 200,
            noise_per_event: 1.0,
            faults: FaultMix::every_code(0.03 / 50.0),
            ..SimConfig::default()
        },
    },
    Profile {
        name: "burst",
        about: "a burst: 10 000 pods created in a minute on 500 nodes",
        config: || SimConfig {
            nodes: 500,
            workloads: 200,
            namespaces: 20,
            pods: 10_000,
            pods_per_second: 10_000.0 / 60.0,
            apiservers: 3,
            watchers: 40,
            noise_per_event: 1.0,
            faults: FaultMix::every_code(0.02 / 50.0),
            ..SimConfig::default()
        },
    },
];

pub fn profile(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}
