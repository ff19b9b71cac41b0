//! `loupe export-traces` against a real OTLP/HTTP receiver process (the official
//! opentelemetry-proto package decoding protobuf; `scripts/test` installs it).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn loupe(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("LOUPE_LOG", "warn")
        .output()
        .expect("running loupe")
}

fn receiver_available() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.proto.collector.trace.v1.trace_service_pb2",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("LOUPE_REQUIRE_OTLP_RECEIVER").is_some() {
            panic!("LOUPE_REQUIRE_OTLP_RECEIVER is set but python3 lacks opentelemetry-proto");
        }
        eprintln!(
            "SKIPPED: python3 with opentelemetry-proto is needed (pip install opentelemetry-proto)"
        );
    }
    ok
}

#[test]
fn delivery_traces_reach_a_real_otlp_receiver_deterministically() {
    if !receiver_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("audit.log");
    let labels = dir.path().join("labels");
    let out = loupe(
        &data,
        &[
            "--cluster",
            "sim",
            "simulate",
            "--profile",
            "dev",
            "--pods",
            "30",
            "--seed",
            "4",
            "--faults",
            "ImageNotFound=0.1,PreemptionWait=0.2",
            "-O",
            log.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(loupe(
        &data,
        &["--cluster", "sim", "replay", log.to_str().unwrap()]
    )
    .status
    .success());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spans_file = dir.path().join("spans.jsonl");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/receivers/otlp_receiver.py"
    );
    let mut receiver = Command::new("python3")
        .args([script, &port.to_string(), spans_file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(receiver.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let export = |times: usize| {
        for _ in 0..times {
            let out = loupe(
                &data,
                &[
                    "export-traces",
                    "--otlp",
                    &endpoint,
                    "--since",
                    "3h",
                    "-o",
                    "json",
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(report["spans"].as_u64().unwrap() > 100, "{report}");
        }
    };
    export(2);
    let _ = receiver.kill();
    let _ = receiver.wait();
    let spans: Vec<Value> = std::fs::read_to_string(&spans_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The second export sent exactly the same spans (same IDs): a backend deduplicates.
    let ids: Vec<(String, String)> = spans
        .iter()
        .map(|s| {
            (
                s["trace_id"].as_str().unwrap().into(),
                s["span_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let (first, second) = ids.split_at(ids.len() / 2);
    assert_eq!(first, second, "re-export sends the same IDs");
    let unique: std::collections::BTreeSet<_> = first.iter().collect();
    assert_eq!(
        unique.len(),
        first.len(),
        "span IDs are unique within an export"
    );

    let labels: Vec<Value> = std::fs::read_to_string(&labels)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spans = &spans[..spans.len() / 2];
    // Resource attributes by the Kubernetes semantic conventions.
    let pod = labels
        .iter()
        .find(|l| {
            l["create"]["code"] == "Success"
                && l["workload"]["kind"] == "Deployment"
                && !l["milestones"]["ready"].is_null()
        })
        .unwrap();
    let mine: Vec<&Value> = spans
        .iter()
        .filter(|s| s["resource"]["k8s.pod.uid"] == pod["uid"])
        .collect();
    let root = mine
        .iter()
        .find(|s| s["name"] == "delivery")
        .expect("the create root span");
    assert_eq!(root["resource"]["k8s.pod.name"], pod["name"]);
    assert_eq!(root["resource"]["k8s.namespace.name"], pod["namespace"]);
    assert_eq!(root["resource"]["k8s.node.name"], pod["node"]);
    assert_eq!(root["resource"]["k8s.cluster.name"], "sim");
    assert!(root["resource"]["k8s.replicaset.name"].is_string());
    let m = &pod["milestones"];
    assert_eq!(
        root["start"].as_u64().unwrap(),
        m["created"].as_u64().unwrap() * 1000
    );
    assert_eq!(
        root["end"].as_u64().unwrap(),
        m["ready"].as_u64().unwrap() * 1000
    );
    let schedule = mine.iter().find(|s| s["name"] == "schedule").unwrap();
    assert_eq!(
        schedule["parent_span_id"], root["span_id"],
        "stages are children of the delivery"
    );
    assert_eq!(schedule["trace_id"], root["trace_id"]);
    assert_eq!(schedule["attributes"]["loupe.owner"], "platform");
    // A controller's traceparent makes the delivery its child.
    let traced = labels
        .iter()
        .find(|l| {
            l["traceparent"].is_string()
                && l["create"]["code"] == "Success"
                && !l["milestones"]["ready"].is_null()
        })
        .expect("a pod with a traceparent");
    let tp = traced["traceparent"].as_str().unwrap();
    let root = spans
        .iter()
        .find(|s| s["resource"]["k8s.pod.uid"] == traced["uid"] && s["name"] == "delivery")
        .unwrap();
    assert_eq!(root["trace_id"], tp[3..35], "{tp}");
    assert_eq!(root["parent_span_id"], tp[36..52], "{tp}");
    // A stage that failed before it closed carries status Error (2) with the evidence.
    assert!(
        spans.iter().any(|s| s["name"] == "schedule"
            && s["status"] == 2
            && s["status_message"]
                .as_str()
                .unwrap_or("")
                .contains("FailedScheduling")),
        "a preempting pod's schedule span failed first"
    );
    // Stuck deliveries (a missing image) are still in progress: their open spans wait.
    let stuck = labels
        .iter()
        .find(|l| l["create"]["code"] == "ImageNotFound")
        .unwrap();
    assert!(!spans
        .iter()
        .any(|s| s["resource"]["k8s.pod.uid"] == stuck["uid"] && s["name"] == "image app"));
}
