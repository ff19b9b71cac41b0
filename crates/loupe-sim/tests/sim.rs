//! The simulator: deterministic, every code injectable and visible in the log, ground
//! truth that matches the log, a stream Loupe reads without a malformed record.

use std::collections::{BTreeMap, HashMap};

use loupe_sim::{profile, run, Code, FaultClass, FaultMix, Label, Lifecycle, SimConfig, CODES};

fn simulate(config: &SimConfig) -> (Vec<String>, Vec<Label>) {
    let (mut lines, mut labels) = (Vec::new(), Vec::new());
    run(config, &mut |_, l| lines.push(l.to_string()), &mut |l| {
        labels.push(l.clone())
    });
    (lines, labels)
}

fn small(pods: usize, faults: FaultMix) -> SimConfig {
    SimConfig {
        pods,
        faults,
        tail_seconds: 900.0,
        stuck_seconds: 600.0,
        ..(profile("dev").unwrap().config)()
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let config = small(60, FaultMix::every_code(0.01));
    let (a, la) = simulate(&config);
    let (b, lb) = simulate(&config);
    assert!(a.len() > 1000);
    assert_eq!(a, b);
    assert_eq!(la, lb);
    let (c, _) = simulate(&SimConfig { seed: 2, ..config });
    assert_ne!(a, c);
}

/// The engine and the writer run on two threads; how far one runs ahead of the other
/// must not show in the output. A sink that stalls lets the engine fill the channel.
#[test]
fn a_slow_reader_gets_the_same_bytes() {
    let config = small(40, FaultMix::every_code(0.01));
    let (fast, _) = simulate(&config);
    let mut slow = Vec::new();
    run(
        &config,
        &mut |_, l| {
            if slow.len() % 700 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            slow.push(l);
        },
        &mut |_| {},
    );
    assert_eq!(fast, slow);
}

/// Text the log must hold when a code is injected: the evidence a diagnosis would cite.
fn signature(code: Code) -> &'static [&'static str] {
    use Code::*;
    match code {
        Success | DeleteSuccess | UpgradeSuccess => &[],
        ApiQuotaExceeded => &["exceeded quota", "\"code\":403", "FailedCreate"],
        ApiAdmissionDenied => {
            &["admission webhook \\\"validate.policy.example.com\\\" denied the request"]
        }
        ApiWebhookFailure => &["failed calling webhook", "\"code\":500"],
        FailedScheduling_Insufficient => &["Insufficient cpu", "FailedScheduling", "Unschedulable"],
        FailedScheduling_Affinity => &["didn't match Pod's node affinity/selector"],
        FailedScheduling_Taint => &["had untolerated taint"],
        FailedScheduling_Volume => &["persistentvolumeclaim \\\"data-"],
        ScheduleTooMuchTime => &["\"subresource\":\"binding\""],
        PreemptionWait => &["nominatedNodeName", "Preemption is possible"],
        KubeletDelay => &["\"subresource\":\"status\""],
        NodeNotReady => &["NodeNotReady", "Kubelet stopped posting node status."],
        AdmissionRejected_OutOfResource => &["OutOfcpu", "Node didn't have enough resource"],
        Evicted => &[
            "\"reason\":\"Evicted\"",
            "The node was low on resource: memory",
            "TerminationByKubelet",
        ],
        VolumeSourceMissing => &["MountVolume.SetUp failed for volume \\\"config\\\" : configmap"],
        VolumeMountTimeout => &["Unable to attach or mount volumes: unmounted volumes=["],
        VolumeMultiAttach => &["Multi-Attach error for volume", "FailedAttachVolume"],
        VolumeAttachTooMuchTime => &["SuccessfulAttachVolume"],
        IPAllocationFailed => &["no IP addresses available in range set"],
        CNISetupFailed => &["plugin type=\\\"calico\\\" failed (add)"],
        NetworkNotReady => &["cni plugin not initialized"],
        SandboxCreateTimeout => &["FailedCreatePodSandBox", "context deadline exceeded"],
        SandboxCreateFailed => &["failed to get sandbox image"],
        SandboxRecreateLoop => &[
            "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.",
        ],
        PodSetupTooMuchTime => &["PodReadyToStartContainers"],
        InvalidImageName => &["InvalidImageName", "must be lowercase"],
        ImageNotFound => &["ErrImagePull", "ImagePullBackOff", "-missing: not found"],
        ImagePullAuthFailed => &["pull access denied", "insufficient_scope"],
        ImageRegistryUnavailable => &["i/o timeout", "ImagePullBackOff"],
        ImagePullTooMuchTime => &["Image size: 2"],
        ImagePullQueueTooMuchTime => &["including waiting"],
        CreateContainerConfigError => &["CreateContainerConfigError", "-credentials\\\" not found"],
        CreateContainerError => &["CreateContainerError", "failed to reserve container name"],
        RunContainerError => &[
            "StartError",
            "OCI runtime create failed",
            "CrashLoopBackOff",
        ],
        CrashLoopBackOff => &["CrashLoopBackOff", "Back-off restarting failed container"],
        OOMKilled => &["OOMKilled", "CrashLoopBackOff"],
        InitContainerFailed => &["spec.initContainers{migrate}", "CrashLoopBackOff"],
        ContainerStartTooMuchTime => &["\"reason\":\"Started\""],
        FailedPostStartHook => &["FailedPostStartHook", "PostStartHook failed"],
        PostStartHookTooMuchTime => &["postStart"],
        StartupProbeFailed => &[
            "Startup probe failed",
            "failed startup probe, will be restarted",
        ],
        ContainerReadinessFailed => {
            &["Readiness probe failed: HTTP probe failed with statuscode: 503"]
        }
        ReadinessGateNotReady => &[
            "ReadinessGatesNotReady",
            "cloud.example.com/load-balancer-ready",
        ],
        EvictionBlockedByPDB => &[
            "\"subresource\":\"eviction\"",
            "violate the pod's disruption budget",
            "\"code\":429",
        ],
        KubeletKillDelay => &["Stopping container"],
        PreStopHookFailed => &["FailedPreStopHook", "PreStopHook failed"],
        GracePeriodExceeded => &["\"exitCode\":137"],
        FinalizerBlocked => &["example.com/cleanup-protection", "\"gracePeriodSeconds\":0"],
        NodeUnreachableTerminating => &["DeletionByPodGC", "pod-garbage-collector"],
        UpgradeImageNotFound => &[
            "2.0.0-missing",
            "definition changed, will be restarted",
            "ImagePullBackOff",
        ],
        UpgradeRunContainerError => &["definition changed, will be restarted", "CrashLoopBackOff"],
    }
}

#[test]
fn every_code_is_injectable_and_leaves_its_evidence() {
    let mut failures = Vec::new();
    for info in CODES.iter().filter(|c| c.class != FaultClass::None) {
        let mut config = small(8, FaultMix::parse(&format!("{}=1", info.name)).unwrap());
        config.delete_share = if info.lifecycle == Lifecycle::Delete {
            1.0
        } else {
            0.0
        };
        config.upgrade_share = if info.lifecycle == Lifecycle::Upgrade {
            1.0
        } else {
            0.0
        };
        config.lifetime_seconds = 60.0;
        let (lines, labels) = simulate(&config);
        let text = lines.join("\n");
        let verdicts: Vec<Code> = labels
            .iter()
            .filter_map(|l| match info.lifecycle {
                Lifecycle::Create => Some(l.create.code),
                Lifecycle::Delete => l.delete.as_ref().map(|v| v.code),
                Lifecycle::Upgrade => l.upgrade.as_ref().map(|v| v.code),
            })
            .collect();
        // A pod the fault cannot strike (no init container, never bound) keeps the
        // lifecycle's success: its label says what really happened.
        let success = Code::success(info.lifecycle);
        if !verdicts.contains(&info.code)
            || verdicts.iter().any(|c| *c != info.code && *c != success)
        {
            failures.push(format!("{}: labels say {verdicts:?}", info.name));
        }
        for s in signature(info.code) {
            if !text.contains(s) {
                failures.push(format!("{}: the log lacks {s:?}", info.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[derive(serde::Deserialize)]
struct Probe {
    stage: String,
    verb: String,
    #[serde(rename = "objectRef", default)]
    object_ref: Option<serde_json::Value>,
    #[serde(rename = "stageTimestamp")]
    stage_timestamp: String,
    #[serde(rename = "requestObject", default)]
    request: Option<serde_json::Value>,
    #[serde(rename = "responseObject", default)]
    response: Option<serde_json::Value>,
    #[serde(rename = "auditID")]
    audit_id: String,
}

fn micros(ts: &str) -> i64 {
    loupe_audit::parse_time_micros(ts).unwrap()
}

#[test]
fn milestones_are_the_times_of_the_requests_that_mark_them() {
    let (lines, labels) = simulate(&small(80, FaultMix::every_code(0.005)));
    // uid → (created, bound, final delete) from the log itself.
    let mut created: HashMap<String, i64> = HashMap::new();
    let mut bound: HashMap<String, i64> = HashMap::new();
    let mut ready: HashMap<String, i64> = HashMap::new();
    for line in &lines {
        let e: Probe = serde_json::from_str(line).unwrap();
        if e.stage != "ResponseComplete" {
            continue;
        }
        let r = e.object_ref.unwrap_or_default();
        let sub = r["subresource"].as_str().unwrap_or("");
        let at = micros(&e.stage_timestamp);
        match (e.verb.as_str(), r["resource"].as_str(), sub) {
            ("create", Some("pods"), "") => {
                if let Some(uid) = e
                    .response
                    .as_ref()
                    .and_then(|p| p["metadata"]["uid"].as_str())
                {
                    created.insert(uid.to_string(), at);
                }
            }
            ("create", Some("pods"), "binding") => {
                let uid = e.request.as_ref().unwrap()["metadata"]["uid"]
                    .as_str()
                    .unwrap()
                    .to_string();
                bound.insert(uid, at);
            }
            ("patch", Some("pods"), "status") => {
                let body = e.request.unwrap();
                let uid = body["metadata"]["uid"].as_str().unwrap().to_string();
                let is_ready = body["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                if is_ready {
                    ready.entry(uid).or_insert(at);
                }
            }
            _ => {}
        }
    }
    let mut checked = 0;
    for l in labels.iter().filter(|l| !l.uid.is_empty()) {
        assert_eq!(
            created.get(&l.uid).copied(),
            l.milestones.created,
            "{}",
            l.name
        );
        assert_eq!(bound.get(&l.uid).copied(), l.milestones.bound, "{}", l.name);
        if l.create.code == Code::Success && l.workload.kind != "Job" && l.upgrade.is_none() {
            assert_eq!(ready.get(&l.uid).copied(), l.milestones.ready, "{}", l.name);
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} delivered pods checked");
}

#[test]
fn lines_come_in_completion_order_and_each_request_has_both_stages() {
    let mut config = small(60, FaultMix::every_code(0.01));
    config.apiservers = 3;
    let (lines, _) = simulate(&config);
    let mut stages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut last = i64::MIN;
    let mut back = 0i64;
    for line in &lines {
        let e: Probe = serde_json::from_str(line).unwrap();
        let at = micros(&e.stage_timestamp);
        back = back.max(last.saturating_sub(at));
        last = last.max(at);
        stages.entry(e.audit_id).or_default().push(e.stage);
    }
    // Apiservers deliver in batches up to (n-1) s apart; nothing else goes back.
    assert!(back <= 2_100_000, "went back {back} µs");
    assert!(back > 0, "several apiservers interleave");
    for (id, s) in &stages {
        assert_eq!(
            s.first().map(String::as_str),
            Some("RequestReceived"),
            "{id}: {s:?}"
        );
        assert!(
            matches!(s.last().map(String::as_str), Some("ResponseComplete")),
            "{id}: {s:?}"
        );
    }
    let watches = stages
        .values()
        .filter(|s| s.len() == 3 && s[1] == "ResponseStarted")
        .count();
    assert!(watches > 0, "watches report ResponseStarted");
}

#[test]
fn loupe_reads_the_stream_without_a_malformed_record() {
    let (lines, labels) = simulate(&small(150, FaultMix::every_code(0.01)));
    let mut p = loupe_timeline::Processor::new(loupe_timeline::Config::new("sim"));
    for (i, line) in lines.iter().enumerate() {
        p.push(line, "sim", i as u64 + 1);
    }
    p.flush();
    let out = p.take_output();
    assert_eq!(out.stats.malformed, 0, "{:?}", out.malformed.first());
    assert!(out.stats.analysed > 1000);
    assert!(
        out.stats.non_final > 1000,
        "RequestReceived events are counted, not analysed"
    );
    let pods: std::collections::BTreeSet<&str> = out.pods.iter().map(|p| p.uid.as_str()).collect();
    for l in labels.iter().filter(|l| !l.uid.is_empty()) {
        assert!(
            pods.contains(l.uid.as_str()),
            "{} ({:?}) not seen",
            l.name,
            l.create.code
        );
    }
}

#[test]
fn profiles_are_named_presets_of_size_and_churn() {
    let large = (profile("large").unwrap().config)();
    assert_eq!((large.nodes, large.pods), (5000, 150_000));
    let burst = (profile("burst").unwrap().config)();
    assert_eq!(burst.pods, 10_000);
    assert!((burst.pods as f64 / burst.pods_per_second - 60.0).abs() < 1e-6);
    let dev = (profile("dev").unwrap().config)();
    assert!(dev.nodes <= 3 && dev.apiservers == 1);
    assert!(profile("nope").is_none());
}

/// Every pod and Event body the simulator writes (creates, status patches, deletes, Events
/// and their repeats, with every fault) is read by the scanner as serde's derive reads it.
#[test]
fn the_body_scanner_reads_every_simulated_body_as_serde_does() {
    use loupe_audit::objects::{ApiEvent, CoreEvent, Pod};
    use loupe_audit::Resource;
    let mut config = small(400, FaultMix::every_code(0.01));
    config.upgrade_share = 0.3;
    let (lines, _) = simulate(&config);
    let (mut bodies, mut events) = (0, 0);
    for line in &lines {
        let event = loupe_audit::decode(line).unwrap();
        let resource = event.target().resource;
        if matches!(resource, Resource::CoreEvent | Resource::EventsApiEvent) {
            for body in [event.request_object, event.response_object]
                .into_iter()
                .flatten()
            {
                let text = body.get();
                if resource == Resource::CoreEvent {
                    let theirs = serde_json::from_str::<CoreEvent>(text).unwrap();
                    let ours = CoreEvent::from_json(text).unwrap_or_else(|e| panic!("{e}: {line}"));
                    assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{line}");
                } else {
                    let theirs = serde_json::from_str::<ApiEvent>(text).unwrap();
                    let ours = ApiEvent::from_json(text).unwrap_or_else(|e| panic!("{e}: {line}"));
                    assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{line}");
                }
                events += 1;
            }
        }
        if resource != Resource::Pod {
            continue;
        }
        for body in [event.request_object, event.response_object]
            .into_iter()
            .flatten()
        {
            let Ok(theirs) = serde_json::from_str::<Pod>(body.get()) else {
                continue;
            };
            let ours = Pod::from_json(body.get()).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{line}");
            bodies += 1;
        }
    }
    assert!(bodies > 1500, "only {bodies} pod bodies");
    assert!(events > 1000, "only {events} Event bodies");
}
