//! The hand scanner behind `decode` against its meaning over `serde_json::Value`
//! (`oracle`): on real audit data, and on every truncation and many one-byte corruptions
//! of it.
//!
//! The real data is ../shared/corpus/audit. A fresh clone has none: the corpus tests then
//! say so and pass, unless LOUPE_REQUIRE_CORPUS=1 (set by .ci/run) makes that a failure.

mod oracle;

use std::path::PathBuf;

const KUBELET_PATCH: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"f3e1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods/oom-7d/status","verb":"patch","user":{"username":"system:node:worker-node-1","groups":["system:nodes","system:authenticated"]},"sourceIPs":["10.146.0.8"],"userAgent":"kubelet/v1.30.12 (linux/amd64) kubernetes/d5c6cb5","objectRef":{"resource":"pods","namespace":"default","name":"oom-7d","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"code":200},"requestObject":{"metadata":{"uid":"u-1"},"status":{"phase":"Running","n":-1.5e3,"ok":true,"x":null,"l":[[],{}]}},"requestReceivedTimestamp":"2025-09-03T12:55:44.819014Z","stageTimestamp":"2025-09-03T12:55:44.912345Z","annotations":{"authorization.k8s.io/decision":"allow"}}"#;

fn corpus_lines() -> Option<Vec<String>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/audit");
    if !dir.is_dir() {
        assert!(
            std::env::var_os("LOUPE_REQUIRE_CORPUS").is_none(),
            "LOUPE_REQUIRE_CORPUS is set but the corpus is not at {}",
            dir.display()
        );
        eprintln!("SKIPPED: the shared corpus is not at {}", dir.display());
        return None;
    }
    let mut lines = Vec::new();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            // JSON-lines logs, and files that hold one pretty-printed event.
            lines.push(text.trim().to_string());
            lines.extend(text.lines().map(str::to_string));
        }
    }
    Some(lines)
}

#[test]
fn agrees_with_the_oracle_on_the_corpus() {
    let Some(lines) = corpus_lines() else { return };
    let mut decoded = 0;
    for line in &lines {
        oracle::check(line);
        decoded += loupe_audit::decode(line).is_ok() as usize;
    }
    assert!(decoded >= 130, "only {decoded} corpus lines decoded");
}

/// Every pod and Event body of the corpus is read by the scanner as serde reads it.
#[test]
fn reads_every_corpus_pod_and_event_body_as_serde_does() {
    let Some(lines) = corpus_lines() else { return };
    let (mut pods, mut events) = (0, 0);
    for line in &lines {
        let Ok(event) = loupe_audit::decode(line) else {
            continue;
        };
        let resource = event.target().resource;
        if matches!(
            resource,
            loupe_audit::Resource::CoreEvent | loupe_audit::Resource::EventsApiEvent
        ) {
            for body in [event.request_object, event.response_object]
                .into_iter()
                .flatten()
            {
                let core = serde_json::from_str::<loupe_audit::objects::CoreEvent>(body.get());
                let api = serde_json::from_str::<loupe_audit::objects::ApiEvent>(body.get());
                assert_eq!(
                    oracle::check_events(body.get()),
                    (core.is_ok(), api.is_ok()),
                    "{}",
                    body.get()
                );
                events += 1;
            }
        }
        if resource != loupe_audit::Resource::Pod {
            continue;
        }
        for body in [event.request_object, event.response_object]
            .into_iter()
            .flatten()
        {
            let serde_reads = serde_json::from_str::<loupe_audit::objects::Pod>(body.get()).is_ok();
            assert_eq!(oracle::check_pod(body.get()), serde_reads, "{}", body.get());
            pods += 1;
        }
    }
    assert!(pods >= 20, "only {pods} pod bodies in the corpus");
    // The audit corpus records Events at Metadata level (no bodies): the simulator's
    // test (`loupe-sim/tests/sim.rs`) holds Event bodies to serde.
    eprintln!("{pods} pod bodies, {events} Event bodies");
}

/// Every prefix, every one-byte deletion, and each byte replaced by JSON's structural
/// characters: the scanner refuses exactly what the oracle refuses.
fn corrupt(text: &str) {
    for end in 0..text.len() {
        if text.is_char_boundary(end) {
            oracle::check(&text[..end]);
        }
    }
    let bytes = text.as_bytes();
    for at in 0..bytes.len() {
        let mut variants = vec![[&bytes[..at], &bytes[at + 1..]].concat()];
        for b in *b"{}[]\",:\\ 0-.e\x01n" {
            let mut v = bytes.to_vec();
            v[at] = b;
            variants.push(v);
        }
        for v in variants {
            if let Ok(v) = std::str::from_utf8(&v) {
                oracle::check(v);
            }
        }
    }
}

/// Found by the fuzz target: a field given twice, the first copy of the wrong type.
#[test]
fn agrees_with_the_oracle_on_a_repeated_field() {
    oracle::check(include_str!("duplicate-verb.json"));
    assert!(loupe_audit::decode(include_str!("duplicate-verb.json")).is_err());
}

#[test]
fn agrees_with_the_oracle_on_corruptions() {
    corrupt(KUBELET_PATCH);
    corrupt(
        r#"{"level":"Metadata","metadata":{"creationTimestamp":"2018-10-25T14:09:12Z"},"auditID":"a\u0062","stage":"ResponseComplete","user":null,"objectRef":{"resource":"pods","namespace":"ns\"x"},"responseStatus":{"code":-0,"status":"Failure"}}"#,
    );
}

#[test]
fn agrees_with_the_oracle_on_corrupted_corpus_lines() {
    let Some(lines) = corpus_lines() else { return };
    // The smallest few events of each kind of file are enough to cover the shapes.
    let mut samples: Vec<&String> = lines.iter().filter(|l| l.len() < 1500).collect();
    samples.sort_by_key(|l| l.len());
    samples.dedup();
    for line in samples.iter().rev().take(12) {
        corrupt(line);
    }
}
