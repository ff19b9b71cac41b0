//! `loupe export-traces` against a real OTLP/HTTP receiver process (the official
//! opentelemetry-proto package decoding protobuf; `scripts/test` installs it).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::loupe;

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
    let (dir, labels) =
        common::replayed_cluster(30, 4, "ImageNotFound=0.1,PreemptionWait=0.2", |_| {});
    let data = dir.path().join("data");

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

struct Receiver {
    child: std::process::Child,
    port: u16,
    file: std::path::PathBuf,
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = dir.join("streamed.jsonl");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/receivers/otlp_receiver.py"
        );
        let mut child = Command::new("python3")
            .args([script, &port.to_string(), file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        Receiver { child, port, file }
    }
    fn names(&self) -> Vec<String> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|s| s["name"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn serve_streams_finished_spans_and_reloads_span_packs() {
    if !receiver_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path());
    let data = dir.path().join("data");
    let packs = dir.path().join("spans");
    std::fs::create_dir_all(&packs).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "--cluster",
            "live",
            "serve",
            "--listen",
            &listen,
            "--lateness",
            "2s",
            "--otlp",
            &format!("http://127.0.0.1:{}/v1/traces", receiver.port),
            "--spans",
            packs.to_str().unwrap(),
            "--otlp-every",
            "300ms",
        ])
        .env("LOUPE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("serve", || std::net::TcpStream::connect(&listen).is_ok());
    let send = |seed: &str| {
        let out = loupe(
            &data,
            &[
                "simulate",
                "--profile",
                "dev",
                "--pods",
                "8",
                "--rate",
                "4",
                "--seed",
                seed,
                "--webhook",
                &format!("http://{listen}/audit/live"),
                "--speed",
                "500",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    send("1");
    wait_for("streamed stages", || {
        receiver.names().iter().any(|n| n == "schedule")
    });
    // A broken pack: reported, the running server keeps the packs it has.
    std::fs::write(
        packs.join("create.yaml"),
        "action: create\nroot:\n  name: x\n  start: {fact: nope}\n  end: {fact: bound}\n",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        server.try_wait().unwrap().is_none(),
        "a bad span pack took the server down"
    );
    // A good one replaces the built-in creation pack for what comes next.
    std::fs::write(packs.join("create.yaml"), "action: create\nroot:\n  name: until_bound\n  start: {fact: pod_created}\n  end: {fact: bound}\n").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    send("2");
    wait_for("spans of the reloaded pack", || {
        receiver.names().iter().any(|n| n == "until_bound")
    });
    let names = receiver.names();
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert!(unique.len() > 5, "{unique:?}");
    // Every finished span was sent once, however many rounds saw it.
    let ids: Vec<(String, String)> = std::fs::read_to_string(&receiver.file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|s| {
            (
                s["trace_id"].as_str().unwrap().to_string(),
                s["span_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let distinct: std::collections::BTreeSet<&(String, String)> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a span was streamed twice");
    let _ = server.kill();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut err);
    let _ = server.wait();
    assert!(
        err.contains("span packs not reloaded") && err.contains("unknown fact type \"nope\""),
        "{err}"
    );
}
