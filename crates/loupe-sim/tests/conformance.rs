//! The simulator's output against real audit data (../shared/corpus): for every kind of
//! request both have, the simulated events carry the fields the real ones carry, and no
//! field the real ones never carry — up to the documented differences between the
//! corpus's Kubernetes versions (2017–2025) and the ones simulated (1.31–1.34).
//!
//! Needs the shared corpus: skipped (and said so) when it is absent, a failure when
//! LOUPE_REQUIRE_CORPUS=1 (set by .ci/run).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use loupe_sim::{profile, run, FaultMix, SimConfig};
use serde_json::Value;

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

/// Field sets seen for one (kind, path): their union and their intersection.
#[derive(Default, Debug)]
struct Fields {
    union: BTreeSet<String>,
    every: Option<BTreeSet<String>>,
    seen: usize,
}

impl Fields {
    fn add(&mut self, keys: BTreeSet<String>) {
        self.seen += 1;
        self.union.extend(keys.iter().cloned());
        self.every = Some(match self.every.take() {
            Some(e) => e.intersection(&keys).cloned().collect(),
            None => keys,
        });
    }
}

type Shapes = BTreeMap<(String, String), Fields>;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn kind(e: &Value) -> String {
    let r = &e["objectRef"];
    let failed = e["responseStatus"]["code"].as_u64().unwrap_or(0) >= 400;
    format!(
        "{} {}{}{}",
        e["verb"].as_str().unwrap_or(""),
        r["resource"].as_str().unwrap_or("(non-resource)"),
        r["subresource"]
            .as_str()
            .map(|s| format!("/{s}"))
            .unwrap_or_default(),
        if failed { " (failed)" } else { "" }
    )
}

/// Records the field sets of an audit event (final stages only: the corpus has no
/// RequestReceived events to compare with).
fn record_event(shapes: &mut Shapes, e: &Value) {
    let stage = e["stage"].as_str().unwrap_or("");
    if !matches!(stage, "ResponseComplete" | "ResponseStarted") {
        return;
    }
    let k = kind(e);
    let mut add = |path: &str, v: &Value| {
        if v.is_object() {
            shapes
                .entry((k.clone(), path.to_string()))
                .or_default()
                .add(keys(v));
        }
    };
    // Bodies depend on the level the policy logged, not on the kind.
    let mut envelope = e.clone();
    if let Some(o) = envelope.as_object_mut() {
        o.remove("requestObject");
        o.remove("responseObject");
        o.remove("level");
    }
    add("envelope", &envelope);
    add("user", &e["user"]);
    add("objectRef", &e["objectRef"]);
    add("responseStatus", &e["responseStatus"]);
    if e["objectRef"]["resource"] == "pods" && e["objectRef"]["subresource"].is_null() {
        for side in ["requestObject", "responseObject"] {
            let pod = &e[side];
            if pod["kind"] != "Pod" {
                continue;
            }
            add(&format!("{side}.metadata"), &pod["metadata"]);
            add(&format!("{side}.spec"), &pod["spec"]);
            add(&format!("{side}.status"), &pod["status"]);
            for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
                add(&format!("{side}.spec.containers[]"), c);
            }
        }
    }
    if e["objectRef"]["subresource"] == "status" && e["objectRef"]["resource"] == "pods" {
        record_status_patch(shapes, &e["requestObject"]);
    }
    if e["objectRef"]["resource"] == "events"
        && e["verb"] == "create"
        && e["requestObject"]["apiVersion"] == "v1"
    {
        record_core_event(shapes, &e["requestObject"]);
    }
}

fn record_status_patch(shapes: &mut Shapes, patch: &Value) {
    let k = "kubelet status patch".to_string();
    let mut add = |path: &str, v: &Value| {
        if v.is_object() {
            shapes
                .entry((k.clone(), path.to_string()))
                .or_default()
                .add(keys(v));
        }
    };
    add("patch", patch);
    add("patch.metadata", &patch["metadata"]);
    for c in patch["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        add("conditions[]", c);
    }
    for c in patch["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let restarted = c["lastState"].as_object().is_some_and(|o| !o.is_empty());
        let state = match (
            c["state"].get("running").is_some(),
            c["state"].get("waiting").is_some(),
            restarted,
        ) {
            (true, _, _) => "running",
            (_, true, false) => "waiting",
            (_, true, true) => "waiting after a restart",
            _ => "terminated",
        };
        add(&format!("containerStatuses[] ({state})"), c);
    }
}

fn record_core_event(shapes: &mut Shapes, ev: &Value) {
    if ev["involvedObject"]["kind"] != "Pod" {
        return;
    }
    let k = "core v1 Event on a pod".to_string();
    let mut add = |path: &str, v: &Value| {
        if v.is_object() {
            shapes
                .entry((k.clone(), path.to_string()))
                .or_default()
                .add(keys(v));
        }
    };
    add("event", ev);
    add("involvedObject", &ev["involvedObject"]);
    add("source", &ev["source"]);
}

fn real_shapes(dir: &std::path::Path) -> Shapes {
    let mut shapes = Shapes::new();
    let mut json_lines = |path: PathBuf| {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if let Ok(mut e) = serde_json::from_str::<Value>(line) {
                if e["kind"] == "Event" {
                    normalize_old(&mut e);
                    record_event(&mut shapes, &e);
                }
            }
        }
    };
    for f in std::fs::read_dir(dir.join("audit/falco-k8s-audit-traces")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            json_lines(p);
        }
    }
    json_lines(dir.join("audit/audit2rbac-demo/demo.log"));
    // A modern (v1.32) event in YAML, and GKE entries holding real kubelet status patches.
    let mut oss: Value = serde_norway::from_str(
        &std::fs::read_to_string(dir.join("audit/khi-test-logs/oss/test-log.yaml")).unwrap(),
    )
    .unwrap();
    // `job: audit` was added by the collector that exported the line; it is not an
    // audit.k8s.io field.
    if let Some(o) = oss.as_object_mut() {
        o.remove("job");
    }
    record_event(&mut shapes, &oss);
    for n in 2..=3 {
        let p = dir.join(format!(
            "audit/khi-test-logs/k8s_audit/container_recorder_test_1_{n}.yaml"
        ));
        let entry: Value = serde_norway::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        let mut patch = entry["protoPayload"]["request"].clone();
        if let Some(o) = patch.as_object_mut() {
            o.remove("@type");
        }
        record_status_patch(&mut shapes, &patch);
    }
    // Real core Events as the apiserver admitted them (kube-audit-rest on k3s).
    let text = std::fs::read_to_string(dir.join("events/kube-audit-rest-k3s/kube-audit-rest.log"))
        .unwrap();
    for line in text.lines() {
        if let Ok(r) = serde_json::from_str::<Value>(line) {
            let ev = &r["request"]["object"];
            if ev["kind"] == "Event" && r["request"]["operation"] == "CREATE" {
                record_core_event(&mut shapes, ev);
            }
        }
    }
    shapes
}

/// Pre-v1 files (2017–2018) carry `timestamp` and `metadata.creationTimestamp` where v1
/// has `requestReceivedTimestamp` and `stageTimestamp`.
fn normalize_old(e: &mut Value) {
    if let Some(o) = e.as_object_mut() {
        if o.remove("timestamp").is_some() {
            o.entry("requestReceivedTimestamp").or_insert(Value::Null);
            o.entry("stageTimestamp").or_insert(Value::Null);
        }
        o.remove("metadata");
        o.entry("apiVersion").or_insert(Value::Null);
    }
}

/// Fields the simulator writes that the corpus cannot show, each with why.
const NEWER_OR_UNUSED: &[(&str, &str, &str)] = &[
    (
        "envelope",
        "userAgent",
        "recorded since Kubernetes 1.10; the falco traces (2018) predate it",
    ),
    (
        "envelope",
        "annotations",
        "authorization annotations since 1.11; audit2rbac's 2017 events lack them",
    ),
    (
        "user",
        "extra",
        "the credential-id extra is recorded since 1.32 (see the khi v1.32 event)",
    ),
    (
        "user",
        "uid",
        "service-account users carry a uid; the corpus's list/get events are by x509 users",
    ),
    (
        "objectRef",
        "name",
        "named objects; the corpus's list requests have none",
    ),
    (
        "objectRef",
        "uid",
        "set from the request's object for creates/updates (LogRequestObject)",
    ),
    (
        "objectRef",
        "resourceVersion",
        "set from the request's object for updates (LogRequestObject)",
    ),
    (
        "objectRef",
        "apiGroup",
        "non-core groups (coordination.k8s.io, discovery.k8s.io)",
    ),
    (
        "requestObject.metadata",
        "name",
        "StatefulSet pods are created with a name, not generateName",
    ),
    (
        "requestObject.metadata",
        "annotations",
        "pod templates with annotations",
    ),
    (
        "responseObject.metadata",
        "annotations",
        "pod templates with annotations",
    ),
    (
        "responseObject.metadata",
        "finalizers",
        "pods with a finalizer",
    ),
    (
        "responseObject.metadata",
        "deletionTimestamp",
        "deletes: the corpus has no pod delete at RequestResponse",
    ),
    (
        "responseObject.metadata",
        "deletionGracePeriodSeconds",
        "deletes",
    ),
    (
        "requestObject.spec",
        "enableServiceLinks",
        "defaulted into templates since 1.13",
    ),
    (
        "responseObject.spec",
        "enableServiceLinks",
        "defaulted since 1.13",
    ),
    (
        "responseObject.spec",
        "priority",
        "set by the Priority admission plugin, on by default since 1.14",
    ),
    (
        "responseObject.spec",
        "preemptionPolicy",
        "set by the Priority admission plugin since 1.19",
    ),
    (
        "requestObject.spec",
        "priorityClassName",
        "pods with a priority class",
    ),
    (
        "responseObject.spec",
        "priorityClassName",
        "pods with a priority class",
    ),
    (
        "requestObject.spec",
        "initContainers",
        "pods with init containers or sidecars",
    ),
    (
        "responseObject.spec",
        "initContainers",
        "pods with init containers or sidecars",
    ),
    (
        "requestObject.spec",
        "readinessGates",
        "pods with a readiness gate",
    ),
    (
        "responseObject.spec",
        "readinessGates",
        "pods with a readiness gate",
    ),
    ("responseObject.spec", "nodeName", "responses after binding"),
    (
        "responseObject.status",
        "conditions",
        "responses after the kubelet reported",
    ),
    (
        "responseObject.status",
        "containerStatuses",
        "responses after the kubelet reported",
    ),
    (
        "responseObject.status",
        "initContainerStatuses",
        "responses after the kubelet reported",
    ),
    (
        "responseObject.status",
        "hostIP",
        "responses after the kubelet reported",
    ),
    (
        "responseObject.status",
        "hostIPs",
        "dual-stack field since 1.28",
    ),
    (
        "responseObject.status",
        "podIP",
        "responses after the sandbox",
    ),
    (
        "responseObject.status",
        "podIPs",
        "dual-stack field since 1.16",
    ),
    (
        "responseObject.status",
        "startTime",
        "responses after the kubelet reported",
    ),
    ("responseObject.status", "nominatedNodeName", "preemption"),
    (
        "responseObject.status",
        "reason",
        "evicted or rejected pods",
    ),
    (
        "responseObject.status",
        "message",
        "evicted or rejected pods",
    ),
    (
        "spec.containers[]",
        "ports",
        "core/v1 Container fields the corpus's nginx pods do not use",
    ),
    ("spec.containers[]", "env", "as above"),
    ("spec.containers[]", "livenessProbe", "as above"),
    ("spec.containers[]", "readinessProbe", "as above"),
    ("spec.containers[]", "startupProbe", "as above (GA in 1.20)"),
    ("spec.containers[]", "lifecycle", "as above"),
    (
        "patch",
        "metadata",
        "the kubelet's patch always names the uid; the khi manifest entry is not a patch",
    ),
    ("status", "phase", "patches that change the phase"),
];

/// Fields the corpus has that current Kubernetes no longer writes.
const REMOVED: &[(&str, &str, &str)] = &[
    ("responseObject.metadata", "selfLink", "removed in 1.20"),
    (
        "spec.containers[]",
        "securityContext",
        "only the falco traces' privileged test pods set it",
    ),
    (
        "requestObject.spec",
        "hostNetwork",
        "only the falco traces' hostNetwork test pods set it",
    ),
    ("responseObject.spec", "hostNetwork", "as above"),
    (
        "envelope",
        "impersonatedUser",
        "present only on impersonated requests (all of audit2rbac's demo)",
    ),
    (
        "user",
        "uid",
        "service accounts have one; x509 users do not",
    ),
    (
        "event",
        "metadata",
        "compared separately: admitted Events carry server-set uid/managedFields",
    ),
];

fn allowed(table: &[(&str, &str, &str)], path: &str, field: &str) -> bool {
    table
        .iter()
        .any(|(p, f, _)| *f == field && (path == *p || path.ends_with(p)))
}

/// `<component>/v<version> (<os>/<arch>) kubernetes/<commit>[/<client>]`: how Kubernetes
/// components (client-go's default) identify themselves.
fn is_component_agent(agent: &str) -> bool {
    let Some((head, rest)) = agent.split_once(' ') else {
        return false;
    };
    let Some((name, version)) = head.split_once("/v") else {
        return false;
    };
    let Some((platform, tail)) = rest.split_once(") kubernetes/") else {
        return false;
    };
    let commit = tail.split('/').next().unwrap_or("");
    !name.is_empty()
        && version.split('.').count() == 3
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && platform.starts_with('(')
        && platform.contains('/')
        && commit.len() == 7
        && commit.chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn user_agents_have_the_shape_real_components_send() {
    let Some(dir) = corpus() else { return };
    let mut real = Vec::new();
    for path in [dir.join("audit/audit2rbac-demo/demo.log")]
        .into_iter()
        .chain(
            std::fs::read_dir(dir.join("audit/falco-k8s-audit-traces"))
                .unwrap()
                .map(|f| f.unwrap().path()),
        )
    {
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            if let Ok(e) = serde_json::from_str::<Value>(line) {
                if let Some(a) = e["userAgent"].as_str() {
                    real.push(a.to_string());
                }
            }
        }
    }
    real.push("kube-scheduler/v1.32.2 (linux/arm64) kubernetes/67a30c0/leader-election".into());
    assert!(
        real.len() >= 4 && real.iter().all(|a| is_component_agent(a)),
        "{real:?}"
    );
    let mut sim = BTreeSet::new();
    let config = SimConfig {
        pods: 40,
        faults: FaultMix::every_code(0.01),
        ..(profile("dev").unwrap().config)()
    };
    run(
        &config,
        &mut |_, line| {
            let e: Value = serde_json::from_str(&line).unwrap();
            sim.insert((
                e["user"]["username"].as_str().unwrap().to_string(),
                e["userAgent"].as_str().unwrap().to_string(),
            ));
        },
        &mut |_| {},
    );
    for (user, agent) in &sim {
        let component = user.starts_with("system:node:")
            || user.starts_with("system:kube-")
            || user.starts_with("system:serviceaccount:kube-system:");
        if component || user == "alice@example.com" {
            assert!(
                is_component_agent(agent),
                "{user}: {agent:?} is not a Kubernetes component's user agent"
            );
        }
        if user.starts_with("system:node:") {
            assert!(agent.starts_with("kubelet/v1.3"), "{user}: {agent}");
        }
    }
    // As in the v1.32 event: leader election has its own client suffix.
    assert!(sim
        .iter()
        .any(|(u, a)| u == "system:kube-scheduler" && a.ends_with("/leader-election")));
    assert!(sim
        .iter()
        .any(|(u, a)| u == "system:kube-scheduler" && a.ends_with("/scheduler")));
}

#[test]
fn simulated_events_have_the_fields_real_ones_have_and_no_others() {
    let Some(dir) = corpus() else { return };
    let real = real_shapes(&dir);
    let mut sim = Shapes::new();
    let config = SimConfig {
        pods: 120,
        faults: FaultMix::every_code(0.01),
        ..(profile("dev").unwrap().config)()
    };
    run(
        &config,
        &mut |_, line| {
            let e: Value = serde_json::from_str(&line).unwrap();
            record_event(&mut sim, &e);
        },
        &mut |_| {},
    );
    let mut compared = Vec::new();
    let mut problems = Vec::new();
    for ((kind, path), real_fields) in &real {
        let Some(sim_fields) = sim.get(&(kind.clone(), path.clone())) else {
            continue;
        };
        compared.push(format!(
            "{kind} · {path} ({} real, {} simulated)",
            real_fields.seen, sim_fields.seen
        ));
        for extra in sim_fields.union.difference(&real_fields.union) {
            if !allowed(NEWER_OR_UNUSED, path, extra) {
                problems.push(format!(
                    "{kind} · {path}: simulated events have {extra:?}, real ones never do"
                ));
            }
        }
        for missing in real_fields.every.iter().flatten() {
            if !sim_fields.union.contains(missing) && !allowed(REMOVED, path, missing) {
                problems.push(format!(
                    "{kind} · {path}: every real event has {missing:?}, no simulated one does"
                ));
            }
        }
    }
    eprintln!("compared:\n  {}", compared.join("\n  "));
    assert!(
        compared.len() >= 12,
        "too little in common to compare: {compared:?}"
    );
    for needed in [
        "create pods · requestObject.spec",
        "update leases · envelope",
        "kubelet status patch · conditions[]",
        "core v1 Event on a pod · event",
    ] {
        assert!(
            compared.iter().any(|c| c.starts_with(needed)),
            "{needed} was not compared"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
