//! Every fact type from the request that reveals it, in the shapes the apiserver records.

use loupe_facts::{observe, Fact, Observation, ObservedBody, PodState, Subject};
use loupe_sample::{audit_event, pod_ref};
use serde_json::{json, Value};

const UID: &str = "7d1c0f3e-5b2a-4c7e-9a1b-2f6d8e0c4b11";
const KUBELET: &str = "system:node:node-a";
const T0: i64 = 1_767_225_600_000_000;

fn obs(line: &str) -> Observation {
    let e = loupe_audit::decode(line).expect("valid audit event");
    observe(&e).expect("readable").expect("relevant")
}

fn pod(extra_meta: Value, spec: Value, status: Value) -> Value {
    let mut meta = json!({"name": "web-1", "namespace": "shop", "uid": UID, "resourceVersion": "10",
        "labels": {"app": "web"}, "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d", "uid": "rs1", "controller": true}]});
    for (k, v) in extra_meta.as_object().cloned().unwrap_or_default() {
        meta[k] = v;
    }
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status})
}

fn spec() -> Value {
    json!({"schedulerName": "default-scheduler", "priority": 1000, "priorityClassName": "high",
        "readinessGates": [{"conditionType": "example.com/lb-ready"}],
        "initContainers": [{"name": "init-db", "image": "busybox:1.36"},
                           {"name": "proxy", "image": "envoy:1.30", "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": "web:1", "lifecycle": {"postStart": {"exec": {"command": ["true"]}}},
                        "readinessProbe": {"httpGet": {"port": 80}}, "startupProbe": {"tcpSocket": {"port": 80}}}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}}, {"name": "cfg", "configMap": {"name": "c"}}],
        "terminationGracePeriodSeconds": 30})
}

fn created_state() -> PodState {
    let mut s = PodState::new(UID, "shop", "web-1");
    let line = audit_event(
        "c1",
        T0,
        "create",
        "system:serviceaccount:kube-system:replicaset-controller",
        json!({"resource": "pods", "namespace": "shop", "apiVersion": "v1"}),
        201,
        Some(json!({"kind": "Pod", "metadata": {"generateName": "web-"}})),
        Some(pod(
            json!({"finalizers": ["example.com/protect"]}),
            spec(),
            json!({"phase": "Pending"}),
        )),
    );
    s.apply(&obs(&line));
    s
}

fn status_patch(id: &str, dt: i64, status: Value) -> Observation {
    obs(&audit_event(
        id,
        T0 + dt,
        "patch",
        KUBELET,
        pod_ref("shop", "web-1", Some("status")),
        200,
        Some(json!({"metadata": {"uid": UID}, "status": status})),
        None,
    ))
}

fn types(facts: &[Fact]) -> Vec<&'static str> {
    facts.iter().map(Fact::type_name).collect()
}

#[test]
fn a_create_names_the_spec_owner_and_scheduler() {
    let line = audit_event(
        "c1",
        T0,
        "create",
        "system:serviceaccount:kube-system:replicaset-controller",
        json!({"resource": "pods", "namespace": "shop", "apiVersion": "v1"}),
        201,
        Some(json!({"kind": "Pod"})),
        Some(pod(json!({}), spec(), json!({"phase": "Pending"}))),
    );
    let o = obs(&line);
    assert_eq!(
        o.subject,
        Subject::Pod {
            uid: Some(UID.into()),
            namespace: "shop".into(),
            name: Some("web-1".into())
        }
    );
    let mut s = PodState::new(UID, "shop", "web-1");
    let facts = s.apply(&o);
    assert_eq!(types(&facts), ["pod_created", "phase"]);
    let Fact::PodCreated(created) = &facts[0] else {
        panic!()
    };
    let loupe_facts::PodCreated {
        owner,
        scheduler,
        containers,
        volumes,
        readiness_gates,
        priority,
        by,
        ..
    } = &**created;
    assert_eq!(owner.as_ref().unwrap().name, "web-7d");
    assert_eq!(scheduler, "default-scheduler");
    assert_eq!(*priority, Some(1000));
    assert_eq!(by.component, "controller");
    assert_eq!(readiness_gates, &["example.com/lb-ready"]);
    let app = containers.iter().find(|c| c.name == "app").unwrap();
    assert!(app.post_start && !app.init && !app.privileged);
    assert_eq!(app.probes, ["startup", "readiness"]);
    assert!(
        containers
            .iter()
            .find(|c| c.name == "proxy")
            .unwrap()
            .sidecar
    );
    assert!(
        !containers
            .iter()
            .find(|c| c.name == "init-db")
            .unwrap()
            .sidecar
    );
    assert_eq!(volumes[0].claim.as_deref(), Some("data-web-1"));
    assert_eq!(volumes[1].kind, "configMap");
}

#[test]
fn refused_creates_name_the_webhook_and_share_one_identity() {
    let line = |id: &str, msg: &str, code: u16| {
        let mut v: Value = serde_json::from_str(&audit_event(
            id,
            T0,
            "create",
            "system:serviceaccount:kube-system:replicaset-controller",
            json!({"resource": "pods", "namespace": "shop", "apiVersion": "v1"}),
            code,
            Some(json!({"kind": "Pod", "metadata": {"generateName": "web-7d-"}})),
            None,
        ))
        .unwrap();
        v["responseStatus"]["message"] = json!(msg);
        v["responseStatus"]["reason"] = json!("Forbidden");
        v.to_string()
    };
    let quota = obs(&line(
        "r1",
        "pods \"web-7d-x\" is forbidden: exceeded quota: compute",
        403,
    ));
    let hook = obs(&line(
        "r2",
        "admission webhook \"policy.example.com\" denied the request: no latest tags",
        400,
    ));
    assert_eq!(
        quota.subject,
        Subject::RejectedCreate {
            namespace: "shop".into(),
            name: "web-7d-".into()
        }
    );
    assert_eq!(quota.subject, hook.subject);
    let mut s = PodState::new("rejected:shop/web-7d-", "shop", "web-7d-");
    let f = s.apply(&hook);
    assert!(
        matches!(&f[0], Fact::CreateRejected { code: 400, webhook: Some(w), .. } if w == "policy.example.com")
    );
    s.apply(&quota);
    assert_eq!(s.rejections, 2);
}

#[test]
fn binding_and_a_refused_binding() {
    let mut s = created_state();
    let bind = |id: &str, code: u16| {
        obs(&audit_event(
            id,
            T0 + 5000,
            "create",
            "system:kube-scheduler",
            pod_ref("shop", "web-1", Some("binding")),
            code,
            Some(
                json!({"kind": "Binding", "metadata": {"name": "web-1", "uid": UID}, "target": {"kind": "Node", "name": "node-a"}}),
            ),
            None,
        ))
    };
    let failed = s.apply(&bind("b0", 409));
    assert_eq!(types(&failed), ["binding_failed"]);
    let facts = s.apply(&bind("b1", 201));
    assert!(
        matches!(&facts[0], Fact::Bound { node, by } if node == "node-a" && by.component == "scheduler")
    );
    assert!(
        s.apply(&bind("b2", 201)).is_empty(),
        "the same node again is no change"
    );
}

#[test]
fn kubelet_status_patches_become_transitions_not_repeats() {
    let mut s = created_state();
    let first = s.apply(&status_patch("s1", 100_000, json!({
        "$setElementOrder/conditions": [{"type": "PodReadyToStartContainers"}, {"type": "Ready"}],
        "conditions": [{"type": "PodReadyToStartContainers", "status": "False"},
                       {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [app]"}],
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}],
        "initContainerStatuses": [{"name": "init-db", "ready": false, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}],
        "hostIP": "192.168.1.10", "startTime": "2026-01-01T00:00:00Z"})));
    assert_eq!(
        types(&first),
        [
            "host_ip",
            "condition",
            "condition",
            "container_running",
            "container_waiting"
        ]
    );
    let again = s.apply(&status_patch("s2", 200_000, json!({
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [{"name": "app", "ready": false, "state": {"waiting": {"reason": "ContainerCreating"}}}]})));
    assert!(again.is_empty(), "nothing changed: {again:?}");
    let running = s.apply(&status_patch("s3", 300_000, json!({
        "podIP": "10.244.1.7", "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodReadyToStartContainers", "status": "True"}],
        "initContainerStatuses": [{"name": "init-db", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        "containerStatuses": [{"name": "app", "ready": true, "started": true, "state": {"running": {"startedAt": "2026-01-01T00:00:03Z"}}}]})));
    assert_eq!(
        types(&running),
        [
            "phase",
            "pod_ip",
            "condition",
            "condition",
            "container_terminated",
            "container_running",
            "container_ready"
        ]
    );
    assert_eq!(s.phase.as_deref(), Some("Running"));
}

#[test]
fn a_put_status_update_is_read_like_a_patch() {
    let mut s = created_state();
    let put = obs(&audit_event(
        "u1",
        T0 + 1000,
        "update",
        KUBELET,
        pod_ref("shop", "web-1", Some("status")),
        200,
        Some(pod(
            json!({"finalizers": ["example.com/protect"]}),
            spec(),
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        )),
        None,
    ));
    let facts = s.apply(&put);
    assert_eq!(types(&facts), ["phase", "condition"]);
}

#[test]
fn crash_loops_report_restarts_with_the_last_termination() {
    let mut s = created_state();
    s.apply(&status_patch("s1", 1000, json!({"containerStatuses": [{"name": "app", "restartCount": 0, "state": {"running": {}}}]})));
    let facts = s.apply(&status_patch("s2", 2000, json!({"containerStatuses": [{"name": "app", "restartCount": 3, "ready": false,
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=app"}}}]})));
    assert!(facts.iter().any(|f| matches!(f, Fact::ContainerRestarted { restart_count: 3, last_reason: Some(r), last_exit_code: Some(137), .. } if r == "OOMKilled")));
    assert!(facts.iter().any(
        |f| matches!(f, Fact::ContainerWaiting { reason: Some(r), .. } if r == "CrashLoopBackOff")
    ));
}

#[test]
fn an_older_observation_never_overwrites_newer_state() {
    let mut s = created_state();
    s.apply(&status_patch(
        "new",
        5000,
        json!({"conditions": [{"type": "Ready", "status": "True"}]}),
    ));
    let late = s.apply(&status_patch(
        "old",
        1000,
        json!({"conditions": [{"type": "Ready", "status": "False"}]}),
    ));
    assert_eq!(
        types(&late),
        ["condition"],
        "the late fact is still recorded"
    );
    assert_eq!(s.conditions["Ready"].0, "True");
}

#[test]
fn metadata_patches_add_and_remove_labels_annotations_and_finalizers() {
    let mut s = created_state();
    let patch = obs(&audit_event(
        "m1",
        T0 + 1000,
        "patch",
        "alice",
        pod_ref("shop", "web-1", None),
        200,
        Some(
            json!({"metadata": {"labels": {"app": null, "tier": "front"}, "annotations": {"note": "x"},
            "$deleteFromPrimitiveList/finalizers": ["example.com/protect"]}}),
        ),
        None,
    ));
    let facts = s.apply(&patch);
    assert_eq!(
        types(&facts),
        ["labels_changed", "annotations_changed", "finalizer_removed"]
    );
    let Fact::LabelsChanged { set, removed } = &facts[0] else {
        panic!()
    };
    assert_eq!(set.get("tier").map(String::as_str), Some("front"));
    assert_eq!(removed, &["app"]);
    assert!(s.finalizers.is_empty());
}

#[test]
fn a_full_response_is_diffed_against_what_was_known() {
    let mut s = created_state();
    let resp = pod(
        json!({"labels": {"app": "web", "v": "2"}, "finalizers": ["example.com/other"]}),
        spec(),
        json!({"phase": "Pending"}),
    );
    let facts = s.apply(&obs(&audit_event(
        "m2",
        T0 + 1000,
        "patch",
        "operator",
        pod_ref("shop", "web-1", None),
        200,
        Some(json!({"metadata": {"labels": {"v": "2"}}})),
        Some(resp),
    )));
    assert_eq!(
        types(&facts),
        ["labels_changed", "finalizer_removed", "finalizer_added"]
    );
}

#[test]
fn an_image_change_is_an_upgrade() {
    let mut s = created_state();
    let facts = s.apply(&obs(&audit_event(
        "p1",
        T0 + 9000,
        "patch",
        "deployer",
        pod_ref("shop", "web-1", None),
        200,
        Some(json!({"spec": {"containers": [{"name": "app", "image": "web:2"}]}})),
        None,
    )));
    assert_eq!(types(&facts), ["image_changed", "spec_changed"]);
    assert!(
        matches!(&facts[0], Fact::ImageChanged { from, to, .. } if from == "web:1" && to == "web:2")
    );
}

#[test]
fn a_spec_patch_is_seen_when_the_response_is_the_whole_pod() {
    let mut s = created_state();
    let mut resp = pod(
        json!({"finalizers": ["example.com/protect"]}),
        spec(),
        json!({"phase": "Pending"}),
    );
    resp["spec"]["activeDeadlineSeconds"] = json!(600);
    let facts = s.apply(&obs(&audit_event(
        "p2",
        T0 + 9000,
        "patch",
        "deployer",
        pod_ref("shop", "web-1", None),
        200,
        Some(json!({"spec": {"activeDeadlineSeconds": 600}})),
        Some(resp),
    )));
    assert_eq!(types(&facts), ["spec_changed"]);
    let status_only = s.apply(&obs(&audit_event(
        "p3",
        T0 + 9100,
        "patch",
        KUBELET,
        pod_ref("shop", "web-1", Some("status")),
        200,
        Some(json!({"status": {"phase": "Running"}})),
        Some(pod(
            json!({"finalizers": ["example.com/protect"]}),
            spec(),
            json!({"phase": "Running"}),
        )),
    )));
    assert_eq!(types(&status_only), ["phase"]);
}

#[test]
fn graceful_delete_then_the_kubelet_removes_the_pod() {
    let mut s = PodState::new(UID, "shop", "web-1");
    s.apply(&obs(&audit_event(
        "c1",
        T0,
        "create",
        "rs",
        json!({"resource": "pods", "namespace": "shop"}),
        201,
        None,
        Some(pod(json!({}), spec(), json!({}))),
    )));
    let graceful = obs(&audit_event(
        "d1",
        T0 + 10,
        "delete",
        "system:serviceaccount:kube-system:replicaset-controller",
        pod_ref("shop", "web-1", None),
        200,
        Some(json!({"kind": "DeleteOptions", "propagationPolicy": "Background"})),
        Some(pod(
            json!({"deletionTimestamp": "2026-01-01T00:00:30Z", "deletionGracePeriodSeconds": 30}),
            spec(),
            json!({"phase": "Running"}),
        )),
    ));
    let facts = s.apply(&graceful);
    assert!(matches!(
        &facts[0],
        Fact::DeletionRequested {
            grace_seconds: Some(30),
            ..
        }
    ));
    assert!(s.gone.is_none());
    let last = obs(&audit_event(
        "d2",
        T0 + 20,
        "delete",
        KUBELET,
        pod_ref("shop", "web-1", None),
        200,
        Some(
            json!({"kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": UID}}),
        ),
        Some(pod(
            json!({"deletionTimestamp": "2026-01-01T00:00:30Z", "deletionGracePeriodSeconds": 0}),
            spec(),
            json!({"phase": "Succeeded"}),
        )),
    ));
    let facts = s.apply(&last);
    assert_eq!(
        types(&facts),
        ["phase", "gone"],
        "no second deletion_requested: {facts:?}"
    );
    assert!(s.is_gone());
}

#[test]
fn a_finalizer_holds_the_pod_until_it_is_removed() {
    let mut s = created_state();
    let del = obs(&audit_event(
        "d1",
        T0 + 10,
        "delete",
        "alice",
        pod_ref("shop", "web-1", None),
        200,
        Some(json!({"gracePeriodSeconds": 0})),
        Some(pod(
            json!({"deletionTimestamp": "2026-01-01T00:00:30Z", "deletionGracePeriodSeconds": 0, "finalizers": ["example.com/protect"]}),
            spec(),
            json!({}),
        )),
    ));
    let facts = s.apply(&del);
    assert!(
        matches!(&facts[0], Fact::DeletionRequested { finalizers, .. } if finalizers == &["example.com/protect"])
    );
    assert!(s.gone.is_none(), "a finalizer blocks removal");
    let release = obs(&audit_event(
        "f1",
        T0 + 60_000_000,
        "patch",
        "system:serviceaccount:kube-system:protector",
        pod_ref("shop", "web-1", None),
        200,
        Some(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/protect"]}})),
        Some(pod(
            json!({"deletionTimestamp": "2026-01-01T00:00:30Z", "deletionGracePeriodSeconds": 0, "finalizers": null}),
            spec(),
            json!({}),
        )),
    ));
    let facts = s.apply(&release);
    assert_eq!(types(&facts), ["finalizer_removed", "gone"]);
}

#[test]
fn evictions_accepted_and_refused_by_a_budget() {
    let mut s = created_state();
    let evict = |id: &str, code: u16| {
        obs(&audit_event(
            id,
            T0 + 50,
            "create",
            "system:serviceaccount:kube-system:cluster-autoscaler",
            pod_ref("shop", "web-1", Some("eviction")),
            code,
            Some(json!({"kind": "Eviction", "metadata": {"name": "web-1"}})),
            None,
        ))
    };
    let refused = evict("e1", 429);
    assert!(
        matches!(refused.subject, Subject::Pod { uid: None, .. }),
        "eviction carries only the name"
    );
    assert_eq!(types(&s.apply(&refused)), ["eviction_refused"]);
    assert_eq!(types(&s.apply(&evict("e2", 201))), ["eviction_requested"]);
}

fn core_event(id: &str, reason: &str, message: &str, field_path: Option<&str>) -> Observation {
    let mut involved = json!({"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": UID});
    if let Some(f) = field_path {
        involved["fieldPath"] = json!(f);
    }
    obs(&audit_event(
        id,
        T0 + 7,
        "create",
        KUBELET,
        json!({"resource": "events", "namespace": "shop", "name": "web-1.17a", "apiVersion": "v1"}),
        201,
        Some(
            json!({"kind": "Event", "metadata": {"name": "web-1.17a", "namespace": "shop"}, "involvedObject": involved,
            "reason": reason, "message": message, "type": "Normal", "source": {"component": "kubelet", "host": "node-a"}, "count": 1}),
        ),
        None,
    ))
}

#[test]
fn kubelet_events_in_old_and_new_wording_name_their_container() {
    for message in [
        "Created container app",
        "Created container: app",
        "Container created",
    ] {
        let o = core_event("ev", "Created", message, Some("spec.containers{app}"));
        assert!(matches!(&o.subject, Subject::Pod { uid: Some(u), .. } if u == UID));
        let facts = created_state().apply(&o);
        assert!(
            matches!(&facts[0], Fact::Event { reason, container: Some(c), api, component, host: Some(h), .. }
            if reason == "Created" && c == "app" && api == "v1" && component == "kubelet" && h == "node-a")
        );
    }
}

#[test]
fn scheduler_events_come_from_events_k8s_io() {
    let line = audit_event(
        "fs",
        T0 + 3,
        "create",
        "system:kube-scheduler",
        json!({"resource": "events", "namespace": "shop", "name": "web-1.18b", "apiGroup": "events.k8s.io", "apiVersion": "v1"}),
        201,
        Some(
            json!({"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "web-1.18b"}, "reason": "FailedScheduling",
            "note": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
            "type": "Warning", "action": "Scheduling", "reportingController": "default-scheduler",
            "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": UID}}),
        ),
        None,
    );
    let facts = created_state().apply(&obs(&line));
    assert!(
        matches!(&facts[0], Fact::Event { api, reason, kind, component, .. }
        if api == "events.k8s.io/v1" && reason == "FailedScheduling" && kind == "Warning" && component == "default-scheduler")
    );
}

#[test]
fn events_about_other_objects_are_not_pod_facts() {
    let line = audit_event(
        "rs",
        T0,
        "create",
        "system:serviceaccount:kube-system:replicaset-controller",
        json!({"resource": "events", "namespace": "shop", "name": "web-7d.1", "apiVersion": "v1"}),
        201,
        Some(
            json!({"kind": "Event", "involvedObject": {"kind": "ReplicaSet", "name": "web-7d", "namespace": "shop"},
            "reason": "SuccessfulCreate", "message": "Created pod: web-1"}),
        ),
        None,
    );
    assert_eq!(obs(&line).subject, Subject::Unrelated);
    assert!(matches!(obs(&line).body, ObservedBody::Event(_)));
}

#[test]
fn reads_and_noise_are_not_observed() {
    let get = audit_event(
        "g",
        T0,
        "get",
        KUBELET,
        pod_ref("shop", "web-1", None),
        200,
        None,
        None,
    );
    assert!(observe(&loupe_audit::decode(&get).unwrap())
        .unwrap()
        .is_none());
    let lease = audit_event(
        "l",
        T0,
        "update",
        KUBELET,
        json!({"resource": "leases", "namespace": "kube-node-lease", "name": "node-a", "apiGroup": "coordination.k8s.io"}),
        200,
        None,
        None,
    );
    assert!(observe(&loupe_audit::decode(&lease).unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn a_body_of_the_wrong_shape_is_an_error_not_a_panic() {
    let line = audit_event(
        "x",
        T0,
        "patch",
        KUBELET,
        pod_ref("shop", "web-1", Some("status")),
        200,
        Some(json!({"status": {"conditions": "not-a-list"}})),
        None,
    );
    assert!(observe(&loupe_audit::decode(&line).unwrap()).is_err());
}

#[test]
fn facts_serialize_with_their_type_tag() {
    let f = Fact::Condition {
        condition: "Ready".into(),
        status: "True".into(),
        reason: None,
        message: None,
    };
    assert_eq!(
        serde_json::to_value(&f).unwrap(),
        json!({"type": "condition", "condition": "Ready", "status": "True"})
    );
}

#[test]
fn a_new_reason_under_the_same_status_is_a_fact() {
    let mut s = created_state();
    s.apply(&status_patch(
        "r1",
        100_000,
        json!({
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}),
    ));
    // The containers are ready now, but a readiness gate is not: Ready stays False.
    let gated = s.apply(&status_patch("r2", 200_000, json!({
        "conditions": [{"type": "ContainersReady", "status": "True"},
                       {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
                        "message": "corresponding condition of pod readiness gate \"example.com/lb-ready\" does not exist."}]})));
    assert!(gated.iter().any(|f| matches!(f, Fact::Condition { condition, status, reason, .. }
        if condition == "Ready" && status == "False" && reason.as_deref() == Some("ReadinessGatesNotReady"))), "{gated:?}");
    // The same reason again, or a patch without one, is no news.
    let again = s.apply(&status_patch(
        "r3",
        300_000,
        json!({
        "conditions": [{"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady"},
                       {"type": "Ready", "status": "False"}]}),
    ));
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_create_names_requests_runtime_class_and_placement() {
    let mut spec = spec();
    spec["containers"][0]["resources"] = json!({"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "512Mi", "nvidia.com/gpu": 1}});
    spec["initContainers"][0]["resources"] = json!({"limits": {"cpu": "1", "memory": "64Mi"}});
    spec["runtimeClassName"] = json!("kata");
    spec["nodeSelector"] = json!({"disk": "ssd"});
    spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}, "nodeAffinity": null});
    spec["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "zone"}]);
    let line = audit_event(
        "c1",
        T0,
        "create",
        "system:serviceaccount:kube-system:replicaset-controller",
        json!({"resource": "pods", "namespace": "shop", "apiVersion": "v1"}),
        201,
        None,
        Some(pod(json!({}), spec, json!({"phase": "Pending"}))),
    );
    let facts = PodState::new(UID, "shop", "web-1").apply(&obs(&line));
    let Fact::PodCreated(created) = &facts[0] else {
        panic!("{facts:?}")
    };
    let loupe_facts::PodCreated {
        containers,
        runtime_class,
        placement,
        ..
    } = &**created;
    let requests = |name: &str| {
        containers
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .requests
            .clone()
            .into_iter()
            .collect::<Vec<_>>()
    };
    // Requests win over limits; a limit alone stands for the request; numbers keep their text.
    assert_eq!(
        requests("app"),
        [
            ("cpu".into(), "500m".into()),
            ("memory".into(), "256Mi".into()),
            ("nvidia.com/gpu".into(), "1".into())
        ]
    );
    assert_eq!(
        requests("init-db"),
        [("cpu".into(), "1".into()), ("memory".into(), "64Mi".into())]
    );
    assert!(requests("proxy").is_empty());
    assert_eq!(runtime_class.as_deref(), Some("kata"));
    assert_eq!(
        placement,
        &["node_selector", "pod_anti_affinity", "topology_spread"]
    );
}
