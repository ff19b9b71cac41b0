//! Accuracy on simulated clusters: every injectable result code, diagnosed from the audit
//! stream alone, against the simulator's ground truth. Prints the confusion matrix.

use std::collections::{BTreeMap, HashMap};

use loupe_diagnose::{diagnose, ActionResult, Kind, RuleBook};
use loupe_facts::FactRecord;
use loupe_sim::{profile, run, FaultMix, Label, Lifecycle, SimConfig, CODES};
use loupe_trace::Action;

struct Replayed {
    facts: HashMap<String, Vec<FactRecord>>,
    labels: Vec<Label>,
    clock: i64,
}

fn replay(config: &SimConfig) -> Replayed {
    replay_in_batches(config, 5000)
}

/// Takes the processor's output every `every` lines (as commits of that size would).
fn replay_in_batches(config: &SimConfig, every: usize) -> Replayed {
    let mut builder = loupe_timeline::TimelineBuilder::new("sim", every as u64);
    let mut labels = Vec::new();
    run(config, &mut |_, line| builder.push(&line), &mut |l| {
        labels.push(l.clone())
    });
    let t = builder.finish();
    Replayed {
        facts: t.facts,
        labels,
        clock: t.clock,
    }
}

/// Every fault of every lifecycle, with deletes and upgrades frequent enough that each of
/// their codes has dozens of pods.
fn all_codes(pods: usize, seed: u64) -> SimConfig {
    let mut faults = FaultMix::every_code(0.9 / 42.0);
    for c in CODES {
        match (c.lifecycle, c.class) {
            (_, loupe_sim::FaultClass::None) => {}
            (Lifecycle::Delete, _) => faults.set(c.code, 0.12),
            (Lifecycle::Upgrade, _) => faults.set(c.code, 0.3),
            _ => {}
        }
    }
    SimConfig {
        seed,
        pods,
        nodes: 24,
        workloads: 40,
        pods_per_second: 2.0,
        delete_share: 0.8,
        upgrade_share: 0.4,
        lifetime_seconds: 120.0,
        tail_seconds: 1200.0,
        faults,
        ..(profile("default").unwrap().config)()
    }
}

fn lifecycle_action(l: Lifecycle) -> Action {
    match l {
        Lifecycle::Create => Action::Create,
        Lifecycle::Delete => Action::Delete,
        Lifecycle::Upgrade => Action::Upgrade,
    }
}

/// A truth and what Loupe said, for one lifecycle of one pod.
struct Pair {
    truth: &'static str,
    got: String,
    kind: Option<Kind>,
    pod: String,
}

fn pairs(r: &Replayed, book: &RuleBook) -> Vec<Pair> {
    let mut results: HashMap<&str, Vec<ActionResult>> = HashMap::new();
    for (uid, facts) in &r.facts {
        results.insert(uid.as_str(), diagnose(book, facts, r.clock));
    }
    // LOUPE_DEBUG_POD=NAME prints a pod's timeline and results, to study a confusion.
    if let Ok(name) = std::env::var("LOUPE_DEBUG_POD") {
        for label in r.labels.iter().filter(|l| l.name == name) {
            for f in r.facts.get(&label.uid).into_iter().flatten() {
                println!("  {} {}", f.ts, f.fact.summary());
            }
            println!("{label:?}");
            println!("{:#?}", results.get(label.uid.as_str()));
        }
    }
    let mut out = Vec::new();
    for label in &r.labels {
        let verdicts = [
            Some(&label.create),
            label.delete.as_ref(),
            label.upgrade.as_ref(),
        ];
        for v in verdicts.into_iter().flatten() {
            let action = lifecycle_action(v.code.info().lifecycle);
            let uid = if label.uid.is_empty() {
                // Refused creates: one pseudo-pod per owner's generateName.
                let prefix = format!("rejected:{}/{}-", label.namespace, label.workload.name);
                r.facts
                    .keys()
                    .find(|k| k.starts_with(&prefix))
                    .cloned()
                    .unwrap_or_default()
            } else {
                label.uid.clone()
            };
            // A refused workload has one result per cause; its label names one of them.
            let of_action = || {
                results
                    .get(uid.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|x| x.action == action)
            };
            let found = of_action()
                .find(|x| x.code == v.code.name())
                .or_else(|| of_action().next());
            out.push(Pair {
                truth: v.code.name(),
                got: found.map_or("(none)".into(), |x| x.code.clone()),
                kind: found.map(|x| x.kind),
                pod: format!("{}/{} {}", label.namespace, label.name, uid),
            });
        }
    }
    out
}

/// A result that matches the truth: the code itself, or a success still finishing when
/// the simulation ended.
fn agrees(p: &Pair) -> bool {
    p.truth == p.got || (p.truth.ends_with("Success") && p.got == "InProgress")
}

fn confusion(pairs: &[Pair]) -> (String, usize) {
    let mut by_truth: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for p in pairs {
        *by_truth
            .entry(p.truth)
            .or_default()
            .entry(p.got.as_str())
            .or_default() += 1;
    }
    let mut text = format!(
        "{:<34} {:>5} {:>7}  confused with\n",
        "injected code", "pods", "right"
    );
    let mut wrong = 0;
    for (truth, got) in &by_truth {
        let total: usize = got.values().sum();
        let right: usize = got
            .iter()
            .filter(|(g, _)| {
                agrees(&Pair {
                    truth,
                    got: g.to_string(),
                    kind: None,
                    pod: String::new(),
                })
            })
            .map(|(_, n)| n)
            .sum();
        wrong += total - right;
        let others: Vec<String> = got
            .iter()
            .filter(|(g, _)| **g != *truth && !(truth.ends_with("Success") && **g == "InProgress"))
            .map(|(g, n)| format!("{g}×{n}"))
            .collect();
        text += &format!(
            "{truth:<34} {total:>5} {:>6.1}%  {}\n",
            100.0 * right as f64 / total as f64,
            others.join(" ")
        );
    }
    (text, wrong)
}

#[test]
fn every_injected_code_is_diagnosed() {
    let book = RuleBook::defaults();
    let mut all = Vec::new();
    for seed in [11, 12] {
        let r = replay(&all_codes(1500, seed));
        all.extend(pairs(&r, &book));
    }
    let (matrix, wrong) = confusion(&all);
    println!("{matrix}");
    let accuracy = 1.0 - wrong as f64 / all.len() as f64;
    println!(
        "{} lifecycles diagnosed, {wrong} wrong: accuracy {:.2}%",
        all.len(),
        100.0 * accuracy
    );
    // Every injectable code is covered by the run.
    for c in CODES {
        assert!(
            all.iter().any(|p| p.truth == c.name),
            "no pod was injected with {}",
            c.name
        );
    }
    for p in all.iter().filter(|p| !agrees(p)).take(30) {
        println!("wrong: {} → {} {}", p.truth, p.got, p.pod);
    }
    // No failed pod is reported as delivered.
    let false_success: Vec<&Pair> = all
        .iter()
        .filter(|p| !p.truth.ends_with("Success") && p.kind == Some(Kind::Success))
        .collect();
    for p in false_success.iter().take(10) {
        println!("reported as success: {} ({}) {}", p.truth, p.got, p.pod);
    }
    assert!(
        false_success.is_empty(),
        "{} failed pods reported as success",
        false_success.len()
    );
    assert!(accuracy >= 0.98, "accuracy {:.2}% < 98%", 100.0 * accuracy);
}

#[test]
fn results_do_not_depend_on_batching() {
    let config = all_codes(300, 21);
    let book = RuleBook::defaults();
    let runs: Vec<String> = [97, 5000]
        .iter()
        .map(|&every| {
            let r = replay_in_batches(&config, every);
            let mut pods: Vec<(&String, &Vec<FactRecord>)> = r.facts.iter().collect();
            pods.sort_by_key(|(uid, _)| uid.as_str());
            let results: Vec<(&String, Vec<ActionResult>)> = pods
                .into_iter()
                .map(|(uid, facts)| (uid, diagnose(&book, facts, r.clock)))
                .collect();
            serde_json::to_string(&results).unwrap()
        })
        .collect();
    assert!(runs[0].len() > 10_000);
    assert_eq!(
        runs[0], runs[1],
        "the same audit log gives the same results"
    );
}
