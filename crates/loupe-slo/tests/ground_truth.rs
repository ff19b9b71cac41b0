//! On simulated clusters, against the ground-truth milestones: a pod with its images on
//! the node and no init containers has SIG platform time equal to its wall time (created →
//! every container started), and, without hooks or gates, delivery platform time equal to
//! it too (the readiness wait taken out), to the µs; a pod with pulls or init containers
//! has less, by at least the pull time the kubelet reported.

mod common;

use loupe_facts::Fact;
use loupe_sim::{profile, Code, FaultMix, SimConfig};
use loupe_slo::{platform_time, IntervalSet, Profile};
use loupe_trace::evaluate;

#[test]
fn platform_time_is_the_wall_time_less_user_work() {
    let config = SimConfig {
        pods: 400,
        seed: 3,
        workloads: 40,
        faults: FaultMix::default(),
        delete_share: 0.0,
        upgrade_share: 0.0,
        tail_seconds: 600.0,
        ..(profile("dev").unwrap().config)()
    };
    let (t, labels) = common::simulate(&config);
    let pack = common::create_pack();
    let none = IntervalSet::default();
    let (mut plain, mut with_user) = (0, 0);
    for label in labels.iter().filter(|l| l.create.code == Code::Success) {
        let (Some(created), Some(started), Some(ready)) = (
            label.milestones.created,
            label.milestones.containers_started,
            label.milestones.ready,
        ) else {
            continue;
        };
        let facts = &t.facts[&label.uid];
        let trace = &evaluate(&pack, facts, t.clock)[0];
        let sig = platform_time(trace, Profile::Sig, &none, t.clock);
        let delivery = platform_time(trace, Profile::Delivery, &none, t.clock);
        assert_eq!(sig.wall_us, started - created, "{}", label.name);
        assert_eq!(delivery.wall_us, ready - created, "{}", label.name);
        let spec = facts.iter().find_map(|f| match &f.fact {
            Fact::PodCreated(c) => Some((&c.containers, &c.readiness_gates)),
            _ => None,
        });
        let Some((containers, gates)) = spec else {
            continue;
        };
        let pulls = facts
            .iter()
            .any(|f| matches!(&f.fact, Fact::Event { reason, .. } if reason == "Pulling"));
        let init = containers.iter().any(|c| c.init);
        let init_runs = containers.iter().any(|c| c.init && !c.sidecar);
        let hooks = containers.iter().any(|c| c.post_start) || !gates.is_empty();
        if !init && !pulls {
            // Nothing the SIG SLI takes out: all of it is platform time.
            plain += 1;
            assert_eq!(sig.platform_us, sig.wall_us, "{}: {sig:?}", label.name);
            if !hooks {
                // Delivery also takes out the readiness wait: Running → Ready.
                assert_eq!(
                    delivery.platform_us,
                    started - created,
                    "{}: {delivery:?}",
                    label.name
                );
            }
        } else {
            with_user += 1;
            // A sidecar keeps running: the SIG SLI takes out only init containers that finish.
            if pulls || init_runs {
                assert!(sig.platform_us < sig.wall_us, "{}: {sig:?}", label.name);
            }
            // A pull the kubelet reports takes at least its transfer out of the delivery.
            let pulled: i64 = facts
                .iter()
                .filter_map(|f| match &f.fact {
                    Fact::Event {
                        reason, message, ..
                    } if reason == "Pulled" => message
                        .split(" in ")
                        .nth(1)
                        .and_then(|m| m.split(' ').next())
                        .and_then(loupe_trace::matcher::parse_go_duration),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            assert!(delivery.user_us >= pulled, "{}: {delivery:?}", label.name);
        }
    }
    assert!(
        plain >= 10 && with_user >= 50,
        "{plain} plain, {with_user} with user work"
    );
}

/// Against the simulator's own platform-time truth (wall time less the stretches it
/// scheduled for the user: pulls, init container runs, hooks, readiness, gates): every
/// delivered pod's SIG platform time within 10 ms, and its delivery platform time too
/// (pods with a postStart hook: between the truth and the truth less the time from the
/// hook's end to the running status, which is when the kubelet tells of the hook's end);
/// the SIG profile's p50/p99 over the SLI's population as a direct computation from the
/// labels gives them.
#[test]
fn platform_time_matches_the_simulators_truth() {
    use loupe_facts::Fact;
    const TOLERANCE: i64 = 10_000;
    let config = SimConfig {
        pods: 1200,
        seed: 9,
        workloads: 60,
        faults: FaultMix::parse("ImagePullQueueTooMuchTime=0.03,PostStartHookTooMuchTime=0.03,KubeletDelay=0.03,ScheduleTooMuchTime=0.03").unwrap(),
        delete_share: 0.0,
        upgrade_share: 0.0,
        tail_seconds: 900.0,
        ..(profile("default").unwrap().config)()
    };
    let (t, labels) = common::simulate(&config);
    let pack = common::create_pack();
    let none = IntervalSet::default();
    let (mut checked, mut hooked, mut worst_sig, mut worst_delivery) = (0, 0, 0i64, 0i64);
    let (mut truth_sig, mut loupe_sig) = (Vec::new(), Vec::new());
    for label in &labels {
        let Some(truth) = &label.platform else {
            continue;
        };
        let Some(facts) = t.facts.get(&label.uid) else {
            continue;
        };
        let trace = &evaluate(&pack, facts, t.clock)[0];
        let sig = platform_time(trace, Profile::Sig, &none, t.clock);
        let gap = (sig.platform_us - truth.sig_us).abs();
        worst_sig = worst_sig.max(gap);
        assert!(
            gap <= TOLERANCE,
            "{}: SIG {sig:?} vs truth {truth:?}",
            label.name
        );
        if let Some(want) = truth.delivery_us {
            let got = platform_time(trace, Profile::Delivery, &none, t.clock).platform_us;
            let hook_end = truth
                .user
                .iter()
                .filter(|u| u.kind == "post_start")
                .map(|u| u.end)
                .min();
            let gap = (got - want).abs();
            if let (Some(hook_end), Some(started)) = (hook_end, label.milestones.containers_started)
            {
                // The kubelet says a hook is done only with the container's running
                // status: until then the time is the hook's. Loupe may give the hook no
                // more than that, and never less than the truth.
                hooked += 1;
                let unobservable = started - hook_end;
                assert!(
                    got <= want + TOLERANCE && want - got <= unobservable + TOLERANCE,
                    "{}: delivery {got} vs truth {want} (hook ended {unobservable} µs before the status)",
                    label.name
                );
            } else {
                worst_delivery = worst_delivery.max(gap);
                assert!(
                    gap <= TOLERANCE,
                    "{}: delivery {got} vs truth {want}: {truth:?}",
                    label.name
                );
            }
        }
        checked += 1;
        // The SLI's population: schedulable at once, stateless (no PVC), delivered.
        let stateless = facts.iter().any(|f| {
            matches!(&f.fact, Fact::PodCreated(c) if c.volumes.iter().all(|v| v.claim.is_none()))
        });
        let schedulable = !facts
            .iter()
            .any(|f| matches!(&f.fact, Fact::Event { reason, .. } if reason == "FailedScheduling"));
        if stateless && schedulable {
            truth_sig.push(truth.sig_us);
            loupe_sig.push(sig.platform_us);
        }
    }
    let pct = |v: &mut Vec<i64>, q: f64| {
        v.sort_unstable();
        v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
    };
    let (tp50, tp99) = (pct(&mut truth_sig, 0.5), pct(&mut truth_sig, 0.99));
    let (lp50, lp99) = (pct(&mut loupe_sig, 0.5), pct(&mut loupe_sig, 0.99));
    println!(
        "{checked} delivered pods ({hooked} with postStart hooks); worst gap SIG {worst_sig} µs, delivery {worst_delivery} µs; \
         SIG SLI over {} pods: p50 {tp50} µs / p99 {tp99} µs from the labels, {lp50} / {lp99} from Loupe",
        truth_sig.len()
    );
    assert!(checked > 800 && truth_sig.len() > 500, "{checked} checked");
    assert!((tp50 - lp50).abs() <= TOLERANCE && (tp99 - lp99).abs() <= TOLERANCE);
}
