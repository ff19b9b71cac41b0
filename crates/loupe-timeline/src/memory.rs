//! Per-pod timelines kept in memory, for tools and tests that need no store: the facts a
//! store would hold, grouped by pod and in timeline order.

use std::collections::HashMap;

use loupe_facts::FactRecord;

use crate::{Config, Processor};

/// Feeds audit lines to a [`Processor`], draining its output as commits would.
pub struct TimelineBuilder {
    processor: Processor,
    lines: u64,
    every: u64,
    facts: HashMap<String, Vec<FactRecord>>,
}

/// Every pod's facts in timeline order (time, audit ID, order within the event), and the
/// audit clock at the end.
#[derive(Debug, Default)]
pub struct Timelines {
    pub facts: HashMap<String, Vec<FactRecord>>,
    pub clock: i64,
}

impl TimelineBuilder {
    /// Drains the processor every `every` lines (the size of a commit).
    pub fn new(cluster: &str, every: u64) -> TimelineBuilder {
        TimelineBuilder {
            processor: Processor::new(Config::new(cluster)),
            lines: 0,
            every: every.max(1),
            facts: HashMap::new(),
        }
    }

    pub fn push(&mut self, line: &str) {
        self.lines += 1;
        self.processor.push(line, "memory", self.lines);
        if self.lines.is_multiple_of(self.every) {
            self.drain();
        }
    }

    fn drain(&mut self) {
        for entry in self.processor.take_output().entries {
            let list = self.facts.entry(entry.uid.clone()).or_default();
            list.extend(entry.records());
        }
    }

    /// Applies what still waits for the watermark and sorts each pod's facts.
    pub fn finish(mut self) -> Timelines {
        self.processor.flush();
        let clock = self.processor.watermark();
        self.drain();
        for list in self.facts.values_mut() {
            list.sort_by(|a, b| (a.ts, &a.audit_id, a.seq).cmp(&(b.ts, &b.audit_id, b.seq)));
        }
        Timelines {
            facts: self.facts,
            clock,
        }
    }
}
