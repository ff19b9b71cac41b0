//! The delivery SLO as a user meets it: `loupe slo`, `loupe slo violations`, `loupe slo
//! pod`, a config of their own; and `loupe serve`'s tracker, killed mid-delivery and
//! restarted, counting every verdict exactly once on /metrics.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{json, loupe, replayed_cluster};
use serde_json::Value;

fn injected<'a>(labels: &'a [Value], code: &str) -> Vec<&'a str> {
    labels
        .iter()
        .filter(|l| l["create"]["code"] == code)
        .map(|l| l["uid"].as_str().unwrap())
        .collect()
}

#[test]
fn slo_reports_rates_violations_and_one_pods_deadline() {
    let (dir, labels) = replayed_cluster(
        300,
        21,
        "IPAllocationFailed=0.08,ImageNotFound=0.08,FailedScheduling_Insufficient=0.05",
        |_| {},
    );
    let data = dir.path().join("data");
    let report = json(&data, &["slo", "--since", "30d", "-o", "json"]);
    let overall = &report["overall"];
    let (good, bad) = (
        overall["good"].as_u64().unwrap(),
        overall["bad"].as_u64().unwrap(),
    );
    assert!(good > 150 && bad > 0, "{overall}");
    let rate = overall["success_rate"].as_f64().unwrap();
    assert!((rate - good as f64 / (good + bad) as f64).abs() < 1e-9);
    assert_eq!(report["headline"], "delivery");
    assert!(report["by"]["class"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["group"]["class"] == "small"));
    assert!(!report["by"]["namespace"].as_array().unwrap().is_empty());
    assert!(overall["p99_ms"].as_f64().unwrap() >= overall["p50_ms"].as_f64().unwrap());

    // Every pod that failed to get an IP broke the SLO, and is listed with that reason;
    // the user's missing image and the capacity wait did not.
    let v = json(
        &data,
        &["slo", "violations", "--since", "30d", "-o", "json"],
    );
    let listed: Vec<(&str, &str)> = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["uid"].as_str().unwrap(), d["reason"].as_str().unwrap()))
        .collect();
    let ip = injected(&labels, "IPAllocationFailed");
    assert!(!ip.is_empty());
    for uid in &ip {
        let reason = listed.iter().find(|(u, _)| u == uid).map(|(_, r)| *r);
        assert!(
            matches!(
                reason,
                Some("IPAllocationFailed" | "FailedAllocateIP" | "NetworkNotReady")
            ),
            "{uid}: {reason:?}"
        );
    }
    for code in ["ImageNotFound", "FailedScheduling_Insufficient"] {
        for uid in injected(&labels, code) {
            assert!(
                !listed.iter().any(|(u, _)| *u == uid),
                "{code} {uid} counted against the platform"
            );
        }
    }
    assert_eq!(v["total"].as_u64().unwrap(), listed.len() as u64);
    let reasons = v["by"]["reason"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .map(|s| s["count"].as_u64().unwrap())
            .sum::<u64>()
            == listed.len() as u64
    );

    // One pod: its class, deadline and verdicts.
    let uid = ip[0];
    let pod = json(&data, &["slo", "pod", uid, "-o", "json"]);
    assert_eq!(pod["deadline"]["class"], "small");
    assert!(pod["deadline"]["deadline_us"].as_i64().unwrap() >= 5_000_000);
    let create = &pod["verdicts"][0];
    assert_eq!(
        (create["action"].as_str(), create["outcome"].as_str()),
        (Some("create"), Some("BAD"))
    );
    assert!(create["platform_us"].as_i64().unwrap() > create["deadline_us"].as_i64().unwrap());

    // Series and other breakdowns.
    let r = json(
        &data,
        &[
            "slo",
            "--since",
            "30d",
            "--by",
            "node,reason",
            "--window",
            "1m",
            "-o",
            "json",
        ],
    );
    assert!(r["windows"].as_array().unwrap().len() > 1);
    assert!(r["by"]["node"].as_array().unwrap().len() > 1);

    // A config of the user's own: the namespace of the failing pods gets an hour.
    let ns = labels.iter().find(|l| l["uid"] == uid).unwrap()["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let text = loupe_slo::DEFAULT_CONFIG.replace(
        "namespaces: {}",
        &format!("namespaces:\n  {ns}: {{deadline: 1h}}"),
    );
    let file = dir.path().join("slo.yaml");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let pod = json(&data, &["slo", "pod", uid, "--slo", file, "-o", "json"]);
    assert_eq!(pod["deadline"]["deadline_us"].as_i64(), Some(3_600_000_000));
    assert_eq!(pod["deadline"]["overridden_by"], format!("namespace {ns}"));

    // A broken one is refused with its file and line.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "headline: delivery\nobjective: 2\n").unwrap();
    let out = loupe(&data, &["slo", "--slo", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(data: &Path, log: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "--cluster",
            "sim",
            "serve",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tail",
            log.to_str().unwrap(),
        ])
        .args(["--lateness", "2s", "--slo-every", "200ms"])
        .env("LOUPE_LOG", "warn")
        .spawn()
        .expect("starting loupe serve")
}

/// `/metrics`, or empty while the server is not up.
fn metrics(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r
}

/// The sum of a metric's samples.
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Ledger {
    cursor: Option<i64>,
    verdicts: Vec<loupe_store::LedgerVerdict>,
    pending: Vec<String>,
}

fn ledger(data: &Path) -> Ledger {
    let store = loupe_store::SqliteStore::open(data).unwrap();
    Ledger {
        cursor: store.ledger_cursor("sim").unwrap(),
        verdicts: store.ledger_verdicts(i64::MIN).unwrap(),
        pending: store.ledger_due("sim", i64::MAX).unwrap(),
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_killed_mid_delivery_resumes_its_trackers_and_counts_each_verdict_once() {
    let dir = tempfile::tempdir().unwrap();
    let (log, labels) = (dir.path().join("audit.log"), dir.path().join("labels"));
    let data = dir.path().join("data");
    let sim = loupe(
        &data,
        &[
            "simulate",
            "--profile",
            "dev",
            "--pods",
            "120",
            "--seed",
            "8",
            "--faults",
            "IPAllocationFailed=0.1,KubeletDelay=0.1,FinalizerBlocked=0.05",
            "-O",
            log.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ],
    );
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let all = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    let half = lines.len() / 2;
    std::fs::write(&log, lines[..half].join("\n") + "\n").unwrap();

    let port = free_port();
    let mut first = serve(&data, &log, port);
    wait_for(
        "verdicts and pending deliveries before the kill",
        Duration::from_secs(120),
        || {
            let l = ledger(&data);
            l.verdicts.len() > 10 && !l.pending.is_empty()
        },
    );
    first.kill().unwrap(); // SIGKILL: no goodbye
    first.wait().unwrap();
    let before = ledger(&data);
    let text = metrics(port);
    assert!(text.is_empty(), "the first server is gone");

    let mut rest = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    rest.write_all((lines[half..].join("\n") + "\n").as_bytes())
        .unwrap();
    drop(rest);
    let mut second = serve(&data, &log, port);
    let total = lines.len() as u64;
    wait_for("the whole log", Duration::from_secs(120), || {
        let store = loupe_store::SqliteStore::open(&data).unwrap();
        use loupe_store::StoreReader;
        store
            .clusters()
            .unwrap()
            .iter()
            .map(|c| c.stats.records)
            .sum::<u64>()
            >= total
    });
    // The tracker catches up with the final watermark.
    let mut settled = None;
    wait_for("the tracker to settle", Duration::from_secs(120), || {
        let l = ledger(&data);
        let store = loupe_store::SqliteStore::open(&data).unwrap();
        use loupe_store::StoreReader;
        let w = store.clusters().unwrap()[0].watermark;
        let m = metrics(port);
        let counted = sum(&m, "loupe_slo_judged_total") + sum(&m, "loupe_slo_excluded_total");
        let done = l.cursor == Some(w) && counted as usize == l.verdicts.len();
        if done {
            settled = Some((l, m));
        }
        done
    });
    let (after, text) = settled.unwrap();
    let _ = second.kill();
    let _ = second.wait();

    // Each verdict once: one row per delivery, and the counters restored from the ledger
    // plus the new ones equal the rows (nothing counted twice, nothing dropped).
    let mut keys: Vec<_> = after
        .verdicts
        .iter()
        .map(|v| (&v.uid, &v.action, v.start))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), after.verdicts.len());
    let counted = sum(&text, "loupe_slo_judged_total") + sum(&text, "loupe_slo_excluded_total");
    assert_eq!(counted as usize, after.verdicts.len(), "{text}");
    assert!(sum(&text, "loupe_delivery_platform_seconds_count") > 0.0);
    assert!(sum(&text, "loupe_delivery_stage_seconds_count") > 0.0);
    // Verdicts recorded before the kill stand unchanged.
    for v in &before.verdicts {
        assert!(
            after.verdicts.contains(v),
            "{v:?} changed after the restart"
        );
    }
    // Deliveries pending at the kill were judged after the restart.
    let resumed = before
        .pending
        .iter()
        .filter(|uid| {
            after
                .verdicts
                .iter()
                .any(|v| &v.uid == *uid && !before.verdicts.iter().any(|b| b == v))
        })
        .count();
    assert!(
        resumed > 0,
        "none of the {} pending deliveries was judged after the restart",
        before.pending.len()
    );
    // And the live verdicts are what a query over the whole store says.
    let cursor = after.cursor.unwrap();
    let listed = json(
        &data,
        &[
            "--cluster",
            "sim",
            "slo",
            "list",
            "--since",
            "30d",
            "--action",
            "all",
            "-o",
            "json",
        ],
    );
    for v in &after.verdicts {
        let q = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|j| {
                j["uid"] == v.uid.as_str()
                    && j["action"] == v.action.as_str()
                    && j["start"] == v.start
            })
            .unwrap_or_else(|| panic!("{v:?} not in the query"));
        assert_eq!(q["outcome"], v.outcome.as_str(), "{v:?} vs {q}");
        assert_eq!(q["decided"], v.decided, "{v:?} vs {q}");
        assert!(v.decided <= cursor);
    }
}
