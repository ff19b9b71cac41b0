//! On simulated clusters, against the ground-truth milestones: a pod with its images on
//! the node and no init containers has SIG platform time equal to its wall time (created →
//! every container started), and, without hooks or gates, delivery platform time equal to
//! it too (the readiness wait taken out), to the µs; a pod with pulls or init containers
//! has less, by at least the pull time the kubelet reported.

use loupe_facts::Fact;
use loupe_sim::{profile, run, Code, FaultMix, SimConfig};
use loupe_slo::{platform_time, IntervalSet, Profile};
use loupe_trace::{evaluate, Action, Pack};

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
    let mut builder = loupe_timeline::TimelineBuilder::new("sim", 5000);
    let mut labels = Vec::new();
    run(&config, &mut |_, line| builder.push(line), &mut |l| {
        labels.push(l.clone())
    });
    let t = builder.finish();
    let pack = Pack::defaults()
        .into_iter()
        .find(|p| p.def.action == Action::Create)
        .unwrap();
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
            Fact::PodCreated {
                containers,
                readiness_gates,
                ..
            } => Some((containers, readiness_gates)),
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
