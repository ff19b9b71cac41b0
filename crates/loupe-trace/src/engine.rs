//! Evaluates packs over a pod's timeline: traces of spans, closed or still open.

use std::collections::HashMap;

use loupe_facts::{Fact, FactRecord};
use serde::Serialize;
use serde_json::Value;

use crate::config::{Action, Owner, Per, SpanDef};
use crate::matcher::{Bindings, Matcher};
use crate::Pack;

/// One stage of a delivery.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Span {
    pub name: String,
    /// `delivery/pod_setup/…`: where it sits in the tree.
    pub path: String,
    pub depth: usize,
    /// The container, image, volume or finalizer a fanned-out span is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub owner: Owner,
    /// µs since the epoch (audit time).
    pub start: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    /// End − start; for an open span, the audit clock − start (its age).
    pub duration_us: i64,
    pub open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub start_audit_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_audit_id: Option<String>,
}

/// One action (create, delete, upgrade) of one pod, as spans.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trace {
    pub action: Action,
    pub start: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    /// Ended unfinished, by the root's `abort` (e.g. deleted before Ready): when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborted: Option<i64>,
    pub spans: Vec<Span>,
}

impl Trace {
    pub fn root(&self) -> &Span {
        &self.spans[0]
    }
    pub fn failed(&self) -> bool {
        self.spans.iter().any(|s| s.error.is_some())
    }
}

struct Facts<'a> {
    records: &'a [FactRecord],
    /// Each fact as JSON, made when a matcher of its type first looks at it.
    json: Vec<std::cell::OnceCell<Value>>,
    /// A trace's span instances, listed once per (kind, trace start) for all its spans.
    instances: std::cell::RefCell<InstanceMemo>,
    /// Positions of the facts of each type, and of the Events of each reason: a matcher
    /// visits only the facts it could match, so a pod with thousands of facts (a crash
    /// loop of hours) costs its matches, not facts × spans.
    by_type: HashMap<&'static str, Vec<usize>>,
    events_by_reason: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Facts<'a> {
    fn new(records: &'a [FactRecord]) -> Facts<'a> {
        let mut by_type: HashMap<&'static str, Vec<usize>> = HashMap::new();
        let mut events_by_reason: HashMap<&'a str, Vec<usize>> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            by_type.entry(r.fact.type_name()).or_default().push(i);
            if let Fact::Event { reason, .. } = &r.fact {
                events_by_reason.entry(reason.as_str()).or_default().push(i);
            }
        }
        Facts {
            records,
            json: vec![std::cell::OnceCell::new(); records.len()],
            instances: Default::default(),
            by_type,
            events_by_reason,
        }
    }

    /// The facts `m` could match, in timeline order.
    fn candidates(&self, m: &Matcher) -> &[usize] {
        let list = match m.exact("reason") {
            Some(reason) if m.fact_type() == "event" => self.events_by_reason.get(reason),
            _ => self.by_type.get(m.fact_type()),
        };
        list.map_or(&[], Vec::as_slice)
    }

    fn json(&self, i: usize) -> &Value {
        self.json[i]
            .get_or_init(|| serde_json::to_value(&self.records[i].fact).unwrap_or(Value::Null))
    }
}

type InstanceMemo = std::collections::HashMap<(Per, usize), std::rc::Rc<Vec<Instance<'static>>>>;

#[derive(Clone)]
struct Instance<'f> {
    key: Option<String>,
    bindings: Bindings,
    attrs: std::borrow::Cow<'f, Value>,
}

/// The pod's containers, volumes and finalizers as of `until` (an upgrade's new image).
fn instances(per: Per, facts: &Facts<'_>, until: usize) -> Vec<Instance<'static>> {
    let mut out: Vec<Instance<'static>> = Vec::new();
    let records = &facts.records[..=until.min(facts.records.len().saturating_sub(1))];
    match per {
        Per::Pod => out.push(Instance {
            key: None,
            bindings: Vec::new(),
            attrs: facts
                .records
                .iter()
                .position(|r| matches!(r.fact, Fact::PodCreated(_)))
                .map_or(std::borrow::Cow::Owned(Value::Null), |i| {
                    std::borrow::Cow::Owned(facts.json(i).clone())
                }),
        }),
        Per::Container | Per::MainContainer | Per::InitContainer => {
            let Some(containers) = records.iter().find_map(|r| match &r.fact {
                Fact::PodCreated(c) => Some(c.containers.clone()),
                _ => None,
            }) else {
                return out;
            };
            for c in containers {
                if (per == Per::MainContainer && c.init) || (per == Per::InitContainer && !c.init) {
                    continue;
                }
                let mut image = c.image.clone();
                for r in records {
                    if let Fact::ImageChanged { container, to, .. } = &r.fact {
                        if *container == c.name {
                            image = to.clone();
                        }
                    }
                }
                out.push(Instance {
                    key: Some(c.name.clone()),
                    bindings: vec![("container", c.name.clone()), ("image", image)],
                    attrs: std::borrow::Cow::Owned(serde_json::to_value(&c).unwrap_or(Value::Null)),
                });
            }
        }
        Per::Volume => {
            if let Some(volumes) = records.iter().find_map(|r| match &r.fact {
                Fact::PodCreated(c) => Some(c.volumes.clone()),
                _ => None,
            }) {
                for v in volumes {
                    out.push(Instance {
                        key: Some(v.name.clone()),
                        bindings: vec![("volume", v.name.clone())],
                        attrs: std::borrow::Cow::Owned(
                            serde_json::to_value(&v).unwrap_or(Value::Null),
                        ),
                    });
                }
            }
        }
        Per::Finalizer => {
            let mut names: Vec<String> = Vec::new();
            for r in facts.records {
                let found: Vec<String> = match &r.fact {
                    Fact::FinalizerAdded { finalizer } => vec![finalizer.clone()],
                    Fact::DeletionRequested { finalizers, .. } => finalizers.clone(),
                    _ => Vec::new(),
                };
                for f in found {
                    if !names.contains(&f) {
                        names.push(f);
                    }
                }
            }
            for f in names {
                out.push(Instance {
                    key: Some(f.clone()),
                    bindings: vec![("finalizer", f.clone())],
                    attrs: std::borrow::Cow::Owned(serde_json::json!({"name": f})),
                });
            }
        }
    }
    out
}

/// `where:` on the instance's attributes (the container or volume spec; the
/// `pod_created` fact for per-pod spans): exact values or `/regex/` on their JSON.
fn matches_where(def: &SpanDef, attrs: &Value) -> bool {
    def.where_.iter().all(|(k, want)| {
        let Some(v) = attrs.get(k) else { return false };
        match want {
            serde_norway::Value::String(s)
                if s.len() >= 2 && s.starts_with('/') && s.ends_with('/') =>
            {
                let text = match v {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                where_regex(&s[1..s.len() - 1]).is_some_and(|re| re.is_match(&text))
            }
            other => serde_json::to_value(other).is_ok_and(|w| *v == w),
        }
    })
}

thread_local! {
    /// `where:` regexes, compiled once (the packs hold a handful).
    static WHERE_REGEXES: std::cell::RefCell<std::collections::HashMap<String, Option<regex::Regex>>> =
        std::cell::RefCell::default();
}

fn where_regex(source: &str) -> Option<regex::Regex> {
    WHERE_REGEXES.with(|cache| {
        cache
            .borrow_mut()
            .entry(source.to_string())
            .or_insert_with(|| regex::Regex::new(source).ok())
            .clone()
    })
}

fn first(
    matchers: &[Matcher],
    bindings: &Bindings,
    facts: &Facts<'_>,
    from: usize,
    to: usize,
) -> Option<(usize, crate::matcher::Hit)> {
    first_in(matchers, bindings, facts, from, to, (i64::MIN, i64::MAX))
}

/// The first fact in `[from, to)` with its time in `ts` that a matcher matches (the
/// earlier matcher of the list when two match the same fact).
fn first_in(
    matchers: &[Matcher],
    bindings: &Bindings,
    facts: &Facts<'_>,
    from: usize,
    to: usize,
    ts: (i64, i64),
) -> Option<(usize, crate::matcher::Hit)> {
    let mut best: Option<(usize, crate::matcher::Hit)> = None;
    for m in matchers {
        let positions = facts.candidates(m);
        let start = positions.partition_point(|&p| p < from);
        for &i in &positions[start..] {
            if i >= to || best.as_ref().is_some_and(|(b, _)| i >= *b) {
                break;
            }
            let at = facts.records[i].ts;
            if at < ts.0 {
                continue;
            }
            if at > ts.1 {
                break;
            }
            if let Some(h) = m.hit_fact(&facts.records[i].fact, || facts.json(i), bindings) {
                best = Some((i, h));
                break;
            }
        }
    }
    best
}

/// Every trace of `pack` in a pod's timeline; `now` (the audit clock) ages open spans.
pub fn evaluate(pack: &Pack, records: &[FactRecord], now: i64) -> Vec<Trace> {
    evaluate_all(std::slice::from_ref(pack), records, now)
}

/// The traces of every pack, the timeline read once.
pub fn evaluate_all(packs: &[Pack], records: &[FactRecord], now: i64) -> Vec<Trace> {
    let facts = Facts::new(records);
    packs
        .iter()
        .flat_map(|p| evaluate_prepared(p, &facts, now))
        .collect()
}

fn evaluate_prepared(pack: &Pack, facts: &Facts<'_>, now: i64) -> Vec<Trace> {
    let records = facts.records;
    let root = &pack.def.root;
    let compiled = pack.compiled(&root.name);
    let none = Vec::new();
    let (starts, ends, aborts) = (&compiled.start, &compiled.end, &compiled.abort);
    let mut traces = Vec::new();
    let mut from = 0;
    while let Some((s, _)) = first(starts, &none, facts, from, records.len()) {
        let mut end = first(ends, &none, facts, s + 1, records.len()).map(|(i, _)| i);
        let abort =
            first(aborts, &none, facts, s + 1, end.unwrap_or(records.len())).map(|(i, _)| i);
        if abort.is_some() {
            end = None;
        }
        // The next trace of this action begins after this one ends (upgrades repeat).
        let next_start = first(starts, &none, facts, s + 1, records.len()).map(|(i, _)| i);
        // A trace ends with the whole audit event of its end fact: one status patch can
        // say ContainersReady after Ready.
        let window_end = match (end, next_start) {
            (Some(e), _) => (e..records.len())
                .take_while(|&i| records[i].audit_id == records[e].audit_id)
                .last()
                .map_or(e + 1, |i| i + 1),
            (None, _) if abort.is_some() => abort.map_or(records.len(), |a| a + 1),
            (None, Some(n)) => n,
            (None, None) => records.len(),
        };
        // Spans still open when the trace ended are aged to its end, not to the clock.
        let clock = end.or(abort).map_or(now, |e| records[e].ts);
        let mut spans = Vec::new();
        eval_span(
            pack, root, "", 0, facts, s, window_end, clock, true, None, &mut spans,
        );
        if !spans.is_empty() {
            traces.push(Trace {
                action: pack.def.action,
                start: spans[0].start,
                end: spans[0].end,
                aborted: abort.map(|a| records[a].ts),
                spans,
            });
        }
        from = match (end.or(abort), next_start) {
            (Some(e), _) => e + 1,
            (None, Some(n)) => n,
            (None, None) => records.len(),
        };
    }
    traces
}

#[allow(clippy::too_many_arguments)]
fn eval_span(
    pack: &Pack,
    def: &SpanDef,
    parent: &str,
    depth: usize,
    facts: &Facts<'_>,
    from: usize,
    to: usize,
    now: i64,
    is_root: bool,
    // A per-pod child of a fanned-out span: the parent's kind and instance.
    inherited: Option<(Per, &str)>,
    out: &mut Vec<Span>,
) {
    let path = if parent.is_empty() {
        def.name.clone()
    } else {
        format!("{parent}/{}", def.name)
    };
    let per = match inherited {
        _ if is_root => Per::Pod,
        Some((per, _)) if def.per == Per::Pod => per,
        _ => def.per,
    };
    let only = inherited
        .filter(|_| def.per == Per::Pod)
        .map(|(_, key)| key);
    let listed = facts.instances.borrow().get(&(per, from)).cloned();
    let listed = listed.unwrap_or_else(|| {
        let made = std::rc::Rc::new(instances(per, facts, from));
        facts
            .instances
            .borrow_mut()
            .insert((per, from), made.clone());
        made
    });
    for inst in listed.iter() {
        if only.is_some_and(|k| inst.key.as_deref() != Some(k)) || !matches_where(def, &inst.attrs)
        {
            continue;
        }
        let Some(span) = eval_instance(pack, def, inst, &path, depth, facts, from, to, now) else {
            continue;
        };
        out.push(span);
        let (child_from, child_to) = (from, to);
        for child in &def.children {
            // Children of a fanned-out span share its instance.
            let inherit = inst.key.as_deref().map(|k| (per, k));
            eval_span(
                pack,
                child,
                &path,
                depth + 1,
                facts,
                child_from,
                child_to,
                now,
                false,
                inherit,
                out,
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_instance(
    pack: &Pack,
    def: &SpanDef,
    inst: &Instance,
    path: &str,
    depth: usize,
    facts: &Facts<'_>,
    from: usize,
    to: usize,
    now: i64,
) -> Option<Span> {
    let records = facts.records;
    let (start, start_id, end, end_id) = if def.point.is_some() {
        let compiled = pack.compiled(&def.name);
        let points = &compiled.point;
        // A repeated point event widens the span over all its occurrences.
        let mut found: Option<(i64, i64, usize, usize)> = None;
        let mut at = from;
        while let Some((i, hit)) = first(points, &inst.bindings, facts, at, to) {
            // `duration` before the event; with `minus`, the part of it before the last
            // `minus` (a pull's wait comes before the pull).
            let ts = records[i].ts;
            let begin = ts - hit.duration_us.unwrap_or(0);
            let end = ts - hit.minus_us.unwrap_or(0);
            found = Some(match found {
                Some((b, e, bi, ei)) => (
                    b.min(begin),
                    e.max(end),
                    if begin < b { i } else { bi },
                    if end > e { i } else { ei },
                ),
                None => (begin, end, i, i),
            });
            at = i + 1;
        }
        let (b, e, bi, ei) = found?;
        (
            b,
            records[bi].audit_id.clone(),
            Some(e),
            Some(records[ei].audit_id.clone()),
        )
    } else {
        let compiled = pack.compiled(&def.name);
        let (starts, ends) = (&compiled.start, &compiled.end);
        let (s, _) = first(starts, &inst.bindings, facts, from, to)?;
        let e = first(ends, &inst.bindings, facts, s + 1, to).map(|(i, _)| i);
        (
            records[s].ts,
            records[s].audit_id.clone(),
            e.map(|i| records[i].ts),
            e.map(|i| records[i].audit_id.clone()),
        )
    };
    let errors = &pack.compiled(&def.name).error;
    let stop = end.unwrap_or(i64::MAX);
    let error = first_in(errors, &inst.bindings, facts, from, to, (start, stop))
        .map(|(i, _)| records[i].fact.summary());
    Some(Span {
        name: def.name.clone(),
        path: path.to_string(),
        depth,
        instance: inst.key.clone(),
        owner: def.owner,
        start,
        end,
        duration_us: end.unwrap_or(now.max(start)) - start,
        open: end.is_none(),
        error,
        start_audit_id: start_id,
        end_audit_id: end_id,
    })
}
