//! What the CLI tests share: running `loupe`, and a simulated cluster replayed into a store.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

pub fn loupe(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("LOUPE_LOG", "warn")
        .output()
        .expect("running loupe")
}

/// Runs `loupe … -o json` (the args say so) and parses its output; fails on an error.
pub fn json(data: &Path, args: &[&str]) -> Value {
    let out = loupe(data, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A dev-profile cluster of `pods` with `faults`, simulated to `DIR/audit.log` (which
/// `edit` may rewrite first, as a different audit policy would), replayed into
/// `DIR/data` as cluster `sim`; its ground truth.
pub fn replayed_cluster(
    pods: usize,
    seed: u64,
    faults: &str,
    edit: impl FnOnce(&Path),
) -> (tempfile::TempDir, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let labels = dir.path().join("labels");
    let data = dir.path().join("data");
    let (pods, seed) = (pods.to_string(), seed.to_string());
    let out = loupe(
        &data,
        &[
            "--cluster",
            "sim",
            "simulate",
            "--profile",
            "dev",
            "--pods",
            &pods,
            "--seed",
            &seed,
            "--faults",
            faults,
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
    edit(&log);
    let out = loupe(
        &data,
        &["--cluster", "sim", "replay", log.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let labels = std::fs::read_to_string(labels)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (dir, labels)
}
