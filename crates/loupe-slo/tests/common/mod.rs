//! What the SLO tests share: a simulated cluster's timelines and ground truth.
#![allow(dead_code)]

use loupe_sim::{run, Label, SimConfig};
use loupe_timeline::Timelines;
use loupe_trace::{Action, Pack};

/// Runs the simulator into in-memory timelines; returns them with the labels.
pub fn simulate(config: &SimConfig) -> (Timelines, Vec<Label>) {
    let mut builder = loupe_timeline::TimelineBuilder::new("sim", 5000);
    let mut labels = Vec::new();
    run(config, &mut |_, line| builder.push(&line), &mut |l| {
        labels.push(l.clone())
    });
    (builder.finish(), labels)
}

/// The built-in create pack.
pub fn create_pack() -> Pack {
    Pack::defaults()
        .into_iter()
        .find(|p| p.def.action == Action::Create)
        .expect("a create pack is built in")
}
