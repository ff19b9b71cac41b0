//! Verdicts on a simulated cluster with every injectable fault, against the ground truth:
//! a delivered pod is never BAD, a user's or capacity's fault never counts against the
//! platform, a platform fault is never excluded; and a verdict reached early is the one
//! reached later, with more of the stream (what lets a live tracker write it once).

mod common;

use std::collections::BTreeMap;

use loupe_diagnose::RuleBook;
use loupe_sim::{profile, Code, FaultMix, SimConfig};
use loupe_slo::{judge, undecided_until, Outcome, Slo};
use loupe_trace::Action;

#[test]
fn verdicts_follow_the_injected_fault_class_and_never_change_once_reached() {
    let config = SimConfig {
        pods: 1500,
        seed: 11,
        workloads: 60,
        faults: FaultMix::every_code(0.01),
        ..(profile("dev").unwrap().config)()
    };
    let (t, labels) = common::simulate(&config);
    let (slo, book) = (Slo::defaults(), RuleBook::defaults());
    let mut table: BTreeMap<(String, Outcome), u32> = BTreeMap::new();
    let (mut early_final, mut checked, mut quick) = (0, 0, 0);
    for label in &labels {
        let Some(facts) = t.facts.get(&label.uid) else {
            continue;
        };
        let verdicts = judge(&slo, &book, facts, t.clock);
        // One action's diagnosis is that action's part of the whole.
        let all = loupe_diagnose::diagnose(&book, facts, t.clock);
        for action in [Action::Create, Action::Delete, Action::Upgrade] {
            let part: Vec<_> = all.iter().filter(|r| r.action == action).cloned().collect();
            assert_eq!(
                loupe_diagnose::diagnose_action(&book, facts, action, t.clock),
                part
            );
        }
        let create = verdicts.iter().find(|v| v.action == Action::Create);
        if let Some(v) = create {
            let class = format!("{:?}", label.create.class).to_lowercase();
            *table.entry((class.clone(), v.outcome)).or_default() += 1;
            if label.create.code == Code::Success {
                assert_eq!(v.outcome, Outcome::Good, "{}: {v:?}", label.name);
            }
            match class.as_str() {
                "user" | "capacity" => {
                    assert_ne!(
                        v.outcome,
                        Outcome::Bad,
                        "{} {:?}: {v:?}",
                        label.name,
                        label.create.code
                    )
                }
                "platform" => assert_ne!(
                    v.outcome,
                    Outcome::Excluded,
                    "{} {:?}: {v:?}",
                    label.name,
                    label.create.code
                ),
                _ => {}
            }
        }
        // Judged again halfway through the pod's life, from the events before then.
        let (first, last) = (facts[0].ts, facts[facts.len() - 1].ts);
        let half = first + (last - first) / 2;
        let before = &facts[..facts.partition_point(|r| r.ts <= half)];
        let early_verdicts = judge(&slo, &book, before, half);
        // The quick check the tracker makes: never says "nothing to decide" wrongly, and
        // never later than the verdicts' own due times.
        if let Some(due) = undecided_until(&slo, &book, before, half) {
            quick += 1;
            for v in &early_verdicts {
                assert!(!v.is_final(), "{}: quick check missed {v:?}", label.name);
                assert!(
                    v.due.is_some_and(|d| d >= due),
                    "{}: due {due} after {v:?}",
                    label.name
                );
            }
        }
        for early in early_verdicts.iter().filter(|v| v.is_final()) {
            early_final += 1;
            let later = verdicts
                .iter()
                .find(|v| v.action == early.action && v.start == early.start)
                .unwrap_or_else(|| panic!("{}: {early:?} vanished", label.name));
            assert_eq!(
                (later.outcome, &later.reason, later.decided),
                (early.outcome, &early.reason, early.decided),
                "{}: reached at {half} as {early:?}, later as {later:?}",
                label.name
            );
        }
        checked += 1;
    }
    println!("injected class × verdict: {table:?}");
    println!("{early_final} verdicts reached halfway through, all unchanged at the end; {quick} pods found undecided without diagnosis");
    assert!(quick > 50, "{quick}");
    assert!(
        checked > 1000 && early_final > 300,
        "{checked} pods, {early_final} early verdicts"
    );
    for outcome in [Outcome::Good, Outcome::Bad, Outcome::Excluded] {
        assert!(
            table.keys().any(|(_, o)| *o == outcome),
            "no {outcome:?} at all: {table:?}"
        );
    }
}

/// With the SIG profile as the headline, only the official SLI's population is judged:
/// stateless pods that schedule at once. The rest are excluded, saying why.
#[test]
fn the_sig_headline_judges_only_the_slis_population() {
    let config = SimConfig {
        pods: 600,
        seed: 12,
        workloads: 40,
        faults: FaultMix::parse("FailedScheduling_Insufficient=0.1").unwrap(),
        ..(profile("dev").unwrap().config)()
    };
    let (t, labels) = common::simulate(&config);
    let text = loupe_slo::DEFAULT_CONFIG.replace("headline: delivery", "headline: sig");
    let (slo, book) = (Slo::load("sig.yaml", &text).unwrap(), RuleBook::defaults());
    let (mut stateful, mut waited, mut judged) = (0, 0, 0);
    for label in &labels {
        let Some(facts) = t.facts.get(&label.uid) else {
            continue;
        };
        let Some(v) = judge(&slo, &book, facts, t.clock)
            .into_iter()
            .find(|v| v.action == Action::Create && v.is_final())
        else {
            continue;
        };
        assert_eq!(v.profile, loupe_slo::Profile::Sig);
        let shape = facts
            .iter()
            .find_map(|r| loupe_slo::PodShape::of(&r.fact))
            .unwrap();
        if shape.stateful {
            stateful += 1;
            assert_eq!(
                (v.outcome, v.reason.as_str()),
                (Outcome::Excluded, "StatefulPod"),
                "{}",
                label.name
            );
        } else if label.create.code == Code::FailedScheduling_Insufficient {
            waited += 1;
            assert_eq!(v.outcome, Outcome::Excluded, "{}: {v:?}", label.name);
        } else if v.outcome != Outcome::Excluded {
            judged += 1;
            assert_eq!(
                v.sig_us,
                Some(v.platform_us),
                "the headline is the SIG time"
            );
        }
    }
    assert!(
        stateful > 5 && waited > 5 && judged > 300,
        "{stateful} stateful, {waited} waited, {judged} judged"
    );
}
