//! The processor over unordered, duplicated, partial streams.

use loupe_sample::{audit_event, generate, pod_ref, SampleConfig};
use loupe_timeline::{Config, Fact, FactRecord, Processor};
use serde_json::json;

const UID: &str = "u-1";
const T0: i64 = 1_767_225_600_000_000;
const S: i64 = 1_000_000;

fn processor() -> Processor {
    Processor::new(Config::new("test"))
}

fn create(id: &str, ts: i64) -> String {
    audit_event(
        id,
        ts,
        "create",
        "system:serviceaccount:kube-system:replicaset-controller",
        json!({"resource": "pods", "namespace": "shop", "apiVersion": "v1"}),
        201,
        None,
        Some(
            json!({"kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": UID}, "spec": {"containers": [{"name": "app", "image": "web:1"}]}, "status": {"phase": "Pending"}}),
        ),
    )
}

fn ready(id: &str, ts: i64, status: &str) -> String {
    audit_event(
        id,
        ts,
        "patch",
        "system:node:n1",
        pod_ref("shop", "web-1", Some("status")),
        200,
        Some(
            json!({"metadata": {"uid": UID}, "status": {"conditions": [{"type": "Ready", "status": status}]}}),
        ),
        None,
    )
}

fn facts(p: &mut Processor) -> Vec<(String, FactRecord)> {
    records(&p.take_output())
}

fn records(out: &loupe_timeline::Output) -> Vec<(String, FactRecord)> {
    out.fact_records()
        .map(|(uid, f)| (uid.to_string(), f))
        .collect()
}

#[test]
fn reorders_within_the_lateness_and_keeps_the_newest_state() {
    let mut p = processor();
    p.push(&create("c", T0), "t", 1);
    p.push(&ready("r2", T0 + 2 * S, "True"), "t", 2);
    p.push(&ready("r1", T0 + S, "False"), "t", 3);
    p.flush();
    let out = facts(&mut p);
    let conditions: Vec<(i64, String, bool)> = out
        .iter()
        .filter_map(|(_, f)| match &f.fact {
            Fact::Condition { status, .. } => Some((f.ts, status.clone(), f.late)),
            _ => None,
        })
        .collect();
    assert_eq!(
        conditions,
        [
            (T0 + S, "False".into(), false),
            (T0 + 2 * S, "True".into(), false)
        ]
    );
    assert_eq!(p.pods()[UID].conditions["Ready"].0, "True");
}

#[test]
fn events_behind_the_watermark_are_applied_and_counted_late() {
    let mut p = processor();
    p.push(&create("c", T0), "t", 1);
    p.push(&ready("r2", T0 + 120 * S, "True"), "t", 2);
    p.push(&ready("r1", T0 + 30 * S, "False"), "t", 3);
    p.flush();
    let out = p.take_output();
    assert_eq!(out.stats.late, 1);
    let late: Vec<_> = records(&out)
        .into_iter()
        .filter(|(_, f)| f.late)
        .map(|(_, f)| f.audit_id)
        .collect();
    assert_eq!(late, ["r1"]);
    assert_eq!(out.raw.len(), 3, "late events are stored like the others");
}

#[test]
fn counts_duplicates_stages_noise_and_garbage() {
    let mut p = processor();
    let line = create("c", T0);
    p.push(&line, "f", 1);
    p.push(&line, "f", 2);
    p.push(&line.replace("ResponseComplete", "RequestReceived"), "f", 3);
    p.push(
        &audit_event(
            "g",
            T0,
            "get",
            "x",
            pod_ref("shop", "web-1", None),
            200,
            None,
            None,
        ),
        "f",
        4,
    );
    p.push("{\"kind\": 0}", "f", 5);
    p.push("not json", "f", 6);
    p.flush();
    let out = p.take_output();
    let s = &out.stats;
    assert_eq!(
        (
            s.records,
            s.analysed,
            s.duplicates,
            s.non_final,
            s.skipped,
            s.malformed
        ),
        (6, 1, 1, 1, 1, 2)
    );
    assert_eq!(
        out.malformed
            .iter()
            .map(|m| (m.source.as_str(), m.line))
            .collect::<Vec<_>>(),
        [("f", 5), ("f", 6)]
    );
}

#[test]
fn completes_request_level_event_repeats_from_the_first_copy() {
    let mut p = processor();
    p.push(&create("c", T0), "t", 1);
    let object =
        json!({"resource": "events", "namespace": "shop", "name": "web-1.abc", "apiVersion": "v1"});
    p.push(&audit_event("e1", T0 + S, "create", "system:node:n1", object.clone(), 201,
        Some(json!({"kind": "Event", "metadata": {"name": "web-1.abc"}, "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": UID, "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "message": "Back-off restarting failed container app in pod web-1_shop(u-1)", "type": "Warning", "source": {"component": "kubelet", "host": "n1"}, "count": 1})), None), "t", 2);
    p.push(
        &audit_event(
            "e2",
            T0 + 20 * S,
            "patch",
            "system:node:n1",
            object,
            200,
            Some(json!({"count": 5, "lastTimestamp": "2026-01-01T00:00:20Z"})),
            None,
        ),
        "t",
        3,
    );
    p.flush();
    let out = facts(&mut p);
    let repeat = out
        .iter()
        .find(|(_, f)| f.audit_id == "e2")
        .expect("the repeat is a pod fact");
    assert!(
        matches!(&repeat.1.fact, Fact::Event { reason, count: 5, repeat: true, container: Some(c), .. } if reason == "BackOff" && c == "app")
    );
}

#[test]
fn an_event_that_keeps_repeating_stays_resolvable_among_many_others() {
    // A crash-looping container repeats its first Created while the pod's other Events
    // come and go: the templates are least-recently-used, not first-in-first-out.
    let mut p = processor();
    p.push(&create("c", T0), "t", 1);
    let event = |name: &str, reason: &str, container: &str| {
        json!({"kind": "Event", "metadata": {"name": name}, "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": UID, "fieldPath": format!("spec.containers{{{container}}}")},
            "reason": reason, "message": format!("{reason} {container}"), "type": "Normal", "source": {"component": "kubelet", "host": "n1"}, "count": 1})
    };
    let object = |name: &str| json!({"resource": "events", "namespace": "shop", "name": name, "apiVersion": "v1"});
    let mut line = 2;
    let mut push = |p: &mut Processor,
                    id: String,
                    ts: i64,
                    verb: &str,
                    name: &str,
                    body: serde_json::Value| {
        let code = if verb == "create" { 201 } else { 200 };
        p.push(
            &audit_event(
                &id,
                ts,
                verb,
                "system:node:n1",
                object(name),
                code,
                Some(body),
                None,
            ),
            "t",
            line,
        );
        line += 1;
    };
    push(
        &mut p,
        "first".into(),
        T0 + S,
        "create",
        "web-1.created",
        event("web-1.created", "Created", "app"),
    );
    for i in 0..30 {
        let ts = T0 + (2 + i) * S;
        let name = format!("web-1.other{i}");
        push(
            &mut p,
            format!("other{i}"),
            ts,
            "create",
            &name,
            event(&name, "Pulled", &format!("c{i}")),
        );
        push(
            &mut p,
            format!("repeat{i}"),
            ts + 1000,
            "patch",
            "web-1.created",
            json!({"count": i + 2}),
        );
    }
    p.flush();
    let out = facts(&mut p);
    for i in 0..30 {
        let id = format!("repeat{i}");
        let (_, f) = out
            .iter()
            .find(|(_, f)| f.audit_id == id)
            .unwrap_or_else(|| panic!("{id} was not resolved"));
        assert!(
            matches!(&f.fact, Fact::Event { reason, container: Some(c), repeat: true, .. } if reason == "Created" && c == "app"),
            "{f:?}"
        );
    }
}

#[test]
fn resolves_requests_that_name_the_pod_without_its_uid() {
    let mut p = processor();
    p.push(&create("c", T0), "t", 1);
    p.push(
        &audit_event(
            "ev",
            T0 + S,
            "create",
            "autoscaler",
            pod_ref("shop", "web-1", Some("eviction")),
            201,
            Some(json!({"kind": "Eviction", "metadata": {"name": "web-1"}})),
            None,
        ),
        "t",
        2,
    );
    p.push(
        &audit_event(
            "x",
            T0 + S,
            "patch",
            "system:node:n1",
            pod_ref("shop", "unknown-pod", Some("status")),
            200,
            Some(json!({"status": {"phase": "Running"}})),
            None,
        ),
        "t",
        3,
    );
    p.flush();
    let out = p.take_output();
    assert!(records(&out)
        .iter()
        .any(|(uid, f)| uid == UID && matches!(f.fact, Fact::EvictionRequested { .. })));
    assert_eq!(out.stats.unlinked, 1);
}

#[test]
fn gone_pods_leave_memory_after_the_lateness() {
    let mut p = processor();
    p.push(&create("c", T0), "t", 1);
    p.push(
        &audit_event(
            "d",
            T0 + S,
            "delete",
            "system:node:n1",
            pod_ref("shop", "web-1", None),
            200,
            Some(json!({"gracePeriodSeconds": 0, "preconditions": {"uid": UID}})),
            None,
        ),
        "t",
        2,
    );
    p.flush();
    assert_eq!(
        p.in_flight_pods(),
        1,
        "kept while late events may still come"
    );
    p.push(&audit_event("l", T0 + 300 * S, "update", "system:node:n1",
        json!({"resource": "leases", "namespace": "kube-node-lease", "name": "n1", "apiGroup": "coordination.k8s.io"}), 200, None, None), "t", 3);
    assert_eq!(p.in_flight_pods(), 0, "the audit clock moved on");
    let out = p.take_output();
    assert!(
        out.pods.iter().any(|s| s.uid == UID && s.gone.is_some()),
        "its final state is still output"
    );
}

fn run_sample(split: impl Fn(usize) -> bool) -> (Vec<(String, FactRecord)>, loupe_timeline::Stats) {
    let mut lines = Vec::new();
    generate(
        &SampleConfig {
            pods: 150,
            seed: 42,
            ..SampleConfig::default()
        },
        |l| lines.push(l.to_string()),
    );
    let mut p = processor();
    let mut all = Vec::new();
    let mut stats = loupe_timeline::Stats::default();
    for (i, line) in lines.iter().enumerate() {
        p.push(line, "sample", i as u64 + 1);
        if split(i) {
            let out = p.take_output();
            stats.add(&out.stats);
            all.extend(records(&out));
        }
    }
    p.flush();
    let out = p.take_output();
    stats.add(&out.stats);
    all.extend(records(&out));
    all.sort_by(|a, b| {
        (&a.0, a.1.ts, &a.1.audit_id, a.1.seq).cmp(&(&b.0, b.1.ts, &b.1.audit_id, b.1.seq))
    });
    (all, stats)
}

#[test]
fn the_same_input_gives_the_same_facts_whatever_the_batches() {
    let (one_batch, s1) = run_sample(|_| false);
    let (many_batches, s2) = run_sample(|i| i % 7 == 3 || i % 101 == 0);
    assert!(one_batch.len() > 2000);
    assert_eq!(s1, s2);
    assert_eq!(one_batch, many_batches);
}

#[test]
fn the_sample_lifecycle_reads_as_the_upstream_sequence() {
    let (facts, stats) = run_sample(|_| false);
    assert_eq!(stats.malformed, 0);
    assert_eq!(stats.unlinked, 0);
    let first_uid = facts[0].0.clone();
    let kinds: Vec<&str> = facts
        .iter()
        .filter(|(u, _)| *u == first_uid)
        .map(|(_, f)| f.fact.type_name())
        .collect();
    for expected in [
        "pod_created",
        "bound",
        "host_ip",
        "pod_ip",
        "container_running",
        "container_ready",
        "deletion_requested",
        "container_terminated",
        "gone",
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected} missing from {kinds:?}"
        );
    }
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        pos("pod_created") < pos("bound")
            && pos("bound") < pos("container_running")
            && pos("deletion_requested") < pos("gone")
    );
}

#[test]
fn cut_and_corrupted_lines_are_counted_never_panic() {
    let mut lines = Vec::new();
    generate(
        &SampleConfig {
            pods: 8,
            seed: 5,
            ..SampleConfig::default()
        },
        |l| lines.push(l.to_string()),
    );
    let mut rng = loupe_sample::Rng::new(99);
    let mut p = processor();
    let mut pushed = 0u64;
    for line in &lines {
        let bytes = line.as_bytes();
        for _ in 0..6 {
            let mut b = bytes[..rng.below(bytes.len() as u64 + 1) as usize].to_vec();
            if !b.is_empty() && rng.below(2) == 0 {
                let i = rng.below(b.len() as u64) as usize;
                b[i] = b"{}[]\":,0a\\"[rng.below(10) as usize];
            }
            if let Ok(text) = std::str::from_utf8(&b) {
                p.push(text, "mutated", pushed);
                pushed += 1;
            }
        }
    }
    p.flush();
    let s = p.take_output().stats;
    assert_eq!(s.records, pushed);
    assert!(s.malformed > pushed / 2, "{s:?}");
    assert_eq!(
        s.records,
        s.malformed + s.non_final + s.duplicates + s.skipped + s.analysed
    );
}

/// A store stand-in: every state the processor outputs, by UID.
#[derive(Clone, Default)]
struct MemoryStore(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, loupe_timeline::PodState>>>,
);

impl loupe_timeline::StateLoader for MemoryStore {
    fn load(&mut self, uid: &str) -> Option<loupe_timeline::PodState> {
        self.0.lock().unwrap().get(uid).cloned()
    }
    fn find(&mut self, namespace: &str, name: &str) -> Option<String> {
        let map = self.0.lock().unwrap();
        map.values()
            .find(|s| s.namespace == namespace && s.name == name && s.gone.is_none())
            .map(|s| s.uid.clone())
    }
}

#[test]
fn quiet_pods_leave_memory_and_come_back_with_their_state() {
    let store = MemoryStore::default();
    let mut p = processor().with_loader(Box::new(store.clone()));
    let save = |p: &mut Processor| {
        let out = p.take_output();
        for s in &out.pods {
            store.0.lock().unwrap().insert(s.uid.clone(), (**s).clone());
        }
        out
    };
    p.push(&create("c", T0), "t", 1);
    p.push(&ready("r1", T0 + S, "True"), "t", 2);
    p.flush();
    save(&mut p);
    // Twenty minutes of audit time pass with only leases.
    for i in 0..25 {
        let lease = audit_event(
            &format!("l{i}"),
            T0 + (i + 1) * 60 * S,
            "update",
            "system:node:n1",
            json!({"resource": "leases", "namespace": "kube-node-lease", "name": "n1", "apiGroup": "coordination.k8s.io"}),
            200,
            None,
            None,
        );
        p.push(&lease, "t", 10 + i as u64);
    }
    let out = save(&mut p);
    assert_eq!(p.in_flight_pods(), 0, "the idle pod left memory");
    assert_eq!(out.stats.evicted, 1);
    // The pod wakes up: the same condition is no news, a change is, and the name resolves.
    p.push(&ready("r2", T0 + 30 * 60 * S, "True"), "t", 50);
    p.push(&ready("r3", T0 + 31 * 60 * S, "False"), "t", 51);
    p.push(
        &audit_event(
            "ev",
            T0 + 32 * 60 * S,
            "create",
            "autoscaler",
            pod_ref("shop", "web-1", Some("eviction")),
            201,
            Some(json!({"kind": "Eviction", "metadata": {"name": "web-1"}})),
            None,
        ),
        "t",
        52,
    );
    p.flush();
    let out = p.take_output();
    let facts = records(&out);
    let kinds: Vec<(&str, &str)> = facts
        .iter()
        .map(|(_, f)| (f.audit_id.as_str(), f.fact.type_name()))
        .collect();
    assert_eq!(kinds, [("r3", "condition"), ("ev", "eviction_requested")]);
    assert_eq!(out.stats.reloaded, 1);
}

/// A loader that counts what it is asked: the store is queried only for pods known to be
/// there (moved out of memory, or listed idle by the recovery), not for every new pod.
#[derive(Clone, Default)]
struct CountingStore {
    inner: MemoryStore,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl loupe_timeline::StateLoader for CountingStore {
    fn load(&mut self, uid: &str) -> Option<loupe_timeline::PodState> {
        self.asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.load(uid)
    }
    fn find(&mut self, namespace: &str, name: &str) -> Option<String> {
        self.asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.find(namespace, name)
    }
}

#[test]
fn the_store_is_asked_only_about_pods_it_holds() {
    use std::sync::atomic::Ordering::Relaxed;
    let store = CountingStore::default();
    let mut p = processor().with_loader(Box::new(store.clone()));
    p.push(&create("c", T0), "t", 1);
    p.push(&ready("r1", T0 + S, "True"), "t", 2);
    p.flush();
    assert_eq!(store.asked.load(Relaxed), 0, "a new pod is not looked up");
    let out = p.take_output();
    let state = (*out.pods[0]).clone();
    store
        .inner
        .0
        .lock()
        .unwrap()
        .insert(state.uid.clone(), state.clone());

    // A restart: the stored pod is quiet, so the recovery lists it instead of loading it.
    let recovery = loupe_timeline::Recovery {
        watermark: T0 + 2 * S,
        max_seen: T0 + 2 * S,
        idle: vec![(
            state.uid.clone(),
            state.namespace.clone(),
            state.name.clone(),
        )],
        ..loupe_timeline::Recovery::default()
    };
    let mut p = Processor::recover(loupe_timeline::Config::new("test"), recovery)
        .with_loader(Box::new(store.clone()));
    p.push(&ready("r2", T0 + 30 * S, "False"), "t", 3);
    p.flush();
    let out = p.take_output();
    assert_eq!(
        out.stats.reloaded, 1,
        "the idle pod came back from the store"
    );
    assert_eq!(records(&out).len(), 1);
    assert_eq!(store.asked.load(Relaxed), 1);
}

#[test]
fn an_output_keeps_the_states_it_was_taken_with() {
    let mut p = processor();
    p.push(&ready("r1", T0, "False"), "t", 1);
    p.flush();
    let held = p.take_output();
    // The processor shares the state with `held`; changing it must not change `held`.
    p.push(&ready("r2", T0 + 2 * S, "True"), "t", 2);
    p.flush();
    let next = p.take_output();
    let status =
        |out: &loupe_timeline::Output| out.pods[0].conditions.get("Ready").map(|(s, _)| s.clone());
    assert_eq!(status(&held).as_deref(), Some("False"));
    assert_eq!(status(&next).as_deref(), Some("True"));
    assert_eq!(
        p.pods()[UID].conditions.get("Ready").map(|c| c.0.as_str()),
        Some("True")
    );
}
