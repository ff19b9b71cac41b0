//! The rule language: what a rule file says, parsed and checked against the span packs.
//! Errors name the file, the line and the problem.

use std::collections::HashMap;

use loupe_trace::config::Matchers;
use loupe_trace::matcher::Matcher;
use loupe_trace::{Action, ConfigError, Pack};
use serde::{Deserialize, Serialize};

/// Who owns a failure or the time it cost: decides SLO accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Platform,
    User,
    /// A dependency outside the cluster (registry, storage backend, third-party webhook).
    External,
    /// Not enough resources: tracked by a capacity SLO, not the delivery SLO.
    Capacity,
    /// Neither side's fault (preemption, a user's abort).
    Excluded,
    /// A result that is not a fault (success, in progress, unknown).
    None,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Platform => "platform",
            Class::User => "user",
            Class::External => "external",
            Class::Capacity => "capacity",
            Class::Excluded => "excluded",
            Class::None => "none",
        }
    }
}

/// The results every lifecycle defines beside its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Deleted (or changed again) before it finished, with nothing wrong before that.
    Aborted,
    /// Not finished, nothing matched, and the pod has no Events at all.
    NoEvent,
    /// Past the lifecycle's deadline and nothing matched.
    Timeout,
    InProgress,
}

pub const OUTCOMES: &[Outcome] = &[
    Outcome::Success,
    Outcome::Aborted,
    Outcome::NoEvent,
    Outcome::Timeout,
    Outcome::InProgress,
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    lifecycle: Action,
    deadline: String,
    stages: Vec<StageDef>,
    rules: Vec<RuleDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageDef {
    name: String,
    done: Matchers,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    code: String,
    #[serde(default)]
    stage: Option<String>,
    class: Class,
    #[serde(default)]
    when: Option<Matchers>,
    #[serde(default)]
    min_count: Option<u32>,
    #[serde(default)]
    slow: Option<SpanLimitDef>,
    #[serde(default)]
    stuck: Option<SpanLimitDef>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default)]
    even_if_completed: bool,
    summary: String,
    remedy: String,
    #[serde(default)]
    lunettes: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpanLimitDef {
    span: String,
    over: String,
}

/// A `slow` rule's budget: fixed, or a share of the pod's own grace period (`0.9 grace`:
/// the kubelet waits that long before it kills).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    Fixed(i64),
    Grace(f64),
}

impl Budget {
    /// The budget in µs for a pod whose grace period is `grace_seconds`.
    pub fn us(self, grace_seconds: i64) -> i64 {
        match self {
            Budget::Fixed(us) => us,
            Budget::Grace(share) => (grace_seconds as f64 * share * 1e6) as i64,
        }
    }
}

/// How a rule recognises its case.
#[derive(Debug, Clone)]
pub enum Detect {
    /// Facts that prove a failure; at least `min_count` occurrences (Event counts add up).
    When {
        matchers: Vec<Matcher>,
        min_count: u32,
    },
    /// A span longer than its budget (closed, or open and already past it).
    Slow {
        span: String,
        budget: Budget,
    },
    /// A span still open after `after_us`: a failure by itself.
    Stuck {
        span: String,
        after_us: i64,
    },
    Outcome(Outcome),
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub done: Vec<Matcher>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub code: String,
    /// Index into the set's stages; outcome rules have none.
    pub stage: Option<usize>,
    pub class: Class,
    pub detect: Detect,
    /// A result even when its stage later completed (preemption, a recreate loop).
    pub even_if_completed: bool,
    pub summary: String,
    pub remedy: String,
    /// The equivalent code of alipay/container-observability-service, for migrations.
    pub lunettes: Option<String>,
}

/// One lifecycle's stages and rules, checked.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub file: String,
    pub lifecycle: Action,
    pub deadline_us: i64,
    pub stages: Vec<Stage>,
    pub rules: Vec<Rule>,
    outcomes: HashMap<Outcome, usize>,
}

impl RuleSet {
    /// The rule of an outcome; a delete's (never) aborted result falls back to in progress.
    pub fn outcome(&self, o: Outcome) -> &Rule {
        let i = self
            .outcomes
            .get(&o)
            .or_else(|| self.outcomes.get(&Outcome::InProgress))
            .copied()
            .unwrap_or(0);
        &self.rules[i]
    }
}

const PLACEHOLDERS: &[&str] = &[
    "detail", "count", "duration", "budget", "age", "stage", "gap",
];

/// Parses and checks a rule file against the packs whose spans its `slow`/`stuck` rules
/// name.
pub fn load(file: &str, text: &str, packs: &[Pack]) -> Result<RuleSet, ConfigError> {
    let def: FileDef = serde_norway::from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        line: e.location().map_or(1, |l| l.line()),
        problem: e.to_string(),
    })?;
    let fail = |needle: &str, problem: String| ConfigError::at(file, text, needle, problem);
    let deadline_us = duration_us(&def.deadline)
        .ok_or_else(|| fail("deadline:", format!("bad deadline {:?}", def.deadline)))?;
    let pack = packs.iter().find(|p| p.def.action == def.lifecycle);
    let spans = pack.map(|p| p.span_names()).unwrap_or_default();
    let mut stages = Vec::new();
    for s in &def.stages {
        if stages.iter().any(|x: &Stage| x.name == s.name) {
            return Err(fail(
                &format!("name: {}", s.name),
                format!("stage {:?} is listed twice", s.name),
            ));
        }
        let done = compile(&s.done).map_err(|e| {
            fail(
                &format!("name: {}", s.name),
                format!("stage {}: {e}", s.name),
            )
        })?;
        stages.push(Stage {
            name: s.name.clone(),
            done,
        });
    }
    let mut rules = Vec::new();
    let mut outcomes = HashMap::new();
    for r in &def.rules {
        let here = format!("code: {}", r.code);
        let bad = |problem: String| fail(&here, format!("rule {}: {problem}", r.code));
        if r.code.is_empty()
            || !r
                .code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad("a code is letters, digits and `_`".into()));
        }
        for p in placeholders(&r.summary) {
            if !PLACEHOLDERS.contains(&p.as_str()) {
                return Err(bad(format!(
                    "summary uses {{{p}}}; known: {}",
                    PLACEHOLDERS.join(", ")
                )));
            }
        }
        let kinds = [
            r.when.is_some(),
            r.slow.is_some(),
            r.stuck.is_some(),
            r.outcome.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(bad(
                "give exactly one of `when`, `slow`, `stuck` or `outcome`".into(),
            ));
        }
        let stage = match (&r.stage, r.outcome) {
            (None, Some(_)) => None,
            (Some(_), Some(_)) => return Err(bad("an outcome has no stage".into())),
            (None, None) => return Err(bad("`stage:` is missing".into())),
            (Some(name), None) => Some(
                stages
                    .iter()
                    .position(|s| &s.name == name)
                    .ok_or_else(|| bad(format!("stage {name:?} is not in `stages`")))?,
            ),
        };
        let span_limit = |l: &SpanLimitDef| -> Result<(String, i64), ConfigError> {
            if !spans
                .iter()
                .any(|s| s.rsplit('/').next() == Some(l.span.as_str()))
            {
                return Err(bad(format!(
                    "span {:?} is not in the {} pack",
                    l.span,
                    def.lifecycle.as_str()
                )));
            }
            let us = duration_us(&l.over).ok_or_else(|| bad(format!("bad time {:?}", l.over)))?;
            Ok((l.span.clone(), us))
        };
        let detect = if let Some(m) = &r.when {
            Detect::When {
                matchers: compile(m).map_err(bad)?,
                min_count: r.min_count.unwrap_or(1),
            }
        } else if let Some(l) = &r.slow {
            let budget = match l.over.trim().strip_suffix("grace") {
                Some(share) => {
                    let share = share.trim();
                    let share = if share.is_empty() {
                        Ok(1.0)
                    } else {
                        share.parse::<f64>()
                    };
                    Budget::Grace(
                        share.map_err(|_| bad(format!("bad share of grace {:?}", l.over)))?,
                    )
                }
                None => Budget::Fixed(span_limit(l)?.1),
            };
            let (span, _) = span_limit(&SpanLimitDef {
                span: l.span.clone(),
                over: "1s".into(),
            })?;
            Detect::Slow { span, budget }
        } else if let Some(l) = &r.stuck {
            let (span, after_us) = span_limit(l)?;
            Detect::Stuck { span, after_us }
        } else if let Some(o) = r.outcome {
            if outcomes.insert(o, rules.len()).is_some() {
                return Err(bad(format!("outcome {o:?} is defined twice")));
            }
            Detect::Outcome(o)
        } else {
            unreachable!("exactly one kind was checked above")
        };
        if r.min_count.is_some() && r.when.is_none() {
            return Err(bad("`min_count` goes with `when`".into()));
        }
        rules.push(Rule {
            code: r.code.clone(),
            stage,
            class: r.class,
            detect,
            even_if_completed: r.even_if_completed,
            summary: r.summary.trim().to_string(),
            remedy: r.remedy.trim().to_string(),
            lunettes: r.lunettes.clone(),
        });
    }
    for o in OUTCOMES {
        // A delete has no later action to be cut short by.
        let needed = !(def.lifecycle == Action::Delete && *o == Outcome::Aborted);
        if needed && !outcomes.contains_key(o) {
            return Err(fail(
                "rules:",
                format!(
                    "the {} rules define no `outcome: {}`",
                    def.lifecycle.as_str(),
                    serde_json::to_string(o)
                        .unwrap_or_default()
                        .trim_matches('"')
                ),
            ));
        }
    }
    Ok(RuleSet {
        file: file.to_string(),
        lifecycle: def.lifecycle,
        deadline_us,
        stages,
        rules,
        outcomes,
    })
}

fn compile(m: &Matchers) -> Result<Vec<Matcher>, String> {
    let list = m
        .list()
        .into_iter()
        .map(Matcher::compile)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(p) = list.iter().flat_map(Matcher::placeholders).next() {
        return Err(format!(
            "${p} has no value here (rules match the whole pod, not a span instance)"
        ));
    }
    Ok(list)
}

fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(rest[open + 1..open + close].to_string());
        rest = &rest[open + close + 1..];
    }
    out
}

fn duration_us(text: &str) -> Option<i64> {
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok())
}
