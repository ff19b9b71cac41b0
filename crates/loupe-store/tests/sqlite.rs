//! The embedded store: atomic commits, recovery, queries, retention.

use loupe_sample::{generate, SampleConfig};
use loupe_store::{PodFilter, RecoveryLimits, Retention, SqliteStore, Store, StoreReader};
use loupe_timeline::{Config, Processor};

fn sample(pods: usize, seed: u64) -> Vec<String> {
    let mut lines = Vec::new();
    generate(
        &SampleConfig {
            pods,
            seed,
            ..SampleConfig::default()
        },
        |l| lines.push(l.to_string()),
    );
    lines
}

fn ingest(store: &mut SqliteStore, cluster: &str, lines: &[String], commit_every: usize) {
    let recovery = store
        .recovery(cluster, &RecoveryLimits::of(&Config::new(cluster)))
        .unwrap();
    let mut p = Processor::recover(Config::new(cluster), recovery);
    for (i, line) in lines.iter().enumerate() {
        p.push(line, "sample", i as u64 + 1);
        if i % commit_every == commit_every - 1 {
            store.commit(cluster, &p.take_output(), &[]).unwrap();
        }
    }
    p.flush();
    store.commit(cluster, &p.take_output(), &[]).unwrap();
}

#[test]
fn stores_pods_timelines_raw_events_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let lines = sample(30, 3);
    ingest(&mut store, "prod", &lines, 500);
    let pods = store
        .pods(&PodFilter {
            cluster: Some("prod".into()),
            ..PodFilter::default()
        })
        .unwrap();
    assert!(pods.len() >= 28, "{} pods", pods.len());
    let gone = pods
        .iter()
        .find(|p| p.gone.is_some())
        .expect("some pods were deleted");
    let timeline = store.timeline("prod", &gone.uid).unwrap();
    assert!(
        timeline.windows(2).all(|w| w[0].ts <= w[1].ts),
        "ordered by event time"
    );
    assert_eq!(gone.facts as usize, timeline.len());
    let raw = store.raw(&timeline[0].audit_id).unwrap();
    assert_eq!(raw.len(), 1);
    assert!(raw[0].2.contains(&gone.uid));
    let versions = store.versions("prod", &gone.uid).unwrap();
    assert!(
        versions.len() >= 5,
        "create, status patches, deletes: {}",
        versions.len()
    );
    assert!(versions[0].full && versions[0].verb == "create");
    assert_eq!(
        store
            .find_pods(None, &format!("{}/{}", gone.namespace, gone.name))
            .unwrap()[0]
            .uid,
        gone.uid
    );
    assert_eq!(store.find_pods(Some("prod"), &gone.uid).unwrap().len(), 1);
    assert!(store
        .find_pods(Some("other"), &gone.uid)
        .unwrap()
        .is_empty());
    let by_node = store
        .pods(&PodFilter {
            node: Some("node-a".into()),
            ..PodFilter::default()
        })
        .unwrap();
    assert!(!by_node.is_empty() && by_node.iter().all(|p| p.node.as_deref() == Some("node-a")));
}

#[test]
fn commits_are_idempotent_and_clusters_are_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let lines = sample(10, 5);
    ingest(&mut store, "a", &lines, 10_000);
    ingest(&mut store, "b", &lines, 10_000);
    let count = |s: &SqliteStore, c: &str| {
        s.pods(&PodFilter {
            cluster: Some(c.into()),
            ..PodFilter::default()
        })
        .unwrap()
        .iter()
        .map(|p| p.facts)
        .sum::<u64>()
    };
    let (a, b) = (count(&store, "a"), count(&store, "b"));
    assert_eq!(a, b);
    // Replaying the same file into the same cluster doubles nothing.
    ingest(&mut store, "a", &lines, 10_000);
    assert_eq!(count(&store, "a"), a);
    let status = store.clusters().unwrap();
    assert_eq!(status.len(), 2);
    assert!(
        status[0].stats.duplicates > 0,
        "the second replay was seen as duplicates"
    );
}

#[test]
fn recovery_returns_waiting_events_and_recent_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let lines = sample(150, 9);
    let mut p = Processor::new(Config::new("c"));
    for (i, line) in lines.iter().enumerate() {
        p.push(line, "s", i as u64);
    }
    let waiting = p.pending_len();
    assert!(waiting > 0);
    store.commit("c", &p.take_output(), &[]).unwrap();
    let r = store
        .recovery("c", &RecoveryLimits::of(&Config::new("c")))
        .unwrap();
    assert_eq!(r.watermark, p.watermark());
    assert_eq!(r.pending.len(), waiting, "every waiting event comes back");
    assert!(r.recent.len() >= waiting);
    assert!(!r.pods.is_empty());
}

#[test]
fn retention_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let lines = sample(120, 11);
    ingest(&mut store, "c", &lines, 200);
    let before = store.pods(&PodFilter::default()).unwrap().len();
    let r = store
        .retain(Retention {
            max_age_us: Some(20_000_000),
            max_bytes: None,
        })
        .unwrap();
    assert!(r.chunks > 0 && r.pods > 0, "{r:?}");
    let after = store.pods(&PodFilter::default()).unwrap();
    assert!(after.len() < before);
    let newest = after.iter().map(|p| p.last_seen).max().unwrap();
    assert!(after
        .iter()
        .all(|p| p.last_seen >= newest - 20_000_000 - 60_000_000));

    let size = store.size_bytes().unwrap();
    let r = store
        .retain(Retention {
            max_age_us: None,
            max_bytes: Some(size / 3),
        })
        .unwrap();
    assert!(
        r.bytes_after <= size / 3 || store.clusters().unwrap()[0].raw_events == 0,
        "{r:?}"
    );
}

#[test]
fn versions_and_raw_events_are_found_across_chunks() {
    // A commit every few lines: an event's raw text and its facts (applied once the
    // watermark passes) land in different chunks.
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let lines = sample(12, 21);
    ingest(&mut store, "prod", &lines, 7);
    let pods = store.pods(&PodFilter::default()).unwrap();
    assert!(pods.len() >= 10);
    let mut versions = 0;
    for pod in &pods {
        let timeline = store.timeline("prod", &pod.uid).unwrap();
        let ids: std::collections::BTreeSet<&str> =
            timeline.iter().map(|f| f.audit_id.as_str()).collect();
        for id in ids {
            let raw = store.raw(id).unwrap();
            assert_eq!(raw.len(), 1, "{id}: {raw:?}");
            assert!(raw[0].2.contains(id));
        }
        let found = store.versions("prod", &pod.uid).unwrap();
        assert!(found.iter().all(|v| v.body.contains(&pod.uid) || !v.full));
        versions += found.len();
    }
    let bodies = lines
        .iter()
        .filter(|l| l.contains(r#""resource":"pods""#) && l.contains(r#""requestObject""#))
        .count();
    assert!(
        versions >= bodies / 2,
        "{versions} versions for {bodies} pod writes"
    );
    assert!(store.raw("no-such-audit-id").unwrap().is_empty());
}

#[test]
fn a_store_of_another_schema_version_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("loupe.db")).unwrap();
    conn.execute(
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(dir.path()).err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("schema version 1") && text.contains("replay"),
        "{text}"
    );
}

#[test]
fn readers_opening_the_store_never_fail_the_writer() {
    // `loupe pods` and the span stream open the store beside `loupe serve`'s writer.
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let lines = sample(40, 13);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, stop) = (dir.path().to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = SqliteStore::open(&path).unwrap();
                r.pods(&PodFilter::default()).unwrap();
                reads += 1;
            }
            reads
        })
    };
    let mut p = Processor::new(Config::new("c"));
    for (i, line) in lines.iter().enumerate() {
        p.push(line, "s", i as u64);
        if i % 20 == 19 {
            store
                .commit("c", &p.take_output(), &[])
                .expect("a commit beside readers");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}

/// Several processes opening one new store at once (a query beside a starting server)
/// all see a whole store: the tables and the schema version appear together.
#[test]
fn a_new_store_opened_concurrently_is_whole_for_everyone() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    SqliteStore::open(&path)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for o in openers {
            assert_eq!(o.join().unwrap(), Ok(()));
        }
    }
}

/// The SLO ledger keeps each verdict once, pending pods with their due time, and the
/// tracker's cursor, across reopenings.
#[test]
fn the_slo_ledger_records_each_verdict_once_and_survives_reopening() {
    use loupe_store::{LedgerRound, LedgerVerdict};
    let dir = tempfile::tempdir().unwrap();
    let verdict = |uid: &str, decided: i64| LedgerVerdict {
        cluster: "c".into(),
        uid: uid.into(),
        action: "create".into(),
        start: 1,
        decided,
        outcome: "GOOD".into(),
        record: "{}".into(),
    };
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.ledger_cursor("c").unwrap(), None);
        let round = LedgerRound {
            verdicts: vec![verdict("a", 10), verdict("b", 20)],
            pending: vec![("p".into(), 50), ("q".into(), 90)],
            settled: vec![],
            cursor: 30,
        };
        assert_eq!(store.record_round("c", &round).unwrap(), vec![true, true]);
        let again = LedgerRound {
            verdicts: vec![verdict("b", 25), verdict("p", 60)],
            pending: vec![("q".into(), 80)],
            settled: vec!["p".into()],
            cursor: 70,
        };
        assert_eq!(store.record_round("c", &again).unwrap(), vec![false, true]);
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.ledger_cursor("c").unwrap(), Some(70));
    assert_eq!(store.ledger_due("c", 85).unwrap(), vec!["q".to_string()]);
    assert_eq!(store.ledger_pending().unwrap(), vec![("c".to_string(), 1)]);
    let kept = store.ledger_verdicts(15).unwrap();
    let got: Vec<(&str, i64)> = kept.iter().map(|v| (v.uid.as_str(), v.decided)).collect();
    assert_eq!(
        got,
        vec![("b", 20), ("p", 60)],
        "the first verdict of b stands"
    );
}

#[test]
fn a_pod_first_stored_bare_gets_its_name_when_its_state_comes() {
    use loupe_timeline::{Entry, Output, PodBody, PodState};
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    // An entry for a pod the output has no state for: the store keeps it on a bare row.
    let mut out = Output::default();
    out.entries.push(Entry {
        uid: "u-1".into(),
        ts: 1_000,
        audit_id: "a1".into(),
        late: true,
        body: PodBody::None,
        facts: Vec::new(),
    });
    store.commit("prod", &out, &[]).unwrap();
    let names = |store: &SqliteStore| -> Vec<(String, String)> {
        let rows = store.pods(&PodFilter::default()).unwrap();
        rows.into_iter().map(|r| (r.namespace, r.name)).collect()
    };
    assert_eq!(names(&store), [(String::new(), String::new())]);
    let mut state = PodState::new("u-1", "shop", "web-1");
    state.first_ts = 1_000;
    state.last_ts = 2_000;
    let mut out = Output::default();
    out.pods.push(std::sync::Arc::new(state));
    store.commit("prod", &out, &[]).unwrap();
    assert_eq!(names(&store), [("shop".to_string(), "web-1".to_string())]);
}

#[test]
fn pod_states_come_back_from_the_store_exactly_as_they_were() {
    use loupe_timeline::StateLoader;
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let mut p = Processor::new(Config::new("c"));
    for (i, line) in sample(60, 4).iter().enumerate() {
        p.push(line, "s", i as u64);
    }
    store.commit("c", &p.take_output(), &[]).unwrap();
    let in_memory: Vec<_> = p.pods().into_values().cloned().collect();
    // Conditions, containers, labels, annotations, owners: every field is exercised.
    assert!(in_memory
        .iter()
        .any(|s| !s.containers.is_empty() && s.owner.is_some()));
    let mut recovered = store
        .recovery("c", &RecoveryLimits::of(&Config::new("c")))
        .unwrap()
        .pods;
    recovered.sort_by(|a, b| a.uid.cmp(&b.uid));
    let live: Vec<_> = in_memory.iter().filter(|s| s.gone.is_none()).collect();
    assert!(!live.is_empty());
    for state in &live {
        let back = recovered.iter().find(|r| r.uid == state.uid);
        assert_eq!(back, Some(*state), "recovery of {}", state.uid);
    }
    let mut loader = store.loader("c").unwrap();
    for state in &live {
        assert_eq!(
            loader.load(&state.uid).as_ref(),
            Some(*state),
            "load of {}",
            state.uid
        );
    }
}

#[test]
fn a_pod_updated_after_retention_never_overwrites_the_pod_that_took_its_row() {
    use loupe_store::Retention;
    use loupe_timeline::{Output, PodState};
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let commit = |store: &mut SqliteStore, uid: &str, name: &str, ts: i64| {
        let mut state = PodState::new(uid, "shop", name);
        state.first_ts = ts;
        state.last_ts = ts;
        let mut out = Output::default();
        out.pods.push(std::sync::Arc::new(state));
        out.watermark = 100_000_000;
        store.commit("prod", &out, &[]).unwrap();
    };
    commit(&mut store, "u-a", "a", 1_000);
    // `a` is the last row: once deleted, SQLite hands its number to the next pod.
    let r = store
        .retain(Retention {
            max_age_us: Some(1_000_000),
            max_bytes: None,
        })
        .unwrap();
    assert_eq!(r.pods, 1);
    commit(&mut store, "u-b", "b", 99_500_000);
    commit(&mut store, "u-a", "a-renamed", 99_600_000);
    let mut pods: Vec<(String, String)> = store
        .pods(&PodFilter::default())
        .unwrap()
        .into_iter()
        .map(|p| (p.uid, p.name))
        .collect();
    pods.sort();
    assert_eq!(
        pods,
        [
            ("u-a".to_string(), "a-renamed".to_string()),
            ("u-b".to_string(), "b".to_string())
        ]
    );
}

#[test]
fn a_renamed_pod_keeps_its_row_and_takes_the_new_name() {
    use loupe_timeline::{Output, PodState};
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    for name in ["web-1", "web-2"] {
        let mut state = PodState::new("u-1", "shop", name);
        state.first_ts = 1_000;
        state.last_ts = 2_000;
        let mut out = Output::default();
        out.pods.push(std::sync::Arc::new(state));
        store.commit("prod", &out, &[]).unwrap();
    }
    let rows = store.pods(&PodFilter::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "web-2");
    assert!(store
        .find_pods(Some("prod"), "shop/web-1")
        .unwrap()
        .is_empty());
    assert_eq!(
        store.find_pods(Some("prod"), "shop/web-2").unwrap().len(),
        1
    );
}
