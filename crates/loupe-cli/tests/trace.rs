//! `loupe trace` and `loupe stages` on a simulated cluster, as a user runs them.

mod common;

use common::{json, loupe};
use serde_json::Value;

/// A simulated cluster replayed into a store; its ground truth.
fn cluster() -> (tempfile::TempDir, Vec<Value>) {
    common::replayed_cluster(40, 11, "ImageNotFound=0.1,KubeletDelay=0.1", |_| {})
}

#[test]
fn trace_shows_each_stage_with_the_ground_truth_durations() {
    let (dir, labels) = cluster();
    let data = dir.path().join("data");
    let delivered = labels
        .iter()
        .find(|l| {
            l["create"]["code"] == "Success"
                && l["workload"]["kind"] == "Deployment"
                && !l["milestones"]["ready"].is_null()
        })
        .expect("a delivered pod");
    let uid = delivered["uid"].as_str().unwrap();
    let view = json(&data, &["trace", uid, "--action", "create", "-o", "json"]);
    let trace = &view["traces"][0];
    assert_eq!(trace["action"], "create");
    let span = |name: &str| {
        trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {trace}"))
    };
    let m = &delivered["milestones"];
    let gap = |a: &str, b: &str| m[b].as_i64().unwrap() - m[a].as_i64().unwrap();
    assert_eq!(
        span("delivery")["duration_us"].as_i64().unwrap(),
        gap("created", "ready")
    );
    assert_eq!(
        span("schedule")["duration_us"].as_i64().unwrap(),
        gap("created", "bound")
    );
    assert_eq!(
        span("kubelet_pickup")["duration_us"].as_i64().unwrap(),
        gap("bound", "picked")
    );
    assert_eq!(span("schedule")["owner"], "platform");
    assert_eq!(span("delivery")["open"], false);

    let table = loupe(&data, &["trace", uid]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("create ")
            && text.contains("schedule")
            && text.contains('█')
            && text.contains("done in"),
        "{text}"
    );

    // A pod stuck on a missing image: the open span says how long.
    let stuck = labels
        .iter()
        .find(|l| l["create"]["code"] == "ImageNotFound")
        .expect("a stuck pod");
    let view = json(
        &data,
        &[
            "trace",
            stuck["uid"].as_str().unwrap(),
            "--action",
            "create",
            "-o",
            "json",
        ],
    );
    let image = view["traces"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "image" && s["instance"] == "app")
        .cloned()
        .unwrap();
    assert_eq!(image["open"], true);
    assert!(
        image["error"].as_str().unwrap().contains("not found"),
        "{image}"
    );
}

#[test]
fn stages_gives_percentiles_per_stage_and_group() {
    let (dir, _) = cluster();
    let data = dir.path().join("data");
    let rows = json(&data, &["stages", "--since", "3h", "-o", "json"]);
    let rows = rows.as_array().unwrap();
    let schedule = rows
        .iter()
        .find(|r| r["stage"] == "delivery/schedule")
        .expect("schedule row");
    assert!(schedule["count"].as_u64().unwrap() >= 30, "{schedule}");
    let p = |k: &str| schedule[k].as_i64().unwrap();
    assert!(p("p50_us") <= p("p90_us") && p("p90_us") <= p("p99_us") && p("p99_us") <= p("max_us"));
    assert!(
        rows.iter().any(|r| r["action"] == "delete"),
        "deletions are traced too"
    );
    let by_node = json(
        &data,
        &["stages", "--since", "3h", "--by", "node", "-o", "json"],
    );
    assert!(by_node
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["group"].as_str().unwrap().starts_with("node-")));
}

#[test]
fn a_broken_span_pack_is_refused_with_file_and_line() {
    let (dir, labels) = cluster();
    let data = dir.path().join("data");
    let packs = dir.path().join("spans");
    std::fs::create_dir_all(&packs).unwrap();
    std::fs::write(
        packs.join("create.yaml"),
        "action: create\nroot:\n  name: delivery\n  start: {fact: pod_created}\n  end: {fact: redy}\n",
    )
    .unwrap();
    let uid = labels
        .iter()
        .find_map(|l| l["uid"].as_str().filter(|u| !u.is_empty()))
        .unwrap();
    let out = loupe(&data, &["trace", uid, "--spans", packs.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("create.yaml:3: span \"delivery\": unknown fact type \"redy\""),
        "{err}"
    );
    // A good pack replaces the built-in one of its action.
    std::fs::write(
        packs.join("create.yaml"),
        "action: create\nroot:\n  name: until_bound\n  start: {fact: pod_created}\n  end: {fact: bound}\n",
    )
    .unwrap();
    let view = json(
        &data,
        &[
            "trace",
            uid,
            "--spans",
            packs.to_str().unwrap(),
            "--action",
            "create",
            "-o",
            "json",
        ],
    );
    assert_eq!(view["traces"][0]["spans"][0]["name"], "until_bound");
}
