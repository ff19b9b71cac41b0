//! `loupe-trace`: a pod's delivery as a trace. Spans are declared in YAML packs (one per
//! action: create, delete, upgrade) over the foundation's pod facts; see
//! `docs/spans.md`. Pure: evaluation takes a timeline and returns spans.

pub mod config;
pub mod engine;
pub mod matcher;
pub mod stats;

pub use config::{Action, ConfigError, Owner, PackDef, Per, SpanDef};
pub use engine::{evaluate, Span, Trace};
pub use stats::{StageRow, StageStats};

use matcher::{compile_all, Bindings};

/// A checked pack.
#[derive(Debug, Clone)]
pub struct Pack {
    pub file: String,
    pub def: PackDef,
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
        let mut names = Vec::new();
        check(&def.root, file, text, true, Per::Pod, &mut names)?;
        Ok(Pack {
            file: file.to_string(),
            def,
        })
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

fn sample_bindings(per: Per) -> Bindings {
    let v = |s: &str| s.to_string();
    match per {
        Per::Pod => Vec::new(),
        Per::Container | Per::MainContainer | Per::InitContainer => {
            vec![("container", v("c")), ("image", v("i"))]
        }
        Per::Volume => vec![("volume", v("v"))],
        Per::Finalizer => vec![("finalizer", v("f"))],
    }
}

/// `inherited`: a fanned-out parent's instance kind, which its per-pod children share.
fn check(
    d: &SpanDef,
    file: &str,
    text: &str,
    root: bool,
    inherited: Per,
    names: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let here = format!("name: {}", d.name);
    let fail = |problem: String| {
        ConfigError::at(file, text, &here, format!("span {:?}: {problem}", d.name))
    };
    if names.contains(&d.name) {
        return Err(fail("the name is used twice".into()));
    }
    names.push(d.name.clone());
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
    let per = if d.per == Per::Pod { inherited } else { d.per };
    let bindings = sample_bindings(per);
    for m in [&d.start, &d.end, &d.point, &d.error, &d.abort] {
        compile_all(m, &bindings).map_err(fail)?;
    }
    for c in &d.children {
        check(c, file, text, false, per, names)?;
    }
    Ok(())
}
