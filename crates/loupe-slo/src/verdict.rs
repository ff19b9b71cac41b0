//! Verdicts: each delivery (a pod's create, delete or upgrade) is GOOD, BAD or EXCLUDED
//! against its deadline, with the diagnosis code as the reason (reference §5.4).
//!
//! The deadline runs on platform time, so the clock pauses while the user's own stages
//! run. A delivery is decided at the first of: its end (GOOD when in time), the moment
//! its platform time passed the deadline (BAD, or EXCLUDED when the standing cause is
//! the user's, capacity's or nobody's), its abort (a delete before the deadline:
//! EXCLUDED), or the give-up time. The reason is the diagnosis *as of that moment*, from
//! the events before it: a verdict never depends on when it was computed, so a live
//! tracker and a later replay agree.

use loupe_diagnose::{diagnose_action, diagnose_traces, ActionResult, Class, Kind, RuleBook};
use loupe_facts::FactRecord;
use loupe_trace::{Action, Owner, Trace};
use serde::{Deserialize, Serialize};

use crate::deadline::{micros, Deadline, ExternalPolicy, PodShape, Slo};
use crate::interval::IntervalSet;
use crate::platform::{platform_time, Profile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Good,
    Bad,
    Excluded,
    /// Not decided yet.
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Good => "GOOD",
            Outcome::Bad => "BAD",
            Outcome::Excluded => "EXCLUDED",
            Outcome::Pending => "PENDING",
        }
    }
}

/// One delivery's verdict. The JSON form is part of the CLI's stable contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub action: Action,
    pub outcome: Outcome,
    /// The diagnosis code (or `BestEffort`, `MirrorPod`, `DeadlineExceeded`).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The fault class of the reason.
    pub fault: Class,
    /// The deadline class (`small`, `large`, … or `delete`).
    pub class: String,
    pub profile: Profile,
    pub start: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    /// Audit time the verdict was reached; `None` while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<i64>,
    pub deadline_us: i64,
    /// Headline platform time to the end (or abort; in flight: so far), which for a
    /// delivery decided at its deadline is later than the decision.
    pub platform_us: i64,
    pub wall_us: i64,
    /// Creates: both profiles, to the end or the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_us: Option<i64>,
    /// Deletes: the escalation level reached (`10m`, `1h`, `24h`) while not gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// Pending: the earliest audit time a verdict can be reached with no new event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<i64>,
    /// How the deadline was reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<String>,
}

impl Verdict {
    pub fn is_final(&self) -> bool {
        self.outcome != Outcome::Pending
    }
}

/// Judges every delivery of one pod's timeline at audit time `now`. Refused creates (no
/// pod) have no delivery; they are counted by `loupe codes`.
pub fn judge(slo: &Slo, book: &RuleBook, records: &[FactRecord], now: i64) -> Vec<Verdict> {
    let shape = records.iter().find_map(|r| PodShape::of(&r.fact));
    let traces = loupe_trace::evaluate_all(&book.packs, records, now);
    let results = diagnose_traces(book, records, &traces, now);
    let mut out = Vec::new();
    for result in &results {
        if result.attempts.is_some() {
            continue;
        }
        let Some(trace) = traces
            .iter()
            .find(|t| t.action == result.action && t.start == result.start)
        else {
            continue;
        };
        if trace.action == Action::Create && shape.is_none() {
            // Its creation was not seen: its delivery cannot be measured.
            continue;
        }
        let job = Judging {
            slo,
            book,
            records,
            shape: shape.as_ref(),
            trace,
            now,
        };
        out.push(job.verdict(result));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Finished,
    Ended,
    DeadlinePassed,
    GaveUp,
}

/// Without diagnosing: `Some(t)` when no delivery of the timeline can be decided before
/// audit time `t` unless new events come (none ended or aborted, none past its deadline
/// or its give-up at `now`); `None` when one may be decided now and [`judge`] is needed.
/// Conservative: platform time here takes out no diagnosed exclusions, so it runs out no
/// later than [`judge`]'s. A live tracker uses it to skip the diagnosis of pods that are
/// merely on their way.
pub fn undecided_until(
    slo: &Slo,
    book: &RuleBook,
    records: &[FactRecord],
    now: i64,
) -> Option<i64> {
    let shape = records.iter().find_map(|r| PodShape::of(&r.fact))?;
    let traces = loupe_trace::evaluate_all(&book.packs, records, now);
    let mut due = i64::MAX;
    for trace in &traces {
        if trace.end.or(trace.aborted).is_some_and(|t| t <= now) {
            return None;
        }
        let deadline = deadline_of(slo, Some(&shape), trace.action);
        let give_up = trace.start.saturating_add(give_up_of(slo, trace.action));
        let platform = platform_time(trace, deadline.profile, &IntervalSet::default(), now);
        let left = deadline.deadline_us - platform.platform_us;
        if now >= give_up || left < 0 {
            return None;
        }
        due = due.min(now.saturating_add(left.max(1))).min(give_up);
    }
    Some(due)
}

fn deadline_of(slo: &Slo, shape: Option<&PodShape>, action: Action) -> Deadline {
    let cfg = &slo.config;
    match (action, shape) {
        (Action::Delete, _) => Deadline {
            class: "delete".into(),
            profile: Profile::Delivery,
            best_effort: false,
            deadline_us: micros(cfg.delete.platform),
            base_us: micros(cfg.delete.platform),
            adjustments: Vec::new(),
            overridden_by: None,
        },
        (_, Some(shape)) => slo.deadline(shape, cfg.headline),
        // An upgrade of a pod whose creation was not seen: the default shape's class.
        (_, None) => slo.deadline(&PodShape::default(), cfg.headline),
    }
}

fn give_up_of(slo: &Slo, action: Action) -> i64 {
    let cfg = &slo.config;
    match action {
        Action::Delete => cfg
            .delete
            .escalation
            .first()
            .map_or(micros(cfg.give_up), |d| micros(*d)),
        _ => micros(cfg.give_up),
    }
}

struct Judging<'a> {
    slo: &'a Slo,
    book: &'a RuleBook,
    records: &'a [FactRecord],
    shape: Option<&'a PodShape>,
    trace: &'a Trace,
    now: i64,
}

impl Judging<'_> {
    fn deadline(&self) -> Deadline {
        deadline_of(self.slo, self.shape, self.trace.action)
    }

    fn give_up_us(&self) -> i64 {
        give_up_of(self.slo, self.trace.action)
    }

    /// A fault the platform answers for (platform, or external by policy).
    fn counts_bad(&self, class: Class) -> bool {
        class == Class::Platform
            || (class == Class::External && self.slo.config.external == ExternalPolicy::Bad)
    }

    fn excluded_class(&self, class: Class) -> bool {
        match class {
            Class::User | Class::Capacity | Class::Excluded => true,
            Class::External => self.slo.config.external == ExternalPolicy::Excluded,
            Class::Platform | Class::None => false,
        }
    }

    fn verdict(&self, result: &ActionResult) -> Verdict {
        let deadline = self.deadline();
        let profile = deadline.profile;
        let trace = self.trace;
        let excluded = self.excluded_intervals(result);
        let at = |t: i64| platform_time(trace, profile, &excluded, t).platform_us;
        let finished = trace.end.filter(|t| *t <= self.now);
        let aborted = trace.aborted.filter(|t| *t <= self.now);
        // Where the delivery stopped (end, abort) or stands (the clock).
        let stop = finished.or(aborted).unwrap_or(self.now).max(trace.start);
        let give_up = trace.start.saturating_add(self.give_up_us());
        let mut v = self.base(result, &deadline, stop);
        let sig_create = profile == Profile::Sig && trace.action == Action::Create;
        let shape_excluded = self.shape.and_then(|s| {
            if s.mirror && trace.action == Action::Create {
                Some("MirrorPod")
            } else if deadline.best_effort {
                Some("BestEffort")
            } else if sig_create && s.stateful {
                // The official SLI is of stateless pods.
                Some("StatefulPod")
            } else if sig_create && !excluded.intervals().is_empty() {
                // … that schedule at once, without waiting for capacity or preemption.
                Some("NotSchedulableAtOnce")
            } else {
                None
            }
        });
        if let Some(reason) = shape_excluded {
            match finished
                .or(aborted)
                .or((self.now >= give_up).then_some(give_up))
            {
                Some(t) => {
                    v.outcome = Outcome::Excluded;
                    v.decided = Some(t);
                    v.reason = reason.to_string();
                    v.detail = None;
                    v.fault = Class::Excluded;
                }
                None => v.due = Some(give_up),
            }
            return v;
        }
        let decision = if at(stop) > deadline.deadline_us {
            let crossed = first_crossing(trace.start, stop, deadline.deadline_us, at);
            Some((crossed.min(give_up), Decision::DeadlinePassed))
        } else if let Some(end) = finished {
            Some((end, Decision::Finished))
        } else if let Some(abort) = aborted {
            Some((abort, Decision::Ended))
        } else if self.now >= give_up {
            Some((give_up, Decision::GaveUp))
        } else {
            None
        };
        match decision {
            Some((t, how)) => self.decide_as_of(&mut v, t, how),
            None => {
                // The platform clock runs at most as fast as the wall clock.
                let left = deadline.deadline_us - at(self.now);
                v.due = Some(self.now.saturating_add(left.max(1)).min(give_up));
            }
        }
        v
    }

    /// The verdict as it stands at `stop`, pending.
    fn base(&self, result: &ActionResult, deadline: &Deadline, stop: i64) -> Verdict {
        let trace = self.trace;
        let excluded = self.excluded_intervals(result);
        let measure = |p: Profile| platform_time(trace, p, &excluded, stop);
        let head = measure(deadline.profile);
        let (sig, delivery) = if trace.action == Action::Create {
            (
                Some(measure(Profile::Sig).platform_us),
                Some(measure(Profile::Delivery).platform_us),
            )
        } else {
            (None, None)
        };
        Verdict {
            action: trace.action,
            outcome: Outcome::Pending,
            reason: result.code.clone(),
            detail: result.detail.clone(),
            fault: result.class,
            class: deadline.class.clone(),
            profile: deadline.profile,
            start: trace.start,
            end: trace.end.filter(|e| *e <= self.now),
            decided: None,
            deadline_us: deadline.deadline_us,
            platform_us: head.platform_us,
            wall_us: head.wall_us,
            sig_us: sig,
            delivery_us: delivery,
            escalation: self.escalation(stop),
            due: None,
            adjustments: deadline
                .adjustments
                .iter()
                .cloned()
                .chain(
                    deadline
                        .overridden_by
                        .iter()
                        .map(|o| format!("override: {o}")),
                )
                .collect(),
        }
    }

    /// Decides at `at` with the reason the timeline gave then: the diagnosis from the
    /// events up to `at`, none after (the times stay measured to the stop).
    fn decide_as_of(&self, v: &mut Verdict, at: i64, how: Decision) {
        let cut = self.records.partition_point(|r| r.ts <= at);
        let (records, kind) = (&self.records[..cut], self.kind_as_of(at, cut, v));
        let outcome = match how {
            Decision::Finished => Outcome::Good,
            Decision::Ended if kind == Some(Kind::Fault) && self.counts_bad(v.fault) => {
                Outcome::Bad
            }
            Decision::Ended => Outcome::Excluded,
            _ if self.excluded_class(v.fault) => Outcome::Excluded,
            Decision::DeadlinePassed => {
                if matches!(kind, Some(Kind::Pending | Kind::Success)) {
                    // Nothing named a cause yet: the platform span that was running says where.
                    v.reason = "DeadlineExceeded".into();
                    v.detail = self.open_platform_span(at, records);
                    v.fault = Class::Platform;
                }
                Outcome::Bad
            }
            Decision::GaveUp if self.counts_bad(v.fault) => Outcome::Bad,
            // Given up on with no fault named and the platform clock not run out.
            Decision::GaveUp => Outcome::Excluded,
        };
        v.outcome = outcome;
        v.decided = Some(at);
        v.due = None;
    }

    /// Sets the reason as of `at` (the first `cut` records) and says what kind of result
    /// it was; the current diagnosis stands when nothing came after `at`.
    fn kind_as_of(&self, at: i64, cut: usize, v: &mut Verdict) -> Option<Kind> {
        let records = &self.records[..cut];
        let results = diagnose_action(self.book, records, self.trace.action, at);
        let then = results
            .iter()
            .find(|r| r.action == self.trace.action && r.start == self.trace.start)?;
        v.reason = then.code.clone();
        v.detail = then.detail.clone();
        v.fault = then.class;
        Some(then.kind)
    }

    /// The deepest platform span open at `at` (the stage the time went to).
    fn open_platform_span(&self, at: i64, records: &[FactRecord]) -> Option<String> {
        let traces: Vec<Trace> = self
            .book
            .packs
            .iter()
            .filter(|p| p.def.action == self.trace.action)
            .flat_map(|p| loupe_trace::evaluate(p, records, at))
            .collect();
        let trace = traces.iter().find(|t| t.start == self.trace.start)?;
        trace
            .spans
            .iter()
            .filter(|s| {
                s.owner == Owner::Platform && s.start <= at && s.end.is_none_or(|e| e >= at)
            })
            .max_by_key(|s| (s.depth, s.start))
            .map(|s| s.name.clone())
    }

    fn escalation(&self, stop: i64) -> Option<String> {
        if self.trace.action != Action::Delete || self.trace.end.is_some_and(|e| e <= self.now) {
            return None;
        }
        let waited = stop - self.trace.start;
        self.slo
            .config
            .delete
            .escalation
            .iter()
            .rev()
            .find(|level| micros(**level) <= waited)
            .map(|level| humantime::format_duration(level.0).to_string())
    }

    /// Time the diagnosis excludes: waiting for capacity and preemption, from the first
    /// evidence to the end of the stage's span (scheduling: the binding).
    fn excluded_intervals(&self, result: &ActionResult) -> IntervalSet {
        let Some(set) = self.book.set(self.trace.action) else {
            return IntervalSet::default();
        };
        let class_of = |code: &str| set.rules.iter().find(|r| r.code == code).map(|r| r.class);
        let limit = self
            .trace
            .end
            .or(self.trace.aborted)
            .unwrap_or(self.now)
            .min(self.now);
        let standing = result
            .stage
            .as_deref()
            .map(|stage| (result.code.as_str(), stage, &result.evidence));
        let recovered = result
            .recovered
            .iter()
            .map(|f| (f.code.as_str(), f.stage.as_str(), &f.evidence));
        let intervals =
            standing
                .into_iter()
                .chain(recovered)
                .filter_map(|(code, stage, evidence)| {
                    let class = class_of(code)?;
                    if !matches!(class, Class::Capacity | Class::Excluded) {
                        return None;
                    }
                    let from = evidence.iter().map(|e| e.ts).min()?;
                    let to = self
                        .trace
                        .spans
                        .iter()
                        .find(|s| s.depth == 1 && s.name == stage)
                        .and_then(|s| s.end)
                        .unwrap_or(limit);
                    Some((from, to.min(limit)))
                });
        IntervalSet::from_intervals(intervals.collect::<Vec<_>>())
    }
}

/// The first µs in `[start, stop]` at which `platform(t)` exceeds `deadline`, given that
/// it does at `stop` (platform time never decreases).
fn first_crossing(start: i64, stop: i64, deadline: i64, platform: impl Fn(i64) -> i64) -> i64 {
    let (mut lo, mut hi) = (start, stop);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if platform(mid) > deadline {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crossing_is_the_first_microsecond_over() {
        // 1 µs of platform time per µs after 10, paused over [20, 30).
        let platform = |t: i64| (t.min(20) - 10).max(0) + (t - 30).max(0);
        assert_eq!(first_crossing(0, 100, 15, platform), 26 + 10);
        assert_eq!(first_crossing(0, 100, 5, platform), 16);
    }
}
