//! The span language: what a pack file says, parsed and checked. Errors name the file,
//! the line and the problem.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The lifecycle a pack traces.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Delete,
    Upgrade,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Delete => "delete",
            Action::Upgrade => "upgrade",
        }
    }
}

/// Whose time a span is: platform time counts against the delivery SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    Platform,
    User,
    External,
    /// Shown, never accounted.
    Display,
}

/// What a span is instantiated for: once per pod, or once per item of the pod's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    Pod,
    /// Every container, init containers included (`$container`, `$image`, `$init`).
    Container,
    /// Main containers only.
    MainContainer,
    InitContainer,
    Volume,
    Finalizer,
}

/// A matcher as written: a fact type and field patterns (`exact`, or `/regex/`).
/// Patterns may use the instance's `$container`, `$image`, `$volume`, `$finalizer`.
pub type MatcherDef = BTreeMap<String, serde_norway::Value>;

/// One or several matchers; any of them matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Matchers {
    One(MatcherDef),
    Any(Vec<MatcherDef>),
}

impl Matchers {
    pub fn list(&self) -> Vec<&MatcherDef> {
        match self {
            Matchers::One(m) => vec![m],
            Matchers::Any(v) => v.iter().collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanDef {
    pub name: String,
    #[serde(default = "display")]
    pub owner: Owner,
    #[serde(default = "pod")]
    pub per: Per,
    /// Instance attributes required (e.g. `{post_start: true}` for a per-container span).
    #[serde(default, rename = "where")]
    pub where_: BTreeMap<String, serde_norway::Value>,
    /// Start → end spans.
    #[serde(default)]
    pub start: Option<Matchers>,
    #[serde(default)]
    pub end: Option<Matchers>,
    /// A point event that states its own duration: a `(?P<duration>…)` capture (Go
    /// syntax: `1m2.5s`), optionally minus a `(?P<minus>…)` one.
    #[serde(default)]
    pub point: Option<Matchers>,
    /// Facts that mark the span as failed while it is open.
    #[serde(default)]
    pub error: Option<Matchers>,
    /// Root only: facts that end the trace unfinished (a pod deleted before Ready).
    #[serde(default)]
    pub abort: Option<Matchers>,
    #[serde(default)]
    pub children: Vec<SpanDef>,
}

fn display() -> Owner {
    Owner::Display
}
fn pod() -> Per {
    Per::Pod
}

/// A file of spans for one action; its root span bounds the others.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackDef {
    pub action: Action,
    /// Only pods whose `pod_created` fact matches are traced (e.g. skip Jobs).
    #[serde(default)]
    pub description: String,
    pub root: SpanDef,
}

/// Why a pack was refused: file, line, problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

impl ConfigError {
    pub fn at(file: &str, text: &str, needle: &str, problem: String) -> ConfigError {
        let line = text
            .lines()
            .position(|l| l.contains(needle))
            .map_or(1, |i| i + 1);
        ConfigError {
            file: file.to_string(),
            line,
            problem,
        }
    }
}

pub fn parse(file: &str, text: &str) -> Result<PackDef, ConfigError> {
    serde_norway::from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        line: e.location().map_or(1, |l| l.line()),
        problem: e.to_string(),
    })
}
