//! Sample audit streams: pod lifecycles as the apiserver records them, among noise.
//!
//! Deterministic for a seed. Each pod goes through the upstream sequence (create with the
//! full pod, binding, scheduler and kubelet Events, strategic-merge status patches, a
//! graceful delete and the kubelet's final grace-0 delete); a share of pods fail to pull
//! their image or are refused by a quota. Lines come out in completion order per apiserver
//! with two apiservers interleaved, so event time is not monotonic. The full simulator
//! with injected faults and ground truth builds on this.

use loupe_audit::format_micros;
use serde_json::{json, Value};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleConfig {
    pub pods: usize,
    pub seed: u64,
    /// Audit time of the first event, µs.
    pub start_us: i64,
    /// Pods created per second of audit time.
    pub pods_per_second: f64,
    /// Noise events (leases, GETs, watches, lists) per pod event.
    pub noise_per_event: usize,
    /// Extra labels/annotations/env per pod, to reach 1–20 KB bodies.
    pub padding: std::ops::Range<usize>,
    /// Delete pods after they ran; `false` leaves every pod in flight.
    pub delete: bool,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            pods: 20,
            seed: 1,
            start_us: 1_767_225_600_000_000, // 2026-01-01T00:00:00Z
            pods_per_second: 2.0,
            noise_per_event: 5,
            padding: 0..40,
            delete: true,
        }
    }
}

/// A small deterministic PRNG (SplitMix64): samples must not depend on a crate's version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn range(&mut self, r: std::ops::Range<usize>) -> usize {
        r.start + self.below((r.end - r.start) as u64) as usize
    }
}

/// How a sample pod's delivery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ready,
    ImagePullBackOff,
    QuotaRejected,
}

struct Line {
    ts: i64,
    apiserver: u8,
    json: String,
}

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// Generates the stream, calling `sink` with each line in output order, and returns the
/// outcome of each pod.
pub fn generate(config: &SampleConfig, mut sink: impl FnMut(&str)) -> Vec<Outcome> {
    let mut rng = Rng::new(config.seed);
    let mut pending: std::collections::BinaryHeap<std::cmp::Reverse<(i64, u64, usize)>> =
        Default::default();
    let mut lines: Vec<Option<Line>> = Vec::new();
    let mut outcomes = Vec::with_capacity(config.pods);
    let gap = (1_000_000.0 / config.pods_per_second) as i64;
    let mut seq = 0u64;
    let mut free: Vec<usize> = Vec::new();
    type Heap = std::collections::BinaryHeap<std::cmp::Reverse<(i64, u64, usize)>>;
    let mut emit_until =
        |limit: i64, pending: &mut Heap, lines: &mut Vec<Option<Line>>, free: &mut Vec<usize>| {
            while let Some(std::cmp::Reverse((key, _, idx))) = pending.peek().copied() {
                if key > limit {
                    break;
                }
                pending.pop();
                if let Some(line) = lines[idx].take() {
                    sink(&line.json);
                    free.push(idx);
                }
            }
        };
    for i in 0..config.pods {
        let t0 = config.start_us + i as i64 * gap;
        let outcome = match rng.below(20) {
            0 => Outcome::ImagePullBackOff,
            1 => Outcome::QuotaRejected,
            _ => Outcome::Ready,
        };
        outcomes.push(outcome);
        let mut out = Vec::new();
        pod_lifecycle(&mut rng, config, i, t0, outcome, &mut out);
        let noise_count = out.len() * config.noise_per_event;
        for n in 0..noise_count {
            let ts = t0 + rng.below(gap.max(1) as u64 * 4) as i64;
            out.push(noise(&mut rng, ts, n));
        }
        for line in out {
            // Each apiserver writes in completion order; the webhook merges them up to
            // two seconds apart.
            let key = line.ts
                + if line.apiserver == 1 {
                    rng.below(2_000_000) as i64
                } else {
                    0
                };
            let idx = match free.pop() {
                Some(i) => {
                    lines[i] = Some(line);
                    i
                }
                None => {
                    lines.push(Some(line));
                    lines.len() - 1
                }
            };
            pending.push(std::cmp::Reverse((key, seq, idx)));
            seq += 1;
        }
        emit_until(t0 - 5_000_000, &mut pending, &mut lines, &mut free);
    }
    emit_until(i64::MAX, &mut pending, &mut lines, &mut free);
    outcomes
}

// The arguments are the audit event's own fields, named at each call.
#[allow(clippy::too_many_arguments)]
fn audit(
    rng: &mut Rng,
    ts: i64,
    verb: &str,
    user: &str,
    agent: &str,
    object_ref: Value,
    code: u16,
    level: &str,
    request: Option<Value>,
    response: Option<Value>,
) -> Line {
    let apiserver = (rng.below(2)) as u8;
    let latency = 300 + rng.below(20_000) as i64;
    let mut e = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level,
        "auditID": uuid(rng), "stage": "ResponseComplete",
        "requestURI": request_uri(&object_ref), "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": [format!("10.0.{}.{}", apiserver, rng.below(250))], "userAgent": agent,
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": format_micros(ts - latency), "stageTimestamp": format_micros(ts),
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    });
    if code >= 400 {
        e["responseStatus"] = json!({"metadata": {}, "status": "Failure", "code": code, "reason": "Forbidden",
            "message": "pods \"web\" is forbidden: exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=8, limited: limits.cpu=8"});
    }
    if let Some(r) = request {
        e["requestObject"] = r;
    }
    if let Some(r) = response {
        e["responseObject"] = r;
    }
    Line {
        ts,
        apiserver,
        json: e.to_string(),
    }
}

fn request_uri(r: &Value) -> String {
    let ns = r["namespace"].as_str().unwrap_or("");
    let res = r["resource"].as_str().unwrap_or("");
    let group = r["apiGroup"].as_str().unwrap_or("");
    let base = if group.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group}/v1")
    };
    let mut uri = if ns.is_empty() {
        format!("{base}/{res}")
    } else {
        format!("{base}/namespaces/{ns}/{res}")
    };
    if let Some(n) = r["name"].as_str() {
        uri.push('/');
        uri.push_str(n);
    }
    if let Some(s) = r["subresource"].as_str() {
        uri.push('/');
        uri.push_str(s);
    }
    uri
}

pub fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

const KUBELET_AGENT: &str = "kubelet/v1.31.4 (linux/amd64) kubernetes/a78aa47";
const SCHED_AGENT: &str = "kube-scheduler/v1.31.4 (linux/amd64) kubernetes/a78aa47/scheduler";
const RS_AGENT: &str = "kube-controller-manager/v1.31.4 (linux/amd64) kubernetes/a78aa47/system:serviceaccount:kube-system:replicaset-controller";
const RS_USER: &str = "system:serviceaccount:kube-system:replicaset-controller";

fn pod_object(
    name: &str,
    uid: &str,
    image: &str,
    padding: usize,
    created: i64,
    node: Option<&str>,
) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("app".into(), json!("web"));
    labels.insert("pod-template-hash".into(), json!("7d4b9c8f5"));
    let mut annotations = serde_json::Map::new();
    let mut env = Vec::new();
    // Real pods grow with env, volumes and containers more than with annotations.
    for p in 0..padding {
        if p % 8 == 0 {
            annotations.insert(
                format!("example.com/note-{p}"),
                json!(format!("value {p} {}", "x".repeat(40))),
            );
        }
        env.push(json!({"name": format!("SETTING_{p}"), "value": "v".repeat(100)}));
    }
    let mut spec = json!({
        "volumes": [{"name": "kube-api-access-x1", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}], "defaultMode": 420}}],
        "containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080, "protocol": "TCP"}], "env": env,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default", "schedulerName": "default-scheduler", "priority": 0,
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    });
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "generateName": "web-7d4b9c8f5-", "namespace": "shop", "uid": uid,
            "resourceVersion": "1000", "creationTimestamp": format_micros(created / 1_000_000 * 1_000_000).replace(".000000", ""),
            "labels": labels, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f5", "uid": "rs-uid-1", "controller": true, "blockOwnerDeletion": true}]},
        "spec": spec, "status": {"phase": "Pending", "qosClass": "Burstable"}})
}

#[allow(clippy::too_many_arguments)]
fn core_event(
    rng: &mut Rng,
    ts: i64,
    node: &str,
    pod: &str,
    uid: &str,
    container: Option<&str>,
    reason: &str,
    kind: &str,
    message: &str,
) -> Line {
    let name = format!("{pod}.{:x}", rng.next_u64() >> 8);
    let mut involved = json!({"kind": "Pod", "namespace": "shop", "name": pod, "uid": uid, "apiVersion": "v1", "resourceVersion": "1001"});
    if let Some(c) = container {
        involved["fieldPath"] = json!(format!("spec.containers{{{c}}}"));
    }
    let t = format_micros(ts / 1_000_000 * 1_000_000).replace(".000000", "");
    let event = json!({"kind": "Event", "apiVersion": "v1", "metadata": {"name": name, "namespace": "shop"},
        "involvedObject": involved, "reason": reason, "message": message, "source": {"component": "kubelet", "host": node},
        "firstTimestamp": t, "lastTimestamp": t, "count": 1, "type": kind, "eventTime": null,
        "reportingComponent": "kubelet", "reportingInstance": node});
    audit(
        rng,
        ts,
        "create",
        &format!("system:node:{node}"),
        KUBELET_AGENT,
        json!({"resource": "events", "namespace": "shop", "name": name, "apiVersion": "v1"}),
        201,
        "Request",
        Some(event),
        None,
    )
}

fn status_patch(rng: &mut Rng, ts: i64, node: &str, pod: &str, uid: &str, status: Value) -> Line {
    audit(
        rng,
        ts,
        "patch",
        &format!("system:node:{node}"),
        KUBELET_AGENT,
        json!({"resource": "pods", "namespace": "shop", "name": pod, "apiVersion": "v1", "subresource": "status"}),
        200,
        "Request",
        Some(json!({"metadata": {"uid": uid}, "status": status})),
        None,
    )
}

fn cond(t: &str, s: &str, reason: Option<&str>) -> Value {
    let mut c = json!({"type": t, "status": s, "lastProbeTime": null, "lastTransitionTime": "2026-01-01T00:00:00Z"});
    if let Some(r) = reason {
        c["reason"] = json!(r);
        c["message"] = json!("containers with unready status: [app]");
    }
    c
}

fn pod_lifecycle(
    rng: &mut Rng,
    config: &SampleConfig,
    i: usize,
    t0: i64,
    outcome: Outcome,
    out: &mut Vec<Line>,
) {
    let name = format!("web-7d4b9c8f5-{:05x}", i);
    let uid = uuid(rng);
    let node = NODES[i % NODES.len()];
    let padding = rng.range(config.padding.clone());
    let image = if outcome == Outcome::ImagePullBackOff {
        "registry.example.com/web:missing"
    } else {
        "registry.example.com/web:1.4.2"
    };
    let pod_ref = |sub: Option<&str>| {
        let mut r =
            json!({"resource": "pods", "namespace": "shop", "name": name, "apiVersion": "v1"});
        if let Some(s) = sub {
            r["subresource"] = json!(s);
        }
        r
    };
    if outcome == Outcome::QuotaRejected {
        for attempt in 0..3 {
            let req = pod_object("", "", image, 0, t0, None);
            out.push(audit(
                rng,
                t0 + attempt * 2_000_000,
                "create",
                RS_USER,
                RS_AGENT,
                json!({"resource": "pods", "namespace": "shop", "apiVersion": "v1"}),
                403,
                "RequestResponse",
                Some(req),
                None,
            ));
        }
        return;
    }
    let mut created = pod_object(&name, &uid, image, padding, t0, None);
    let mut request = created.clone();
    request["metadata"]["name"] = Value::Null;
    request["metadata"]["uid"] = Value::Null;
    out.push(audit(
        rng,
        t0,
        "create",
        RS_USER,
        RS_AGENT,
        json!({"resource": "pods", "namespace": "shop", "apiVersion": "v1"}),
        201,
        "RequestResponse",
        Some(request),
        Some(created.clone()),
    ));
    let t_bind = t0 + 3_000 + rng.below(40_000) as i64;
    out.push(audit(rng, t_bind, "create", "system:kube-scheduler", SCHED_AGENT, pod_ref(Some("binding")), 201, "Request",
        Some(json!({"kind": "Binding", "apiVersion": "v1", "metadata": {"name": name, "namespace": "shop", "uid": uid}, "target": {"kind": "Node", "name": node}})), None));
    let ev_name = format!("{name}.{:x}", rng.next_u64() >> 8);
    out.push(audit(rng, t_bind + 1_500, "create", "system:kube-scheduler", SCHED_AGENT,
        json!({"resource": "events", "namespace": "shop", "name": ev_name, "apiGroup": "events.k8s.io", "apiVersion": "v1"}), 201, "Request",
        Some(json!({"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": ev_name, "namespace": "shop"},
            "eventTime": format_micros(t_bind), "reportingController": "default-scheduler", "reportingInstance": "default-scheduler-cp-1",
            "action": "Binding", "reason": "Scheduled", "regarding": {"kind": "Pod", "namespace": "shop", "name": name, "uid": uid, "apiVersion": "v1"},
            "note": format!("Successfully assigned shop/{name} to {node}"), "type": "Normal"})), None));
    let t_pick = t_bind + 20_000 + rng.below(300_000) as i64;
    out.push(status_patch(rng, t_pick, node, &name, &uid, json!({
        "$setElementOrder/conditions": [{"type": "PodReadyToStartContainers"}, {"type": "Initialized"}, {"type": "Ready"}, {"type": "ContainersReady"}, {"type": "PodScheduled"}],
        "conditions": [cond("PodReadyToStartContainers", "False", None), cond("Initialized", "True", None), cond("Ready", "False", Some("ContainersNotReady")), cond("ContainersReady", "False", Some("ContainersNotReady"))],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "", "lastState": {}, "ready": false, "restartCount": 0, "started": false, "state": {"waiting": {"reason": "ContainerCreating"}}}],
        "hostIP": "192.168.1.10", "hostIPs": [{"ip": "192.168.1.10"}], "startTime": "2026-01-01T00:00:00Z"})));
    let t_sandbox = t_pick + 300_000 + rng.below(900_000) as i64;
    out.push(status_patch(rng, t_sandbox, node, &name, &uid, json!({
        "$setElementOrder/conditions": [{"type": "PodReadyToStartContainers"}],
        "conditions": [cond("PodReadyToStartContainers", "True", None)],
        "podIP": format!("10.244.{}.{}", i % 250, i / 250 % 250), "podIPs": [{"ip": format!("10.244.{}.{}", i % 250, i / 250 % 250)}]})));
    let t_pull = t_sandbox + 10_000;
    out.push(core_event(
        rng,
        t_pull,
        node,
        &name,
        &uid,
        Some("app"),
        "Pulling",
        "Normal",
        &format!("Pulling image \"{image}\""),
    ));
    if outcome == Outcome::ImagePullBackOff {
        let t_fail = t_pull + 1_500_000;
        out.push(core_event(rng, t_fail, node, &name, &uid, Some("app"), "Failed", "Warning",
            &format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found")));
        out.push(core_event(
            rng,
            t_fail + 1_000,
            node,
            &name,
            &uid,
            Some("app"),
            "Failed",
            "Warning",
            "Error: ErrImagePull",
        ));
        out.push(status_patch(rng, t_fail + 20_000, node, &name, &uid, json!({
            "containerStatuses": [{"name": "app", "image": image, "imageID": "", "lastState": {}, "ready": false, "restartCount": 0, "started": false,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "failed to pull and unpack image"}}}]})));
        out.push(core_event(
            rng,
            t_fail + 15_000_000,
            node,
            &name,
            &uid,
            Some("app"),
            "BackOff",
            "Normal",
            &format!("Back-off pulling image \"{image}\""),
        ));
        out.push(status_patch(rng, t_fail + 15_020_000, node, &name, &uid, json!({
            "containerStatuses": [{"name": "app", "image": image, "imageID": "", "lastState": {}, "ready": false, "restartCount": 0, "started": false,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}}}]})));
        return;
    }
    let pull_ms = 400 + rng.below(4000);
    let t_pulled = t_pull + pull_ms as i64 * 1000;
    out.push(core_event(rng, t_pulled, node, &name, &uid, Some("app"), "Pulled", "Normal",
        &format!("Successfully pulled image \"{image}\" in {}.{:03}s ({}.{:03}s including waiting). Image size: 48123904 bytes.", pull_ms / 1000, pull_ms % 1000, pull_ms / 1000, pull_ms % 1000 + 5)));
    out.push(core_event(
        rng,
        t_pulled + 40_000,
        node,
        &name,
        &uid,
        Some("app"),
        "Created",
        "Normal",
        "Created container: app",
    ));
    let t_start = t_pulled + 150_000;
    out.push(core_event(
        rng,
        t_start,
        node,
        &name,
        &uid,
        Some("app"),
        "Started",
        "Normal",
        "Started container app",
    ));
    out.push(status_patch(rng, t_start + 30_000, node, &name, &uid, json!({
        "containerStatuses": [{"name": "app", "image": image, "imageID": "registry.example.com/web@sha256:9f2c", "containerID": "containerd://aa11", "lastState": {}, "ready": false, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}], "phase": "Running"})));
    let t_ready = t_start + 2_000_000 + rng.below(5_000_000) as i64;
    let mut ready_status = json!({
        "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "ContainersReady"}],
        "conditions": [cond("Ready", "True", None), cond("ContainersReady", "True", None)],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "registry.example.com/web@sha256:9f2c", "containerID": "containerd://aa11", "lastState": {}, "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]});
    out.push(status_patch(
        rng,
        t_ready,
        node,
        &name,
        &uid,
        ready_status.take(),
    ));
    if !config.delete {
        return;
    }
    let t_del = t_ready + 10_000_000 + rng.below(20_000_000) as i64;
    created["spec"]["nodeName"] = json!(node);
    created["status"]["phase"] = json!("Running");
    created["metadata"]["deletionTimestamp"] = json!(format_micros(t_del + 30_000_000));
    created["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    out.push(audit(
        rng,
        t_del,
        "delete",
        RS_USER,
        RS_AGENT,
        pod_ref(None),
        200,
        "RequestResponse",
        Some(
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}),
        ),
        Some(created.clone()),
    ));
    out.push(core_event(
        rng,
        t_del + 40_000,
        node,
        &name,
        &uid,
        Some("app"),
        "Killing",
        "Normal",
        "Stopping container app",
    ));
    let t_term = t_del + 1_000_000 + rng.below(2_000_000) as i64;
    out.push(status_patch(rng, t_term, node, &name, &uid, json!({
        "$setElementOrder/conditions": [{"type": "Ready"}, {"type": "ContainersReady"}],
        "conditions": [cond("Ready", "False", Some("ContainersNotReady")), cond("ContainersReady", "False", Some("ContainersNotReady"))],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "registry.example.com/web@sha256:9f2c", "containerID": "containerd://aa11", "lastState": {}, "ready": false, "restartCount": 0, "started": false,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:40Z", "containerID": "containerd://aa11"}}}],
        "phase": "Succeeded"})));
    created["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    created["status"]["phase"] = json!("Succeeded");
    out.push(audit(rng, t_term + 60_000, "delete", &format!("system:node:{node}"), KUBELET_AGENT, pod_ref(None), 200, "RequestResponse",
        Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}})), Some(created)));
}

fn noise(rng: &mut Rng, ts: i64, n: usize) -> Line {
    let node = NODES[n % NODES.len()];
    match rng.below(5) {
        0 | 1 => {
            let lease = json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": {"name": node, "namespace": "kube-node-lease", "resourceVersion": "5512"},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": format_micros(ts)}});
            audit(
                rng,
                ts,
                "update",
                &format!("system:node:{node}"),
                KUBELET_AGENT,
                json!({"resource": "leases", "namespace": "kube-node-lease", "name": node, "apiGroup": "coordination.k8s.io", "apiVersion": "v1"}),
                200,
                "Metadata",
                None,
                Some(lease).filter(|_| false),
            )
        }
        2 => audit(
            rng,
            ts,
            "get",
            &format!("system:node:{node}"),
            KUBELET_AGENT,
            json!({"resource": "nodes", "name": node, "apiVersion": "v1"}),
            200,
            "Metadata",
            None,
            None,
        ),
        3 => {
            let mut l = audit(
                rng,
                ts,
                "watch",
                "system:kube-scheduler",
                SCHED_AGENT,
                json!({"resource": "pods", "apiVersion": "v1"}),
                200,
                "Metadata",
                None,
                None,
            );
            l.json = l
                .json
                .replace("\"ResponseComplete\"", "\"ResponseStarted\"");
            l
        }
        _ => audit(
            rng,
            ts,
            "list",
            "system:serviceaccount:kube-system:generic-garbage-collector",
            RS_AGENT,
            json!({"resource": "configmaps", "namespace": "kube-system", "apiVersion": "v1"}),
            200,
            "Metadata",
            None,
            None,
        ),
    }
}

/// One audit event as the apiserver writes it, for tests that script a pod's life by hand.
/// `object_ref` is the `objectRef` object; the level follows from which bodies are given.
#[allow(clippy::too_many_arguments)]
pub fn audit_event(
    audit_id: &str,
    ts: i64,
    verb: &str,
    user: &str,
    object_ref: Value,
    code: u16,
    request: Option<Value>,
    response: Option<Value>,
) -> String {
    let level = match (&request, &response) {
        (_, Some(_)) => "RequestResponse",
        (Some(_), None) => "Request",
        _ => "Metadata",
    };
    let agent = if user.starts_with("system:node:") {
        KUBELET_AGENT
    } else if user == "system:kube-scheduler" {
        SCHED_AGENT
    } else {
        "kubectl/v1.31.4 (linux/amd64) kubernetes/a78aa47"
    };
    let mut e = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": audit_id,
        "stage": "ResponseComplete", "requestURI": request_uri(&object_ref), "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]}, "sourceIPs": ["10.0.0.1"],
        "userAgent": agent, "objectRef": object_ref, "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": format_micros(ts - 1500), "stageTimestamp": format_micros(ts),
    });
    if code >= 300 {
        e["responseStatus"]["status"] = json!("Failure");
    }
    if let Some(r) = request {
        e["requestObject"] = r;
    }
    if let Some(r) = response {
        e["responseObject"] = r;
    }
    e.to_string()
}

/// `objectRef` of a pod (with an optional subresource) in namespace `ns`.
pub fn pod_ref(ns: &str, name: &str, subresource: Option<&str>) -> Value {
    let mut r = json!({"resource": "pods", "namespace": ns, "name": name, "apiVersion": "v1"});
    if let Some(s) = subresource {
        r["subresource"] = json!(s);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_parseable() {
        let config = SampleConfig {
            pods: 30,
            ..SampleConfig::default()
        };
        let mut a = Vec::new();
        let outcomes = generate(&config, |l| a.push(l.to_string()));
        let mut b = Vec::new();
        generate(&config, |l| b.push(l.to_string()));
        assert_eq!(a, b);
        assert_eq!(outcomes.len(), 30);
        for line in &a {
            loupe_audit::decode(line).unwrap();
        }
        let times: Vec<i64> = a
            .iter()
            .map(|l| loupe_audit::decode(l).unwrap().time().unwrap())
            .collect();
        assert!(
            times.windows(2).any(|w| w[1] < w[0]),
            "event time must not be monotonic"
        );
    }
}
