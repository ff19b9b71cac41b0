//! Evaluates a lifecycle's rules over one pod's timeline and its traces.
//!
//! For each action (the create, each upgrade, the delete) the facts of its window are
//! matched once against every rule and stage marker. A rule's hit stands unless a later
//! audit event shows its stage done (status evidence, not the Event stream, decides when
//! a stage is done). Standing hits are ranked by stage (dependency order), then by the
//! order the rules are written; a finished action with none is judged on its spans'
//! budgets. Pure: the same timeline and clock give the same result.

use std::cell::OnceCell;
use std::collections::HashMap;

use loupe_facts::{Fact, FactRecord};
use loupe_trace::matcher::{Hit, Matcher};
use loupe_trace::{Action, Owner, Span, Trace};
use serde::Serialize;
use serde_json::Value;

use crate::format::human;
use crate::rules::{Budget, Class, Detect, Outcome, Rule, RuleSet};
use crate::RuleBook;

/// A fact that proves a result, and where it sits in the pod's timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// Index in the pod's timeline (`loupe timeline -o json`).
    pub position: usize,
    /// Audit time, µs since the epoch.
    pub ts: i64,
    pub audit_id: String,
    pub fact: &'static str,
    pub text: String,
}

/// What kind of answer a result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Success,
    /// A rule proved a failure (or, for `even_if_completed` rules, a fault it went through).
    Fault,
    /// Nothing failed, but a stage went over its budget.
    Slow,
    /// Not finished and no rule explains why (`NoEvent`, `TimeoutUnknown`).
    Unknown,
    /// Still going, within budget.
    Pending,
    /// Ended by a delete (or the next change) with nothing wrong before.
    Aborted,
}

/// Where the action itself stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Finished,
    InFlight,
    /// Ended unfinished: deleted, or changed again, first.
    Ended,
}

/// A rule that matched, then its stage completed: kept to explain the time it cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub stage: String,
    pub occurrences: u32,
    pub evidence: Vec<Evidence>,
}

/// The user-owned span that took the most time (init containers, image pull, hooks…).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserTime {
    pub span: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub duration_us: i64,
    /// Of the action's whole time.
    pub share: f64,
}

/// The diagnosis of one action of one pod.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActionResult {
    pub action: Action,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub class: Class,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub kind: Kind,
    pub phase: Phase,
    pub summary: String,
    pub remedy: String,
    /// µs since the epoch (audit time).
    pub start: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    /// End − start; unfinished: the clock (or the end of the window) − start.
    pub duration_us: i64,
    /// In flight: how long since the pod last made progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck_for_us: Option<i64>,
    /// How often the evidence occurred (Event counts included).
    pub occurrences: u32,
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_time: Option<UserTime>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<Finding>,
    /// Missing signal and other caveats, said rather than guessed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Refused creates: how many times the owner tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lunettes: Option<String>,
}

/// Where a matcher sits in a rule set.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Rule(usize, usize),
    Marker(usize, usize),
}

/// A set's matchers by fact type (and, for Events, by exact reason), so each fact meets
/// only the matchers that could match it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    by_type: HashMap<String, ByType>,
}

#[derive(Debug, Clone, Default)]
struct ByType {
    any: Vec<Probe>,
    by_reason: HashMap<String, Vec<Probe>>,
}

impl Index {
    pub(crate) fn build(set: &RuleSet) -> Index {
        let mut index = Index::default();
        let mut add = |m: &Matcher, probe: Probe| {
            let entry = index.by_type.entry(m.fact_type().to_string()).or_default();
            match m.exact("reason") {
                Some(r) if m.fact_type() == "event" => entry
                    .by_reason
                    .entry(r.to_string())
                    .or_default()
                    .push(probe),
                _ => entry.any.push(probe),
            }
        };
        for (r, rule) in set.rules.iter().enumerate() {
            if let Detect::When { matchers, .. } = &rule.detect {
                for (m, matcher) in matchers.iter().enumerate() {
                    add(matcher, Probe::Rule(r, m));
                }
            }
        }
        for (s, stage) in set.stages.iter().enumerate() {
            for (m, matcher) in stage.done.iter().enumerate() {
                add(matcher, Probe::Marker(s, m));
            }
        }
        index
    }

    fn probes<'i>(&'i self, fact: &Fact) -> impl Iterator<Item = Probe> + 'i {
        let entry = self.by_type.get(fact.type_name());
        let reason = match fact {
            Fact::Event { reason, .. } => entry.and_then(|e| e.by_reason.get(reason.as_str())),
            _ => None,
        };
        entry
            .into_iter()
            .flat_map(|e| e.any.iter())
            .chain(reason.into_iter().flatten())
            .copied()
    }
}

/// The pod's facts, each as JSON only once a matcher of its type looks at it.
struct Facts<'a> {
    records: &'a [FactRecord],
    json: Vec<OnceCell<Value>>,
}

impl Facts<'_> {
    fn json(&self, i: usize) -> &Value {
        self.json[i]
            .get_or_init(|| serde_json::to_value(&self.records[i].fact).unwrap_or(Value::Null))
    }

    fn evidence(&self, i: usize) -> Evidence {
        let r = &self.records[i];
        Evidence {
            position: i,
            ts: r.ts,
            audit_id: r.audit_id.clone(),
            fact: r.fact.type_name(),
            text: r.fact.summary(),
        }
    }

    fn position_of(&self, audit_id: &str, from: usize) -> Option<usize> {
        (from..self.records.len()).find(|&i| self.records[i].audit_id == audit_id)
    }
}

/// The facts one action is judged on: `[start, end)` of the timeline.
#[derive(Debug, Clone, Copy)]
struct Window {
    action: Action,
    start: usize,
    end: usize,
    /// Ended by the fact at `end` (a delete, the next change), not by the timeline's end.
    cut: bool,
    /// A create the apiserver refused: no pod, only attempts.
    refused: bool,
}

/// Diagnoses every action of one pod: its create (or refused creates), each upgrade, and
/// its delete. `records` in timeline order; `now` is the audit clock.
pub fn diagnose(book: &RuleBook, records: &[FactRecord], now: i64) -> Vec<ActionResult> {
    let traces = loupe_trace::evaluate_all(&book.packs, records, now);
    diagnose_traces(book, records, &traces, now)
}

/// [`diagnose`] with the pod's traces already evaluated (by the book's packs, at `now`),
/// for callers that need both.
pub fn diagnose_traces(
    book: &RuleBook,
    records: &[FactRecord],
    traces: &[loupe_trace::Trace],
    now: i64,
) -> Vec<ActionResult> {
    diagnose_some(book, records, traces, now, None)
}

/// The results of one action only (its pack evaluated, its windows judged): what a
/// verdict needs when it looks back at one delivery.
pub fn diagnose_action(
    book: &RuleBook,
    records: &[FactRecord],
    action: Action,
    now: i64,
) -> Vec<ActionResult> {
    let traces: Vec<loupe_trace::Trace> = book
        .packs
        .iter()
        .filter(|p| p.def.action == action)
        .flat_map(|p| loupe_trace::evaluate(p, records, now))
        .collect();
    diagnose_some(book, records, &traces, now, Some(action))
}

fn diagnose_some(
    book: &RuleBook,
    records: &[FactRecord],
    traces: &[loupe_trace::Trace],
    now: i64,
    only: Option<Action>,
) -> Vec<ActionResult> {
    let facts = Facts {
        records,
        json: vec![OnceCell::new(); records.len()],
    };
    let has_events = records.iter().any(|r| matches!(r.fact, Fact::Event { .. }));
    windows(records)
        .into_iter()
        .filter(|w| only.is_none_or(|a| a == w.action))
        .filter_map(|w| {
            let (set, index) = book.set_with_index(w.action)?;
            let start_ts = records[w.start].ts;
            let trace = traces
                .iter()
                .find(|t| t.action == w.action && t.start == start_ts);
            Some(judge(set, index, &facts, w, trace, now, has_events))
        })
        .flatten()
        .collect()
}

fn windows(records: &[FactRecord]) -> Vec<Window> {
    let is_delete = |f: &Fact| {
        matches!(
            f,
            Fact::DeletionRequested { .. } | Fact::EvictionRequested { .. }
        )
    };
    let mut out = Vec::new();
    let created = records
        .iter()
        .position(|r| matches!(r.fact, Fact::PodCreated(_)));
    match created {
        Some(start) => {
            let end = (start + 1..records.len()).find(|&i| {
                is_delete(&records[i].fact) || matches!(records[i].fact, Fact::ImageChanged { .. })
            });
            out.push(Window {
                action: Action::Create,
                start,
                end: end.unwrap_or(records.len()),
                cut: end.is_some(),
                refused: false,
            });
        }
        None => {
            if let Some(start) = records
                .iter()
                .position(|r| matches!(r.fact, Fact::CreateRejected { .. }))
            {
                out.push(Window {
                    action: Action::Create,
                    start,
                    end: records.len(),
                    cut: false,
                    refused: true,
                });
            }
        }
    }
    let mut i = 0;
    while i < records.len() {
        if matches!(records[i].fact, Fact::ImageChanged { .. }) {
            let id = &records[i].audit_id;
            let end = (i + 1..records.len()).find(|&j| {
                is_delete(&records[j].fact)
                    || (matches!(records[j].fact, Fact::ImageChanged { .. })
                        && records[j].audit_id != *id)
            });
            out.push(Window {
                action: Action::Upgrade,
                start: i,
                end: end.unwrap_or(records.len()),
                cut: end.is_some(),
                refused: false,
            });
            match end {
                Some(e) => i = e,
                None => break,
            }
        } else {
            i += 1;
        }
    }
    if let Some(start) = records
        .iter()
        .position(|r| is_delete(&r.fact) || matches!(r.fact, Fact::EvictionRefused { .. }))
    {
        out.push(Window {
            action: Action::Delete,
            start,
            end: records.len(),
            cut: false,
            refused: false,
        });
    }
    out
}

/// What one rule matched in a window.
#[derive(Debug, Clone, Default)]
struct RuleHits {
    positions: Vec<usize>,
    occurrences: u32,
    detail: Option<String>,
}

/// A candidate result: a rule and what it saw.
#[derive(Clone)]
struct Candidate<'r> {
    rule: usize,
    def: &'r Rule,
    detail: Option<String>,
    occurrences: u32,
    evidence: Vec<Evidence>,
    /// For `stuck`/`slow`: the span's time and the budget, and the span's path.
    span_time: Option<(i64, i64)>,
    span_path: Option<String>,
}

fn container_of(f: &Fact) -> Option<&str> {
    match f {
        Fact::Event { container, .. } => container.as_deref(),
        Fact::ContainerWaiting { container, .. }
        | Fact::ContainerRunning { container, .. }
        | Fact::ContainerTerminated { container, .. }
        | Fact::ContainerReady { container, .. }
        | Fact::ContainerRestarted { container, .. } => Some(container),
        _ => None,
    }
}

fn event_count(f: &Fact) -> u32 {
    match f {
        Fact::Event { count, .. } => (*count).max(1) as u32,
        _ => 1,
    }
}

#[allow(clippy::too_many_arguments)]
fn judge(
    set: &RuleSet,
    index: &Index,
    facts: &Facts<'_>,
    w: Window,
    trace: Option<&Trace>,
    now: i64,
    has_events: bool,
) -> Vec<ActionResult> {
    let records = facts.records;
    let none = Vec::new();
    let mut hits: HashMap<usize, RuleHits> = HashMap::new();
    let mut markers: Vec<Vec<usize>> = vec![Vec::new(); set.stages.len()];
    for (i, record) in records.iter().enumerate().take(w.end).skip(w.start) {
        let fact = &record.fact;
        // One fact supports one rule: the heaviest `weight`, else the first in
        // evaluation order (stage, then the order rules are written).
        let mut claim: Option<(usize, Hit)> = None;
        for probe in index.probes(fact) {
            match probe {
                Probe::Marker(s, m) => {
                    if markers[s].last() != Some(&i)
                        && set.stages[s].done[m]
                            .hit_fact(fact, || facts.json(i), &none)
                            .is_some()
                    {
                        markers[s].push(i);
                    }
                }
                Probe::Rule(r, m) => {
                    let Detect::When { matchers, .. } = &set.rules[r].detect else {
                        continue;
                    };
                    let Some(hit) = matchers[m].hit_fact(fact, || facts.json(i), &none) else {
                        continue;
                    };
                    let better = match &claim {
                        None => true,
                        Some((c, h)) => match (hit.weight, h.weight) {
                            (Some(a), Some(b)) if a != b => a > b,
                            (Some(_), None) => true,
                            (None, Some(_)) => false,
                            _ => order(set, r) < order(set, *c),
                        },
                    };
                    if better {
                        claim = Some((r, hit));
                    }
                }
            }
        }
        if let Some((r, hit)) = claim {
            let h = hits.entry(r).or_default();
            h.positions.push(i);
            h.occurrences = (h.occurrences + 1).max(event_count(fact));
            if h.detail.is_none() {
                h.detail = hit.detail;
            }
        }
    }

    let completed_at = completion(w, records);
    let end_ts = match (completed_at, w.cut) {
        (Some(i), _) => records[i].ts,
        (None, true) => records[w.end].ts,
        (None, false) => now.max(records[w.start].ts),
    };
    let phase = match (completed_at, w.cut) {
        (Some(_), _) => Phase::Finished,
        (None, true) => Phase::Ended,
        (None, false) => Phase::InFlight,
    };

    // Hits whose stage a later audit event shows done are recovered, not the result.
    let mut standing: Vec<Candidate> = Vec::new();
    let mut recovered = Vec::new();
    let mut rules: Vec<usize> = hits.keys().copied().collect();
    rules.sort_by_key(|r| order(set, *r));
    for r in rules {
        let h = &hits[&r];
        let def = &set.rules[r];
        let Detect::When { min_count, .. } = def.detect else {
            continue;
        };
        if h.occurrences < min_count {
            continue;
        }
        let last = *h.positions.last().unwrap_or(&w.start);
        let done_after = def.stage.is_some_and(|s| {
            markers[s].iter().any(|&m| {
                m > last && later_event(records, m, last) && same_container(records, m, last)
            })
        });
        let evidence = cite(facts, &h.positions);
        if done_after && !def.even_if_completed {
            recovered.push(Finding {
                code: def.code.clone(),
                detail: h.detail.clone(),
                stage: stage_name(set, def),
                occurrences: h.occurrences,
                evidence,
            });
        } else {
            standing.push(Candidate {
                rule: r,
                def,
                detail: h.detail.clone(),
                occurrences: h.occurrences,
                evidence,
                span_time: None,
                span_path: None,
            });
        }
    }
    if let Some(trace) = trace {
        standing.extend(span_rules(set, facts, trace, w, true));
    }
    standing.sort_by_key(|c| order(set, c.rule));

    let mut notes = Vec::new();
    if !has_events && !w.refused {
        notes.push("no Kubernetes Events were recorded for this pod: the audit policy probably leaves out `events`; only status changes were seen".to_string());
    }
    let age = end_ts - records[w.start].ts;
    // The pod last made progress when it entered its latest stage (the first done marker
    // of each stage; repeats, like a failing kubelet's Events, are not progress).
    let progress_ts = markers
        .iter()
        .filter_map(|m| m.first())
        .map(|&i| records[i].ts)
        .max()
        .unwrap_or(records[w.start].ts);
    let stage_now = current_stage(set, &markers);
    let open_span = trace.and_then(|t| deepest_open(t)).map(|s| s.name.clone());

    let ctx = Context {
        set,
        facts,
        w,
        trace,
        has_events,
        completed_at,
        end_ts,
        phase,
        age,
        progress_ts,
        stage_now,
        open_span,
        now,
    };
    // A refused create is one result per cause, most recent first: the owner's attempts
    // over time may meet a quota, then a webhook.
    if w.refused && !standing.is_empty() {
        let last = |c: &Candidate| c.evidence.last().map_or(0, |e| e.ts);
        standing.sort_by_key(|c| std::cmp::Reverse(last(c)));
        let recovered = std::mem::take(&mut recovered);
        return standing
            .into_iter()
            .map(|c| {
                let attempts = c.occurrences;
                let mut r = ctx.result(Some(c), Kind::Fault, recovered.clone(), notes.clone());
                r.attempts = Some(attempts);
                r
            })
            .collect();
    }
    // Without Events, an unfinished stage that is merely slow has no proven cause: the
    // result says the signal is missing (NoEvent) rather than guess.
    let may_guess = has_events || phase == Phase::Finished;
    let (candidate, kind) = if let Some(c) = standing.into_iter().next() {
        (Some(c), Kind::Fault)
    } else if let Some(c) = trace
        .filter(|_| may_guess)
        .and_then(|t| pick_slow(span_rules(set, facts, t, w, false)))
    {
        (Some(c), Kind::Slow)
    } else {
        (None, Kind::Success)
    };
    vec![ctx.result(candidate, kind, recovered, notes)]
}

/// What a result is built from, beside the chosen rule.
struct Context<'a, 'f> {
    set: &'a RuleSet,
    facts: &'a Facts<'f>,
    w: Window,
    trace: Option<&'a Trace>,
    has_events: bool,
    completed_at: Option<usize>,
    end_ts: i64,
    phase: Phase,
    age: i64,
    progress_ts: i64,
    stage_now: Option<usize>,
    open_span: Option<String>,
    now: i64,
}

impl Context<'_, '_> {
    fn result(
        &self,
        candidate: Option<Candidate<'_>>,
        kind: Kind,
        recovered: Vec<Finding>,
        notes: Vec<String>,
    ) -> ActionResult {
        let Context {
            set,
            facts,
            w,
            trace,
            has_events,
            completed_at,
            end_ts,
            phase,
            age,
            progress_ts,
            stage_now,
            ..
        } = *self;
        let now = self.now;
        let records = facts.records;
        let (rule, kind) = match (candidate, phase) {
            (Some(c), _) => (Chosen::Rule(c), kind),
            (None, Phase::Finished) => (Chosen::Outcome(Outcome::Success), Kind::Success),
            (None, _) if !has_events && !w.refused => {
                (Chosen::Outcome(Outcome::NoEvent), Kind::Unknown)
            }
            (None, Phase::Ended) => (Chosen::Outcome(Outcome::Aborted), Kind::Aborted),
            (None, _) if age > set.deadline_us => {
                (Chosen::Outcome(Outcome::Timeout), Kind::Unknown)
            }
            (None, _) => (Chosen::Outcome(Outcome::InProgress), Kind::Pending),
        };
        let stage_label = self
            .open_span
            .clone()
            .unwrap_or_else(|| stage_now.map_or("-".into(), |s| set.stages[s].name.clone()));
        let mut vars = Vars {
            detail: None,
            count: 0,
            duration: human(age),
            budget: String::new(),
            age: human(age),
            stage: stage_label,
            gap: String::new(),
        };
        let (def, detail, occurrences, evidence, stage) = match rule {
            Chosen::Rule(c) => {
                if let Some((t, budget)) = c.span_time {
                    vars.duration = human(t);
                    vars.age = human(t);
                    vars.budget = human(budget);
                }
                vars.detail = c.detail.clone();
                vars.count = c.occurrences;
                let stage = Some(stage_name(set, c.def));
                (c.def, c.detail, c.occurrences, c.evidence, stage)
            }
            Chosen::Outcome(o) => {
                let def = set.outcome(o);
                if o == Outcome::Timeout {
                    vars.gap = longest_gap(facts, w, end_ts);
                }
                let evidence = match o {
                    Outcome::Success => completed_at.map(|i| vec![facts.evidence(i)]),
                    Outcome::Aborted => Some(vec![facts.evidence(w.end)]),
                    _ => None,
                }
                .unwrap_or_else(|| vec![facts.evidence(w.start)]);
                let stage = match o {
                    Outcome::Success => None,
                    _ => stage_now.map(|s| set.stages[s].name.clone()),
                };
                (def, None, 0, evidence, stage)
            }
        };
        let user_time = trace.and_then(|t| dominant_user_span(t, age));
        ActionResult {
            action: w.action,
            code: def.code.clone(),
            detail,
            class: def.class,
            stage,
            kind,
            phase,
            summary: vars.fill(&def.summary),
            remedy: def.remedy.clone(),
            start: records[w.start].ts,
            end: (phase != Phase::InFlight).then_some(end_ts),
            duration_us: age,
            stuck_for_us: (phase == Phase::InFlight && kind != Kind::Success)
                .then_some(now - progress_ts),
            occurrences,
            evidence,
            user_time,
            recovered,
            notes,
            attempts: None,
            lunettes: def.lunettes.clone(),
        }
    }
}

enum Chosen<'r> {
    Rule(Candidate<'r>),
    Outcome(Outcome),
}

/// Evaluation order: stage first (dependency order), then the order rules are written.
fn order(set: &RuleSet, rule: usize) -> (usize, usize) {
    (set.rules[rule].stage.unwrap_or(usize::MAX), rule)
}

fn stage_name(set: &RuleSet, rule: &Rule) -> String {
    rule.stage
        .map_or_else(String::new, |s| set.stages[s].name.clone())
}

fn later_event(records: &[FactRecord], marker: usize, hit: usize) -> bool {
    records[marker].audit_id != records[hit].audit_id
}

/// A marker for one container does not finish another container's stage.
fn same_container(records: &[FactRecord], marker: usize, hit: usize) -> bool {
    match (
        container_of(&records[marker].fact),
        container_of(&records[hit].fact),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The fact that finished the action: Ready (the latest Ready condition is True) or
/// Succeeded for a create; Ready again for an upgrade; the object gone for a delete.
fn completion(w: Window, records: &[FactRecord]) -> Option<usize> {
    let facts = (w.start..w.end).map(|i| (i, &records[i].fact));
    match w.action {
        Action::Delete => facts
            .filter(|(_, f)| matches!(f, Fact::Gone { .. }))
            .map(|(i, _)| i)
            .next(),
        Action::Create | Action::Upgrade => {
            let mut ready: Option<(bool, usize)> = None;
            for (i, f) in facts {
                match f {
                    Fact::Phase { phase, .. }
                        if phase == "Succeeded" && w.action == Action::Create =>
                    {
                        return Some(i)
                    }
                    Fact::Condition {
                        condition, status, ..
                    } if condition == "Ready" => {
                        let now_ready = status == "True";
                        // The first True of the run of Trues that lasted.
                        if !matches!(ready, Some((true, _))) || !now_ready {
                            ready = Some((now_ready, i));
                        }
                    }
                    _ => {}
                }
            }
            ready.filter(|(r, _)| *r).map(|(_, i)| i)
        }
    }
}

/// The first stage without any done marker: where the pod is.
fn current_stage(set: &RuleSet, markers: &[Vec<usize>]) -> Option<usize> {
    (0..set.stages.len())
        .find(|&s| markers[s].is_empty())
        .or(set.stages.len().checked_sub(1))
}

fn deepest_open(t: &Trace) -> Option<&Span> {
    t.spans
        .iter()
        .filter(|s| s.open && s.depth > 0)
        .max_by_key(|s| (s.depth, std::cmp::Reverse(s.start)))
}

/// `stuck` rules (span open past its limit) when `stuck`, else `slow` rules (span over
/// its budget), as candidates.
fn span_rules<'r>(
    set: &'r RuleSet,
    facts: &Facts<'_>,
    trace: &Trace,
    w: Window,
    stuck: bool,
) -> Vec<Candidate<'r>> {
    let mut out = Vec::new();
    for (r, def) in set.rules.iter().enumerate() {
        let (span, limit, open_only) = match (&def.detect, stuck) {
            (Detect::Stuck { span, after_us }, true) => (span, *after_us, true),
            (Detect::Slow { span, budget }, false) => {
                (span, budget.us(grace_seconds(facts, w)), false)
            }
            _ => continue,
        };
        // A grace period is judged on a kill that finished: an open one is not yet known.
        let closed_only = matches!(
            def.detect,
            Detect::Slow {
                budget: Budget::Grace(_),
                ..
            }
        );
        for s in trace.spans.iter().filter(|s| s.name == *span) {
            if (open_only && !s.open) || (closed_only && s.open) || s.duration_us <= limit {
                continue;
            }
            let mut evidence = Vec::new();
            for id in std::iter::once(&s.start_audit_id).chain(s.end_audit_id.iter()) {
                if let Some(i) = facts.position_of(id, w.start) {
                    evidence.push(facts.evidence(i));
                }
            }
            out.push(Candidate {
                rule: r,
                def,
                detail: s.instance.clone(),
                occurrences: 1,
                evidence,
                span_time: Some((s.duration_us, limit)),
                span_path: Some(s.path.clone()),
            });
        }
    }
    out
}

/// The pod's grace period: the delete's, else the spec's, else Kubernetes' default 30 s.
fn grace_seconds(facts: &Facts<'_>, w: Window) -> i64 {
    let records = facts.records;
    let requested = records[w.start..].iter().find_map(|r| match &r.fact {
        Fact::DeletionRequested { grace_seconds, .. } => *grace_seconds,
        _ => None,
    });
    let spec = records.iter().find_map(|r| match &r.fact {
        Fact::PodCreated(c) => c.termination_grace_seconds,
        _ => None,
    });
    requested.or(spec).unwrap_or(30)
}

/// The slow stage that names the result: the platform one most over its budget, else
/// the one most over its budget; a parent whose child is also over is explained by it.
fn pick_slow(candidates: Vec<Candidate<'_>>) -> Option<Candidate<'_>> {
    let excess = |c: &Candidate| c.span_time.map_or(0, |(t, b)| t - b);
    let paths: Vec<(String, Option<String>)> = candidates
        .iter()
        .map(|c| (c.span_path.clone().unwrap_or_default(), c.detail.clone()))
        .collect();
    let explained_by_child = |c: &Candidate| {
        let path = c.span_path.clone().unwrap_or_default();
        paths.iter().any(|(p, detail)| {
            p.starts_with(&format!("{path}/")) && (c.detail.is_none() || *detail == c.detail)
        })
    };
    let mut best: Option<Candidate> = None;
    for c in candidates
        .iter()
        .filter(|c| !explained_by_child(c))
        .cloned()
    {
        let better = match &best {
            None => true,
            Some(b) => {
                let (cp, bp) = (
                    c.def.class == Class::Platform,
                    b.def.class == Class::Platform,
                );
                (cp, excess(&c)) > (bp, excess(b))
            }
        };
        if better {
            best = Some(c);
        }
    }
    best
}

fn dominant_user_span(t: &Trace, total: i64) -> Option<UserTime> {
    let s = t
        .spans
        .iter()
        .filter(|s| s.owner == Owner::User && s.duration_us > 0)
        .max_by_key(|s| (s.duration_us, std::cmp::Reverse(s.start)))?;
    Some(UserTime {
        span: s.name.clone(),
        instance: s.instance.clone(),
        duration_us: s.duration_us,
        share: if total > 0 {
            (s.duration_us as f64 / total as f64 * 1000.0).round() / 1000.0
        } else {
            0.0
        },
    })
}

/// The first occurrences and the last, at most four.
fn cite(facts: &Facts<'_>, positions: &[usize]) -> Vec<Evidence> {
    let mut picked: Vec<usize> = positions.iter().take(3).copied().collect();
    if let Some(&last) = positions.last() {
        if !picked.contains(&last) {
            picked.push(last);
        }
    }
    picked.into_iter().map(|i| facts.evidence(i)).collect()
}

fn longest_gap(facts: &Facts<'_>, w: Window, end_ts: i64) -> String {
    let r = facts.records;
    let mut best = (0i64, w.start, None);
    for i in w.start + 1..w.end {
        let gap = r[i].ts - r[i - 1].ts;
        if gap > best.0 {
            best = (gap, i - 1, Some(i));
        }
    }
    let last = w.end - 1;
    if end_ts - r[last].ts > best.0 {
        best = (end_ts - r[last].ts, last, None);
    }
    let (gap, a, b) = best;
    let to = b.map_or_else(
        || "now".to_string(),
        |b| format!("[{}]", r[b].fact.summary()),
    );
    format!("{} from [{}] to {to}", human(gap), r[a].fact.summary())
}

struct Vars {
    detail: Option<String>,
    count: u32,
    duration: String,
    budget: String,
    age: String,
    stage: String,
    gap: String,
}

impl Vars {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{detail}", self.detail.as_deref().unwrap_or("-"))
            .replace("{count}", &self.count.to_string())
            .replace("{duration}", &self.duration)
            .replace("{budget}", &self.budget)
            .replace("{age}", &self.age)
            .replace("{stage}", &self.stage)
            .replace("{gap}", &self.gap)
    }
}
