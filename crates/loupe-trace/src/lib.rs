//! `loupe-trace`: a pod's delivery as a trace. Spans are declared in YAML packs (one per
//! action: create, delete, upgrade) over the foundation's pod facts; see
//! `docs/spans.md`. Pure: evaluation takes a timeline and returns spans.

pub mod config;
pub mod engine;
pub mod matcher;
pub mod stats;

pub use config::{Action, ConfigError, Owner, PackDef, Per, SpanDef};
pub use engine::{evaluate, evaluate_all, Span, Trace};
pub use stats::{StageRow, StageStats};

use std::collections::HashMap;

use matcher::{compile_all, Matcher};

/// A checked pack, its matchers compiled once.
#[derive(Debug, Clone)]
pub struct Pack {
    pub file: String,
    pub def: PackDef,
    compiled: HashMap<String, CompiledSpan>,
}

/// A span's matchers, by role.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompiledSpan {
    pub start: Vec<Matcher>,
    pub end: Vec<Matcher>,
    pub point: Vec<Matcher>,
    pub error: Vec<Matcher>,
    pub abort: Vec<Matcher>,
}

/// The packs shipped for upstream Kubernetes (1.31–1.34).
pub const DEFAULT_PACKS: &[(&str, &str)] = &[
    ("create.yaml", include_str!("packs/create.yaml")),
    ("delete.yaml", include_str!("packs/delete.yaml")),
    ("upgrade.yaml", include_str!("packs/upgrade.yaml")),
];

impl Pack {
    /// Parses and checks a pack: every matcher compiles for its span's instances, every
    /// span has `start`+`end` or `point`, names are unique.
    pub fn load(file: &str, text: &str) -> Result<Pack, ConfigError> {
        let def = config::parse(file, text)?;
        let mut compiled = HashMap::new();
        check(&def.root, file, text, true, Per::Pod, &mut compiled)?;
        Ok(Pack {
            file: file.to_string(),
            def,
            compiled,
        })
    }

    pub(crate) fn compiled(&self, span: &str) -> &CompiledSpan {
        static EMPTY: std::sync::OnceLock<CompiledSpan> = std::sync::OnceLock::new();
        self.compiled
            .get(span)
            .unwrap_or_else(|| EMPTY.get_or_init(CompiledSpan::default))
    }

    pub fn defaults() -> Vec<Pack> {
        DEFAULT_PACKS
            .iter()
            .map(|(f, t)| {
                Pack::load(f, t).unwrap_or_else(|e| panic!("a default pack is broken: {e}"))
            })
            .collect()
    }

    /// Every span's `path` in order, for documentation and listings.
    pub fn span_names(&self) -> Vec<String> {
        fn walk(d: &SpanDef, parent: &str, out: &mut Vec<String>) {
            let p = if parent.is_empty() {
                d.name.clone()
            } else {
                format!("{parent}/{}", d.name)
            };
            out.push(p.clone());
            for c in &d.children {
                walk(c, &p, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.def.root, "", &mut out);
        out
    }
}

/// The placeholders a span's instances supply.
fn provided(per: Per) -> &'static [&'static str] {
    match per {
        Per::Pod => &[],
        Per::Container | Per::MainContainer | Per::InitContainer => &["container", "image"],
        Per::Volume => &["volume"],
        Per::Finalizer => &["finalizer"],
    }
}

/// `inherited`: a fanned-out parent's instance kind, which its per-pod children share.
fn check(
    d: &SpanDef,
    file: &str,
    text: &str,
    root: bool,
    inherited: Per,
    compiled: &mut HashMap<String, CompiledSpan>,
) -> Result<(), ConfigError> {
    let here = format!("name: {}", d.name);
    let fail = |problem: String| {
        ConfigError::at(file, text, &here, format!("span {:?}: {problem}", d.name))
    };
    if compiled.contains_key(&d.name) {
        return Err(fail("the name is used twice".into()));
    }
    match (&d.start, &d.end, &d.point) {
        (Some(_), Some(_), None) => {}
        (None, None, Some(_)) if !root => {}
        (None, None, Some(_)) => return Err(fail("the root span needs `start` and `end`".into())),
        _ => {
            return Err(fail(
                "give `start` and `end`, or `point` (an event that states its duration)".into(),
            ))
        }
    }
    if !root && d.abort.is_some() {
        return Err(fail("only the root span can have `abort`".into()));
    }
    if root && d.per != Per::Pod {
        return Err(fail("the root span is per pod".into()));
    }
    for (key, want) in &d.where_ {
        if let serde_norway::Value::String(w) = want {
            if w.len() >= 2 && w.starts_with('/') && w.ends_with('/') {
                regex::Regex::new(&w[1..w.len() - 1])
                    .map_err(|e| fail(format!("where {key}: bad regex: {e}")))?;
            }
        }
    }
    let per = if d.per == Per::Pod { inherited } else { d.per };
    let span = CompiledSpan {
        start: compile_all(&d.start).map_err(fail)?,
        end: compile_all(&d.end).map_err(fail)?,
        point: compile_all(&d.point).map_err(fail)?,
        error: compile_all(&d.error).map_err(fail)?,
        abort: compile_all(&d.abort).map_err(fail)?,
    };
    let all = span
        .start
        .iter()
        .chain(&span.end)
        .chain(&span.point)
        .chain(&span.error)
        .chain(&span.abort);
    for needed in all.flat_map(Matcher::placeholders) {
        if !provided(per).contains(&needed) {
            return Err(fail(format!(
                "${needed} has no value for this span (check `per:`)"
            )));
        }
    }
    compiled.insert(d.name.clone(), span);
    for c in &d.children {
        check(c, file, text, false, per, compiled)?;
    }
    Ok(())
}
