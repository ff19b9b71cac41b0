//! Conformance on real third-party audit data (../shared/corpus, see its README).
//!
//! A fresh clone has no ../shared: these tests then say so and pass, unless
//! LOUPE_REQUIRE_CORPUS=1 (set by .ci/run), which makes a missing corpus a failure.

use std::path::PathBuf;

use loupe_facts::Fact;
use loupe_ingest::{Pipeline, PipelineConfig};
use loupe_store::{PodFilter, SqliteStore, StoreReader};

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("LOUPE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        });
    if dir.join("audit").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("LOUPE_REQUIRE_CORPUS").is_some() {
        panic!(
            "LOUPE_REQUIRE_CORPUS is set but the corpus is not at {}",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: the shared corpus is not at {} (set LOUPE_CORPUS, or clone beside ../shared)",
        dir.display()
    );
    None
}

fn replay(sub: &str) -> Option<(tempfile::TempDir, Pipeline)> {
    let dir = corpus()?;
    let data = tempfile::tempdir().unwrap();
    let mut p = Pipeline::new(
        SqliteStore::open(data.path()).unwrap(),
        PipelineConfig::default(),
    );
    p.replay("corpus", &[dir.join(sub)]).unwrap();
    Some((data, p))
}

#[test]
fn falco_traces_all_read_and_the_malformed_one_is_located() {
    let Some((_d, p)) = replay("audit/falco-k8s-audit-traces") else {
        return;
    };
    let stats = &p.totals()["corpus"];
    assert_eq!(stats.records, 52, "{stats:?}");
    assert_eq!(stats.malformed, 1);
    let bad = &p.malformed()[0].1;
    assert!(
        bad.source.ends_with("fal_01_003.json") && bad.line == 1,
        "{bad:?}"
    );
    let pods = p.store().pods(&PodFilter::default()).unwrap();
    let namespaces: std::collections::BTreeSet<_> =
        pods.iter().map(|p| p.namespace.as_str()).collect();
    assert!(
        namespaces.contains("kube-system")
            && namespaces.contains("kube-public")
            && namespaces.contains("default")
    );
    // Every pod create (v1beta1, v1, and events without apiVersion) gave a spec.
    for pod in &pods {
        let t = p.store().timeline(&pod.cluster, &pod.uid).unwrap();
        let created = t.iter().find_map(|f| match &f.fact {
            Fact::PodCreated(c) => Some(c.containers.len()),
            _ => None,
        });
        assert!(
            created.is_some_and(|n| n >= 1),
            "{} has no pod_created",
            pod.name
        );
    }
    // Ten pod creates, two of them the same request (one auditID, edited copies).
    assert_eq!(pods.len(), 9);
    assert_eq!(stats.duplicates, 1);
    let (mut privileged, mut host_network) = (0, 0);
    for pod in &pods {
        for f in p.store().timeline(&pod.cluster, &pod.uid).unwrap() {
            if let Fact::PodCreated(created) = f.fact {
                privileged += created.containers.iter().filter(|c| c.privileged).count();
                host_network += created.host_network as usize;
            }
        }
    }
    assert!(
        privileged >= 2 && host_network >= 1,
        "privileged {privileged}, hostNetwork {host_network}"
    );
}

#[test]
fn audit2rbac_demo_counts_every_request() {
    let Some((_d, p)) = replay("audit/audit2rbac-demo") else {
        return;
    };
    let stats = &p.totals()["corpus"];
    // 37 events in demo.log, plus the policy YAML beside it, reported as not an event.
    assert_eq!(stats.records, 38, "{stats:?}");
    assert_eq!(stats.malformed, 1);
    assert_eq!(
        stats.records - stats.malformed,
        stats.skipped + stats.analysed + stats.non_final + stats.duplicates
    );
}

#[test]
fn kube_audit_rest_events_map_to_their_pods() {
    let Some((_d, p)) = replay("../corpus/events/kube-audit-rest-k3s") else {
        return;
    };
    let stats = &p.totals()["corpus"];
    assert_eq!(stats.records, 59);
    assert_eq!(stats.malformed, 0, "{:?}", p.malformed());
    let mut reasons = Vec::new();
    for pod in p.store().pods(&PodFilter::default()).unwrap() {
        for f in p.store().timeline(&pod.cluster, &pod.uid).unwrap() {
            if let Fact::Event { reason, .. } = f.fact {
                reasons.push(reason);
            }
        }
    }
    for r in ["Pulled", "Created", "Started", "SandboxChanged"] {
        assert!(
            reasons.iter().any(|x| x == r),
            "{r} not mapped to a pod: {reasons:?}"
        );
    }
}

#[test]
fn gke_cloud_logging_entries_give_real_container_states() {
    let Some((_d, p)) = replay("audit/khi-test-logs") else {
        return;
    };
    let stats = &p.totals()["corpus"];
    assert_eq!(
        stats.malformed,
        3,
        "the three Pod manifests are not audit events: {:?}",
        p.malformed()
    );
    let pods = p.store().pods(&PodFilter::default()).unwrap();
    let pod = pods
        .iter()
        .find(|p| p.name == "nginx-deployment-surge-8655b4b8c5-xf5f4")
        .expect("the pod");
    let t = p.store().timeline(&pod.cluster, &pod.uid).unwrap();
    assert!(t.iter().any(|f| matches!(&f.fact, Fact::PodCreated(_))));
    assert!(t
        .iter()
        .any(|f| matches!(&f.fact, Fact::ContainerRunning { .. })));
    assert!(t
        .iter()
        .any(|f| matches!(&f.fact, Fact::ContainerWaiting { .. })));
}
