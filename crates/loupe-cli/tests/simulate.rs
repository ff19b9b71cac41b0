//! `loupe simulate` and `loupe demo` as a user runs them: files with ground truth, the
//! same bytes for the same seed, a paced stream into a running `loupe serve`.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn loupe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(args)
        .env("LOUPE_LOG", "warn")
        .output()
        .expect("running loupe")
}

fn ok(args: &[&str]) -> std::process::Output {
    let out = loupe(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn simulate_to(dir: &Path, name: &str, seed: &str) -> (Vec<u8>, Vec<Value>) {
    let log = dir.join(format!("{name}.log"));
    let labels = dir.join(format!("{name}.labels"));
    let out = ok(&[
        "simulate",
        "--profile",
        "dev",
        "--pods",
        "40",
        "--seed",
        seed,
        "--every-fault",
        "0.01",
        "-O",
        log.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--cluster",
        "sim",
    ]);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("audit events") && report.contains("MB") && report.contains("events/s"),
        "{report}"
    );
    let labels: Vec<Value> = std::fs::read_to_string(labels)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (std::fs::read(log).unwrap(), labels)
}

#[test]
fn simulate_writes_a_log_and_its_ground_truth_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let (a, labels) = simulate_to(dir.path(), "a", "5");
    let (b, _) = simulate_to(dir.path(), "b", "5");
    let (c, _) = simulate_to(dir.path(), "c", "6");
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c);
    assert_eq!(labels.len(), 40);
    assert!(labels
        .iter()
        .all(|l| l["cluster"] == "sim" && l["create"]["code"].is_string()));
    // The log replays cleanly and every created pod in the labels is in the store.
    let data = dir.path().join("data");
    ok(&[
        "--data",
        data.to_str().unwrap(),
        "--cluster",
        "sim",
        "replay",
        dir.path().join("a.log").to_str().unwrap(),
    ]);
    let status = ok(&["--data", data.to_str().unwrap(), "status", "-o", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["clusters"][0]["stats"]["malformed"], 0, "{status}");
    for l in labels.iter().filter(|l| l["uid"] != "") {
        let out = ok(&[
            "--data",
            data.to_str().unwrap(),
            "timeline",
            l["uid"].as_str().unwrap(),
            "-o",
            "json",
        ]);
        let t: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            t["facts"].as_array().is_some_and(|f| !f.is_empty()),
            "{}",
            l["name"]
        );
    }
}

#[test]
fn simulate_compresses_by_file_name_and_replay_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, _) = simulate_to(dir.path(), "plain", "7");
    let args = |out: &str| {
        let out = dir.path().join(out);
        ok(&[
            "simulate",
            "--profile",
            "dev",
            "--pods",
            "40",
            "--seed",
            "7",
            "--every-fault",
            "0.01",
            "--cluster",
            "sim",
            "-O",
            out.to_str().unwrap(),
        ]);
        std::fs::read(out).unwrap()
    };
    let zst = args("log.zst");
    let gz = args("log.gz");
    assert!(zst.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) && zst.len() * 4 < plain.len());
    assert_eq!(
        zstd::decode_all(&zst[..]).unwrap(),
        plain,
        "zstd holds the same bytes"
    );
    let mut unzipped = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain, "gzip holds the same bytes");
    // A replay of the compressed log stores what a replay of the plain one does.
    let stats = |log: &str| {
        let data = dir.path().join(format!("data-{log}"));
        let data = data.to_str().unwrap();
        let log = dir.path().join(log);
        ok(&[
            "--data",
            data,
            "--cluster",
            "sim",
            "replay",
            log.to_str().unwrap(),
        ]);
        let status = ok(&["--data", data, "status", "-o", "json"]);
        let status: Value = serde_json::from_slice(&status.stdout).unwrap();
        status["clusters"][0]["stats"].clone()
    };
    let from_plain = stats("plain.log");
    assert_eq!(from_plain["malformed"], 0, "{from_plain}");
    assert!(
        from_plain["records"].as_u64().is_some_and(|n| n > 1000),
        "{from_plain}"
    );
    assert_eq!(stats("log.zst"), from_plain);
    assert_eq!(stats("log.gz"), from_plain);
}

#[test]
fn simulate_explains_bad_arguments() {
    let out = loupe(&["simulate", "--faults", "NoSuchCode=0.1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown result code \"NoSuchCode\""));
    let out = loupe(&["simulate", "--profile", "huge"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("profiles: dev, default, large, burst"));
    let codes = String::from_utf8(ok(&["simulate", "--list-codes"]).stdout).unwrap();
    assert!(codes.lines().count() > 50 && codes.contains("FinalizerBlocked"));
}

#[test]
fn paced_simulation_feeds_a_running_server_as_the_apiserver_webhook_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
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
            "5s",
        ])
        .env("LOUPE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let labels = dir.path().join("labels");
    let out = loupe(&[
        "simulate",
        "--profile",
        "dev",
        "--pods",
        "15",
        "--rate",
        "5",
        "--seed",
        "3",
        "--webhook",
        &format!("http://{listen}/audit/live"),
        "--speed",
        "400",
        "--labels",
        labels.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{report}");
    // The writer commits on its own once input pauses; wait for the pods to land.
    let uids: Vec<String> = std::fs::read_to_string(&labels)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["uid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|u| !u.is_empty())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    while Instant::now() < deadline {
        let out = loupe(&["--data", data.to_str().unwrap(), "pods", "-o", "json"]);
        if out.status.success() {
            let pods: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            seen = uids
                .iter()
                .filter(|u| {
                    pods.as_array()
                        .is_some_and(|a| a.iter().any(|p| p["uid"] == **u))
                })
                .count();
            if seen == uids.len() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = server.kill();
    let mut err = String::new();
    if let Some(mut e) = server.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = server.wait();
    assert_eq!(
        seen,
        uids.len(),
        "pods received over the webhook; server said: {err}"
    );
}

#[test]
fn demo_runs_loupe_fed_by_a_paced_simulated_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ok(&[
        "--data",
        data.to_str().unwrap(),
        "demo",
        "--pods",
        "20",
        "--speed",
        "300",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Loupe is receiving the audit webhook at http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sent ") && stderr.contains("audit events"),
        "{stderr}"
    );
    assert!(
        stdout.contains("NAMESPACE") && stdout.contains("Faults the simulator injected"),
        "{stdout}"
    );
    let pods = ok(&["--data", data.to_str().unwrap(), "pods", "-o", "json"]);
    let pods: Value = serde_json::from_slice(&pods.stdout).unwrap();
    assert!(pods.as_array().is_some_and(|p| p.len() >= 18), "{pods}");
}
