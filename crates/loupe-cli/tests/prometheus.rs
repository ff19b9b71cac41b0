//! The alert rules as Prometheus sees them: the shipped file is what `loupe slo rules`
//! generates, `promtool` checks it and runs its unit tests, and a real Prometheus scrapes
//! a running `loupe serve` fed by a paced simulated cluster and evaluates the rules.
//!
//! Needs Debian's `prometheus` package (scripts/test installs it). Without it these tests
//! say SKIPPED, unless LOUPE_REQUIRE_PROMETHEUS is set (CI), where they fail.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::loupe;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `tool` can run; a missing tool is a failure where it is required.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("LOUPE_REQUIRE_PROMETHEUS").is_none(),
            "{tool} is required (LOUPE_REQUIRE_PROMETHEUS is set) but cannot run"
        );
        eprintln!("SKIPPED: {tool} is not installed (apt-get install prometheus)");
    }
    found
}

#[test]
fn the_shipped_rules_are_generated_and_pass_promtool_and_its_unit_tests() {
    let dir = repo().join("deploy/prometheus");
    let shipped = std::fs::read_to_string(dir.join("loupe-rules.yaml")).unwrap();
    let out = loupe(Path::new("unused"), &["slo", "rules"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        shipped,
        "deploy/prometheus/loupe-rules.yaml is stale: regenerate it with `loupe slo rules`"
    );
    if !have("promtool") {
        return;
    }
    for args in [
        vec!["check", "rules", "loupe-rules.yaml"],
        vec!["test", "rules", "loupe-rules.test.yaml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    let (head, body) = r.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_string())
}

/// A Prometheus HTTP API answer's `data`, if it succeeded.
fn api(port: u16, path: &str) -> Option<Value> {
    let body = get(port, path)?;
    // The body may be chunked; the JSON object is all there is between the braces.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let v: Value = serde_json::from_str(json).ok()?;
    (v["status"] == "success").then(|| v["data"].clone())
}

fn query(port: u16, promql: &str) -> Vec<Value> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    api(port, &format!("/api/v1/query?query={encoded}"))
        .and_then(|d| d["result"].as_array().cloned())
        .unwrap_or_default()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_loupe_and_evaluates_the_slo_rules() {
    if !have("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (loupe_port, prom_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{loupe_port}");
    let data = dir.path().join("data");
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args([
                "--data",
                data.to_str().unwrap(),
                "--cluster",
                "lab",
                "serve",
            ])
            .args([
                "--listen",
                &listen,
                "--lateness",
                "2s",
                "--slo-every",
                "250ms",
            ])
            .env("LOUPE_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let config = dir.path().join("prometheus.yml");
    let rules = repo().join("deploy/prometheus/loupe-rules.yaml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}']\n\
             scrape_configs:\n  - job_name: loupe\n    static_configs: [{{targets: ['{listen}']}}]\n",
            rules.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while get(loupe_port, "/healthz").is_none()
        || api(prom_port, "/api/v1/status/buildinfo").is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "loupe or prometheus did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Prometheus has scraped Loupe once before the cluster starts: every verdict counted
    // from here on is an increase it sees.
    while query(prom_port, "up{job=\"loupe\"} == 1").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus never scraped Loupe"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A third of the pods fail to get an IP: far beyond a 1 % budget. Paced so that
    // verdicts keep coming over ~15 s of scrapes.
    let feeder = Killed(
        Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args([
                "simulate",
                "--profile",
                "dev",
                "--pods",
                "150",
                "--rate",
                "2",
                "--seed",
                "5",
            ])
            .args(["--faults", "IPAllocationFailed=0.33"])
            .args([
                "--webhook",
                &format!("http://{listen}/audit/lab"),
                "--speed",
                "5",
            ])
            .env("LOUPE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(150);
    let (mut judged, mut ratio, mut alert) = (0.0, 0.0, String::new());
    while Instant::now() < deadline {
        let value = |v: &Value| {
            v["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        judged = query(prom_port, "sum(loupe_slo_judged_total)")
            .first()
            .map_or(0.0, value);
        ratio = query(prom_port, "max(loupe:slo_error_ratio:rate5m)")
            .first()
            .map_or(0.0, value);
        if let Some(alerts) = api(prom_port, "/api/v1/alerts") {
            if let Some(a) = alerts["alerts"].as_array().and_then(|a| {
                a.iter()
                    .find(|a| a["labels"]["alertname"] == "LoupeDeliverySLOBurnRateCritical")
            }) {
                alert = a["state"].as_str().unwrap_or("").to_string();
            }
        }
        if judged > 20.0 && ratio > 0.144 && !alert.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(feeder);
    assert!(
        judged > 20.0,
        "Prometheus scraped {judged} judged deliveries"
    );
    assert!(ratio > 0.144, "error ratio over 5 min: {ratio}");
    assert!(
        alert == "pending" || alert == "firing",
        "the critical burn-rate alert is {alert:?}"
    );
    // Every rule evaluated without error against Loupe's real series.
    let groups = api(prom_port, "/api/v1/rules").unwrap();
    let mut evaluated = 0;
    for g in groups["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
            evaluated += 1;
        }
    }
    assert_eq!(evaluated, 15);
    // Loupe's label sets stay bounded: no pod names or UIDs in any series.
    let text = get(loupe_port, "/metrics").unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains("pod=") && !line.contains("uid="), "{line}");
    }
    // And docs/slo.md lists every family.
    let doc = std::fs::read_to_string(repo().join("docs/slo.md")).unwrap();
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = family.split_once(' ').unwrap();
        let listed = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        assert!(
            doc.contains(&format!("`{listed}`")),
            "docs/slo.md does not list {listed}"
        );
    }
}
