//! `loupe diagnose` and `loupe codes` on a simulated cluster, as a user runs them.

mod common;

use common::{json, loupe};
use serde_json::Value;

/// A simulated cluster replayed into a store (Events dropped from the log when
/// `without_events`, as a policy that leaves them out); its ground truth.
fn cluster(without_events: bool) -> (tempfile::TempDir, Vec<Value>) {
    common::replayed_cluster(
        80,
        5,
        "ImageNotFound=0.15,ApiQuotaExceeded=0.1,VolumeMountTimeout=0.1,FinalizerBlocked=0.2",
        |log| {
            if without_events {
                let text = std::fs::read_to_string(log).unwrap();
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.contains("\"resource\":\"events\""))
                    .collect();
                std::fs::write(log, kept.join("\n")).unwrap();
            }
        },
    )
}

fn with_code<'a>(labels: &'a [Value], code: &str) -> Vec<&'a Value> {
    labels
        .iter()
        .filter(|l| l["create"]["code"] == code)
        .collect()
}

#[test]
fn a_stuck_pod_is_diagnosed_with_evidence_remedy_and_how_long() {
    let (dir, labels) = cluster(false);
    let data = dir.path().join("data");
    let pods = with_code(&labels, "ImageNotFound");
    assert!(!pods.is_empty());
    for label in pods {
        let uid = label["uid"].as_str().unwrap();
        let view = json(&data, &["diagnose", uid, "-o", "json"]);
        let create = &view["results"][0];
        assert_eq!(create["action"], "create");
        assert_eq!(create["code"], "ImageNotFound", "{create}");
        assert_eq!(create["class"], "user");
        assert_eq!(create["stage"], "image");
        assert!(create["detail"].as_str().unwrap().ends_with("-missing"));
        assert!(create["remedy"].as_str().unwrap().contains("tag"));
        // The evidence is stored audit events, at their place in the timeline.
        let evidence = create["evidence"].as_array().unwrap();
        assert!(!evidence.is_empty());
        let timeline = json(&data, &["timeline", uid, "-o", "json"]);
        for e in evidence {
            let at = e["position"].as_u64().unwrap() as usize;
            assert_eq!(timeline["facts"][at]["audit_id"], e["audit_id"]);
            let raw = loupe(&data, &["raw", e["audit_id"].as_str().unwrap()]);
            assert!(raw.status.success());
        }
        match create["phase"].as_str().unwrap() {
            "in_flight" => assert!(create["stuck_for_us"].as_i64().unwrap() > 0),
            "ended" => assert!(label["milestones"]["delete_requested"].is_i64()),
            other => panic!("an ImageNotFound pod cannot be {other}"),
        }
    }
    // The table form names the code and the remedy.
    let uid = with_code(&labels, "ImageNotFound")[0]["uid"]
        .as_str()
        .unwrap();
    let out = loupe(&data, &["diagnose", uid]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ImageNotFound") && text.contains("remedy"),
        "{text}"
    );
}

#[test]
fn a_window_lists_faults_and_a_refused_workload_once_with_its_attempts() {
    let (dir, labels) = cluster(false);
    let data = dir.path().join("data");
    let lines = json(&data, &["diagnose", "--since", "48h", "-o", "json"]);
    let lines = lines.as_array().unwrap();
    assert!(lines.iter().all(|l| l["kind"] != "success"));
    let quota: Vec<&Value> = lines
        .iter()
        .filter(|l| l["code"] == "ApiQuotaExceeded")
        .collect();
    assert!(!quota.is_empty());
    for q in &quota {
        assert!(q["uid"].as_str().unwrap().starts_with("rejected:"));
        assert!(q["attempts"].as_u64().unwrap() >= 2, "{q}");
        assert!(q["workload"].as_str().unwrap().starts_with("creates/"));
    }
    let all = json(
        &data,
        &["diagnose", "--since", "48h", "--all", "-o", "json"],
    );
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["code"] == "Success"));

    let agg = json(
        &data,
        &["codes", "--since", "48h", "--window", "1m", "-o", "json"],
    );
    let count = |code: &str| {
        agg["codes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == code)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    assert_eq!(
        count("ImageNotFound"),
        with_code(&labels, "ImageNotFound").len() as u64
    );
    // A finalizer is blocking once it has held the pod for 30 s; younger ones are still
    // in progress at the end of the simulation.
    let some_uid = labels
        .iter()
        .find_map(|l| l["uid"].as_str().filter(|u| !u.is_empty()))
        .unwrap();
    let clock = json(&data, &["diagnose", some_uid, "-o", "json"])["audit_clock"]
        .as_i64()
        .unwrap();
    let blocked = labels
        .iter()
        .filter(|l| l["delete"]["code"] == "FinalizerBlocked")
        .filter(|l| clock - l["milestones"]["delete_requested"].as_i64().unwrap() > 30_000_000)
        .count();
    assert!(blocked > 0);
    assert_eq!(count("FinalizerBlocked"), blocked as u64);
    assert!(agg["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["code"] == "ApiQuotaExceeded" && w["attempts"].as_u64().unwrap() >= 2));

    let list = json(&data, &["codes", "--list", "-o", "json"]);
    let codes: std::collections::BTreeSet<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(codes.len() >= 60, "{} codes", codes.len());
}

#[test]
fn without_events_the_result_says_so_instead_of_guessing() {
    let (dir, labels) = cluster(true);
    let data = dir.path().join("data");
    // Status alone still proves a missing image...
    let uid = with_code(&labels, "ImageNotFound")[0]["uid"]
        .as_str()
        .unwrap();
    let create = &json(&data, &["diagnose", uid, "-o", "json"])["results"][0];
    assert_eq!(create["code"], "ImageNotFound");
    assert!(create["notes"][0]
        .as_str()
        .unwrap()
        .contains("audit policy"));
    // ...but a mount timeout is only ever told by Events.
    for label in with_code(&labels, "VolumeMountTimeout") {
        let uid = label["uid"].as_str().unwrap();
        let create = &json(&data, &["diagnose", uid, "-o", "json"])["results"][0];
        assert_eq!(create["code"], "NoEvent", "{create}");
        assert!(create["summary"].as_str().unwrap().contains("audit policy"));
    }
}

#[test]
fn a_broken_rule_file_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("create.yaml"),
        "lifecycle: create\ndeadline: 5m\nstages:\n  - name: api\n    done: [{fact: pod_created}]\nrules:\n  - code: Mine\n    stage: nowhere\n    class: user\n    when: [{fact: event, reason: X}]\n    summary: s\n    remedy: r\n",
    )
    .unwrap();
    let out = loupe(
        &dir.path().join("data"),
        &["codes", "--list", "--rules", rules.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("create.yaml") && err.contains("nowhere"),
        "{err}"
    );
}
