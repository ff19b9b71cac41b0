//! `loupe pcap FILE` as a user runs it: records as a table and as JSON, and a clear
//! error for a file that is not a capture. Uses ../shared/corpus (SKIPPED without it,
//! unless LOUPE_REQUIRE_CORPUS is set).

mod common;

use std::path::{Path, PathBuf};

use common::{json, loupe};

fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pcap");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("LOUPE_REQUIRE_CORPUS").is_none(),
        "the corpus is not at {}",
        dir.display()
    );
    eprintln!("SKIPPED: the shared corpus is not at {}", dir.display());
    None
}

#[test]
fn pcap_prints_request_records_and_refuses_what_is_not_a_capture() {
    let Some(dir) = corpus() else { return };
    let none = Path::new("unused");
    let file = dir.join("deepflow/http/sw8.pcap");
    let report = json(none, &["pcap", file.to_str().unwrap(), "-o", "json"]);
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    for r in records {
        assert_eq!(
            (
                r["method"].as_str(),
                r["route"].as_str(),
                r["status"].as_u64()
            ),
            (Some("POST"), Some("/createOrder"), Some(200))
        );
        assert_eq!(r["server"], "10.100.18.175:20880");
        assert!(r["response_end"].as_i64() >= r["request_start"].as_i64());
    }
    assert_eq!(report["frames"], 20);
    // Golden signals: one series, three requests, no errors; one graph edge.
    let signals = report["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 1, "{signals:?}");
    let s = &signals[0];
    assert_eq!(
        (
            s["prometheus"].as_str(),
            s["count"].as_u64(),
            s["errors"].as_u64()
        ),
        (
            Some("http_server_request_duration_seconds"),
            Some(3),
            Some(0)
        )
    );
    assert_eq!(s["labels"]["http.route"], "/createOrder");
    assert!(s["p99_seconds"].as_f64().unwrap() > 0.0);
    let graph = report["graph"].as_array().unwrap();
    assert_eq!(
        (
            graph.len(),
            graph[0]["requests"].as_u64(),
            graph[0]["connection_type"].as_str()
        ),
        (1, Some(3), Some("http"))
    );
    // DNS: a lookup metric, by query type and name.
    let dns = json(
        none,
        &[
            "pcap",
            dir.join("deepflow/dns/nxdomain.pcap").to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    let lookups: Vec<&serde_json::Value> = dns["signals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metric"] == "dns.lookup.duration")
        .collect();
    assert!(!lookups.is_empty());
    assert!(lookups
        .iter()
        .any(|s| s["labels"]["error.type"] == "NXDOMAIN" && s["errors"].as_u64() > Some(0)));
    let table = loupe(none, &["pcap", file.to_str().unwrap()]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("/createOrder") && text.contains("3 records"),
        "{text}"
    );

    let bad = dir.join("pcap-parser-formats/err-eof.bin");
    let out = loupe(none, &["pcap", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("err-eof.bin") && err.contains("not a pcap"),
        "{err}"
    );
}

#[test]
fn kubernetes_names_from_a_kubectl_dump_name_the_sides_and_filter_by_namespace() {
    let Some(dir) = corpus() else { return };
    let none = Path::new("unused");
    let file = dir.join("deepflow/http/sw8.pcap");
    let tmp = tempfile::tempdir().unwrap();
    // What `kubectl get pods,services -A -o yaml` would print for that capture's peers.
    let dump = tmp.path().join("kube.yaml");
    std::fs::write(
        &dump,
        r#"apiVersion: v1
kind: List
items:
- kind: Service
  metadata: {name: orders, namespace: shop}
  spec: {clusterIP: 10.100.18.175, ports: [{port: 20880}]}
- kind: Pod
  metadata:
    name: web-7c9f-abcde
    namespace: front
    labels: {pod-template-hash: 7c9f}
    ownerReferences: [{kind: ReplicaSet, name: web-7c9f, controller: true}]
  status: {podIP: 10.100.19.214}
"#,
    )
    .unwrap();
    let (f, k) = (file.to_str().unwrap(), dump.to_str().unwrap());
    let report = json(none, &["pcap", f, "--kube", k, "-o", "json"]);
    let r = &report["records"][0];
    assert_eq!(
        (&r["client_name"], &r["server_name"], &r["server_namespace"]),
        (&"front/web".into(), &"shop/orders".into(), &"shop".into())
    );
    let graph = report["graph"].as_array().unwrap();
    assert_eq!(graph.len(), 1);
    assert_eq!(
        (
            &graph[0]["client"],
            &graph[0]["server"],
            &graph[0]["client_namespace"]
        ),
        (&"front/web".into(), &"shop/orders".into(), &"front".into())
    );
    assert_eq!(
        report["signals"][0]["labels"]["server.address"],
        "shop/orders"
    );
    // Either side's namespace keeps the exchange; another keeps nothing.
    for (ns, n) in [("shop", 3), ("front", 3), ("billing", 0)] {
        let only = json(
            none,
            &["pcap", f, "--kube", k, "--namespace", ns, "-o", "json"],
        );
        assert_eq!(only["records"].as_array().unwrap().len(), n, "{ns}");
        assert_eq!(only["graph"].as_array().unwrap().len(), n.min(1), "{ns}");
    }
    let table = loupe(none, &["pcap", f, "--kube", k]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("front/web"));
    // A namespace needs names; a dump that is not one is refused with its file.
    let out = loupe(none, &["pcap", f, "--namespace", "shop"]);
    assert!(!out.status.success());
    std::fs::write(&dump, "[1, 2").unwrap();
    let out = loupe(none, &["pcap", f, "--kube", k]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kube.yaml"));
}

#[test]
fn what_the_parsers_could_not_follow_is_reported_per_protocol() {
    let Some(dir) = corpus() else { return };
    let none = Path::new("unused");
    // The capture ends before three prepares are answered: eight records, three
    // requests counted unanswered (DeepFlow lists all eleven).
    let file = dir.join("deepflow/mysql/mysql-statement.pcap");
    let report = json(none, &["pcap", file.to_str().unwrap(), "-o", "json"]);
    assert_eq!(report["records"].as_array().unwrap().len(), 8);
    let mysql = &report["unfollowed"]["mysql"];
    assert_eq!(
        (
            mysql["unanswered"].as_u64(),
            mysql["orphans"].as_u64(),
            mysql["malformed"].as_u64()
        ),
        (Some(3), Some(0), Some(0)),
        "{report}"
    );
    let table = loupe(none, &["pcap", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("mysql: 3 unanswered, 0 answers without their request"),
        "{text}"
    );
    // Everything followed: nothing to report.
    let file = dir.join("deepflow/http/sw8.pcap");
    let report = json(none, &["pcap", file.to_str().unwrap(), "-o", "json"]);
    assert_eq!(report["unfollowed"], serde_json::json!({}));
}
