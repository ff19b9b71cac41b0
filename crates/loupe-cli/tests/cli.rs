//! The command line as a user drives it: replay, then query in every output format.

use std::path::Path;
use std::process::{Command, Output};

use loupe_sample::{generate, SampleConfig};
use serde_json::Value;

fn loupe(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("LOUPE_LOG", "warn")
        .output()
        .expect("running loupe")
}

fn json(data: &Path, args: &[&str]) -> Value {
    let out = loupe(data, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?} is not JSON: {e}"))
}

fn replayed() -> (tempfile::TempDir, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let mut text = String::new();
    generate(
        &SampleConfig {
            pods: 25,
            seed: 3,
            ..SampleConfig::default()
        },
        |l| {
            text.push_str(l);
            text.push('\n');
        },
    );
    // A half-written last line, as a live log cut by a crash would end.
    text.push_str("{\"kind\":\"Event\",\"level\":");
    std::fs::write(logs.path().join("audit.log"), text).unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = loupe(
        data.path(),
        &[
            "--cluster",
            "prod",
            "replay",
            logs.path().to_str().unwrap(),
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
    assert_eq!(report["stats"]["malformed"], 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit.log:"),
        "the bad line is located on stderr"
    );
    (logs, data)
}

#[test]
fn pods_timeline_raw_history_and_status_in_json_and_yaml() {
    let (_logs, data) = replayed();
    let d = data.path();
    let pods = json(d, &["pods", "-o", "json"]);
    let pods = pods.as_array().unwrap();
    assert!(pods.len() >= 20);
    for key in [
        "cluster",
        "uid",
        "namespace",
        "name",
        "node",
        "phase",
        "owner_kind",
        "owner_name",
        "created",
        "deletion_requested",
        "gone",
        "first_seen",
        "last_seen",
        "facts",
    ] {
        assert!(pods[0].get(key).is_some(), "pods JSON lacks {key}");
    }
    let gone = pods.iter().find(|p| !p["gone"].is_null()).unwrap();
    let name = format!(
        "{}/{}",
        gone["namespace"].as_str().unwrap(),
        gone["name"].as_str().unwrap()
    );

    let timeline = json(d, &["timeline", &name, "-o", "json"]);
    let facts = timeline["facts"].as_array().unwrap();
    assert_eq!(timeline["pod"]["uid"], gone["uid"]);
    assert_eq!(facts.first().unwrap()["type"], "pod_created");
    assert_eq!(facts.last().unwrap()["type"], "gone");
    let by_uid = json(
        d,
        &["timeline", gone["uid"].as_str().unwrap(), "-o", "json"],
    );
    assert_eq!(by_uid, timeline);

    let audit_id = facts[0]["audit_id"].as_str().unwrap();
    let raw = json(d, &["raw", audit_id, "-o", "json"]);
    assert_eq!(raw[0]["event"]["auditID"], audit_id);
    assert_eq!(raw[0]["cluster"], "prod");

    let history = json(d, &["history", &name, "-o", "json"]);
    let versions = history.as_array().unwrap();
    assert!(versions.len() >= 5);
    assert_eq!(versions[0]["verb"], "create");
    assert!(versions.iter().skip(1).any(|v| v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["path"] == "status.phase")));

    let yaml = loupe(d, &["pods", "-o", "yaml", "--phase", "Pending"]);
    assert!(yaml.status.success());
    let parsed: Vec<serde_json::Map<String, Value>> =
        serde_norway::from_slice(&yaml.stdout).unwrap();
    assert!(parsed.iter().all(|p| p["phase"] == "Pending"));

    let table = loupe(d, &["timeline", &name]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("pod_created") && text.contains("+0.000s"),
        "{text}"
    );

    let status = json(d, &["status", "-o", "json"]);
    assert_eq!(status["clusters"][0]["cluster"], "prod");
    assert_eq!(
        status["malformed"][0]["line"].as_u64().unwrap() as usize,
        status["clusters"][0]["stats"]["records"].as_u64().unwrap() as usize
    );
    assert!(status["malformed"][0]["error"]
        .as_str()
        .unwrap()
        .contains("incomplete last line"));

    let nodes = json(d, &["nodes", "-o", "json"]);
    assert!(nodes.as_array().is_some());
}

#[test]
fn filters_and_clear_errors() {
    let (_logs, data) = replayed();
    let d = data.path();
    let all = json(d, &["pods", "-o", "json"]).as_array().unwrap().len();
    let on_a = json(d, &["pods", "--node", "node-a", "-o", "json"]);
    assert!(!on_a.as_array().unwrap().is_empty() && on_a.as_array().unwrap().len() < all);
    assert!(json(d, &["pods", "--cluster", "elsewhere", "-o", "json"])
        .as_array()
        .unwrap()
        .is_empty());
    let recent = json(d, &["pods", "--since", "20s", "-o", "json"])
        .as_array()
        .unwrap()
        .len();
    assert!(recent < all, "--since is measured on the audit clock");
    assert_eq!(
        json(d, &["pods", "--limit", "3", "-o", "json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let missing = loupe(d, &["timeline", "shop/nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no pod matches"));
    let bad_id = loupe(d, &["raw", "not-an-id"]);
    assert!(String::from_utf8_lossy(&bad_id.stderr).contains("no stored audit event"));
    let bad_flag = loupe(d, &["pods", "--since", "soon"]);
    assert!(!bad_flag.status.success());
    let retain = json(d, &["retain", "--max-age", "30s", "-o", "json"]);
    assert!(retain["pods"].as_u64().unwrap() > 0);
}
