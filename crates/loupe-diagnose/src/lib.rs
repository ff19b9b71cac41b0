//! `loupe-diagnose`: why a pod's create, delete or upgrade failed or was slow, as a
//! result code with its evidence and a remedy.
//!
//! Rules are data: one YAML file per lifecycle (`src/rules/`), each rule a code, a stage,
//! a fault class, a detection (facts that prove it, a span stuck open, or a span over its
//! budget), a summary and a remedy; see `docs/diagnosis.md`. The engine ([`diagnose`]) is
//! pure: a pod's timeline and the audit clock in, results out. [`aggregate`] turns
//! results into counts per window and dimension, top nodes and change points.

pub mod aggregate;
pub mod engine;
pub mod format;
pub mod rules;

pub use engine::{
    diagnose, diagnose_action, diagnose_traces, ActionResult, Evidence, Finding, Kind, Phase,
    UserTime,
};
pub use rules::{Class, Detect, Outcome, Rule, RuleSet};

use loupe_trace::{Action, ConfigError, Pack};
use serde::Serialize;

/// The rule files shipped for upstream Kubernetes (1.31–1.34).
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("create.yaml", include_str!("rules/create.yaml")),
    ("delete.yaml", include_str!("rules/delete.yaml")),
    ("upgrade.yaml", include_str!("rules/upgrade.yaml")),
];

/// Rule sets (one per lifecycle) with the span packs their budgets refer to.
#[derive(Debug, Clone)]
pub struct RuleBook {
    pub packs: Vec<Pack>,
    pub sets: Vec<RuleSet>,
    indexes: Vec<engine::Index>,
}

/// One code of the table, as `loupe codes --list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CodeInfo {
    pub code: String,
    pub lifecycle: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub class: Class,
    /// `when`, `stuck`, `slow` or `outcome`.
    pub detection: &'static str,
    pub remedy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lunettes: Option<String>,
}

impl RuleBook {
    /// Checks rule files against the packs; a later file for a lifecycle replaces an
    /// earlier one (a user's own rules over the defaults).
    pub fn load(packs: Vec<Pack>, files: &[(String, String)]) -> Result<RuleBook, ConfigError> {
        let mut sets: Vec<RuleSet> = Vec::new();
        for (file, text) in files {
            let set = rules::load(file, text, &packs)?;
            sets.retain(|s| s.lifecycle != set.lifecycle);
            sets.push(set);
        }
        sets.sort_by_key(|s| s.lifecycle);
        let indexes = sets.iter().map(engine::Index::build).collect();
        Ok(RuleBook {
            packs,
            sets,
            indexes,
        })
    }

    /// The shipped rules over the shipped packs.
    pub fn defaults() -> RuleBook {
        Self::with_packs(Pack::defaults())
            .unwrap_or_else(|e| panic!("the default rules are broken: {e}"))
    }

    /// The shipped rules over other packs (a user's span config).
    pub fn with_packs(packs: Vec<Pack>) -> Result<RuleBook, ConfigError> {
        let files: Vec<(String, String)> = DEFAULT_RULES
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        Self::load(packs, &files)
    }

    pub fn set(&self, action: Action) -> Option<&RuleSet> {
        self.sets.iter().find(|s| s.lifecycle == action)
    }

    pub(crate) fn set_with_index(&self, action: Action) -> Option<(&RuleSet, &engine::Index)> {
        let i = self.sets.iter().position(|s| s.lifecycle == action)?;
        Some((&self.sets[i], &self.indexes[i]))
    }

    /// Every code, once per lifecycle (a code with several rules shows its first).
    pub fn codes(&self) -> Vec<CodeInfo> {
        let mut out: Vec<CodeInfo> = Vec::new();
        for set in &self.sets {
            for r in &set.rules {
                if out
                    .iter()
                    .any(|c| c.code == r.code && c.lifecycle == set.lifecycle)
                {
                    continue;
                }
                out.push(CodeInfo {
                    code: r.code.clone(),
                    lifecycle: set.lifecycle,
                    stage: r.stage.map(|s| set.stages[s].name.clone()),
                    class: r.class,
                    detection: match r.detect {
                        Detect::When { .. } => "when",
                        Detect::Stuck { .. } => "stuck",
                        Detect::Slow { .. } => "slow",
                        Detect::Outcome(_) => "outcome",
                    },
                    remedy: r.remedy.clone(),
                    lunettes: r.lunettes.clone(),
                });
            }
        }
        out
    }
}
