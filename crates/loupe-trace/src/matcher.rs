//! Matchers compiled for one span instance: placeholders filled in, regexes built.

use loupe_facts::{Fact, Field};
use regex::Regex;
use serde_json::Value;

use crate::config::{MatcherDef, Matchers};

/// The values a span instance fills into `$container`, `$image`, `$volume`, `$finalizer`.
pub type Bindings = Vec<(&'static str, String)>;

#[derive(Debug, Clone)]
enum Pattern {
    Exact(Value),
    /// A string with placeholders, filled from the instance when matching.
    Template(String),
    /// A regex; placeholders became capture groups checked against the instance.
    Regex {
        re: Regex,
        binds: Vec<(String, &'static str)>,
    },
}

/// A matcher compiled once per pack; an instance's values are supplied when matching.
#[derive(Debug, Clone)]
pub struct Matcher {
    fact: String,
    fields: Vec<(Vec<String>, Pattern)>,
}

/// What a matching fact yields: its captures (`duration`, `minus`).
#[derive(Debug, Default)]
pub struct Hit {
    pub duration_us: Option<i64>,
    pub minus_us: Option<i64>,
    /// The `detail` capture: what a diagnosis names (a webhook, a resource, a volume).
    pub detail: Option<String>,
    /// The `weight` capture: which of several matching rules the fact supports most
    /// (the node count of a `FailedScheduling` reason).
    pub weight: Option<u64>,
}

pub const FACT_TYPES: &[&str] = &[
    "pod_created",
    "create_rejected",
    "bound",
    "binding_failed",
    "nominated",
    "condition",
    "container_waiting",
    "container_running",
    "container_terminated",
    "container_ready",
    "container_restarted",
    "phase",
    "pod_ip",
    "host_ip",
    "finalizer_added",
    "finalizer_removed",
    "labels_changed",
    "annotations_changed",
    "spec_changed",
    "image_changed",
    "deletion_requested",
    "delete_failed",
    "eviction_requested",
    "eviction_refused",
    "gone",
    "event",
];

pub const PLACEHOLDERS: &[&str] = &["container", "image", "volume", "finalizer"];

fn fill(text: &str, bindings: &Bindings) -> String {
    let mut out = text.to_string();
    for (name, value) in bindings {
        out = out.replace(&format!("${name}"), value);
    }
    out
}

fn binding<'b>(bindings: &'b Bindings, name: &str) -> Option<&'b str> {
    bindings
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

impl Matcher {
    /// Compiles `def`; errors say what is wrong, for the config checker.
    pub fn compile(def: &MatcherDef) -> Result<Matcher, String> {
        let fact = match def.get("fact") {
            Some(serde_norway::Value::String(f)) => f.clone(),
            _ => return Err("a matcher needs `fact: <type>`".into()),
        };
        if !FACT_TYPES.contains(&fact.as_str()) {
            return Err(format!("unknown fact type {fact:?} (see docs/facts.md)"));
        }
        let mut fields = Vec::new();
        for (key, value) in def {
            if key == "fact" {
                continue;
            }
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            let pattern = match value {
                serde_norway::Value::String(s)
                    if s.len() >= 2 && s.starts_with('/') && s.ends_with('/') =>
                {
                    let mut source = s[1..s.len() - 1].to_string();
                    let mut binds = Vec::new();
                    for name in PLACEHOLDERS {
                        let token = format!("${name}");
                        while let Some(at) = source.find(&token) {
                            let group = format!("__bind{}", binds.len());
                            source
                                .replace_range(at..at + token.len(), &format!("(?P<{group}>.+?)"));
                            binds.push((group, *name));
                        }
                    }
                    let re =
                        Regex::new(&source).map_err(|e| format!("field {key}: bad regex: {e}"))?;
                    Pattern::Regex { re, binds }
                }
                serde_norway::Value::String(s)
                    if PLACEHOLDERS.iter().any(|p| s.contains(&format!("${p}"))) =>
                {
                    Pattern::Template(s.clone())
                }
                serde_norway::Value::String(s) => Pattern::Exact(Value::String(s.clone())),
                other => Pattern::Exact(
                    serde_json::to_value(other).map_err(|e| format!("field {key}: {e}"))?,
                ),
            };
            fields.push((path, pattern));
        }
        // Exact fields first: they are cheap and reject most facts before a regex runs.
        fields.sort_by_key(|(_, p)| matches!(p, Pattern::Regex { .. }));
        Ok(Matcher { fact, fields })
    }

    /// The exact value the matcher wants for a top-level string field (e.g. `reason`),
    /// for indexing matchers by it.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.fields.iter().find_map(|(path, p)| match p {
            Pattern::Exact(Value::String(s)) if path.len() == 1 && path[0] == field => {
                Some(s.as_str())
            }
            _ => None,
        })
    }

    pub fn fact_type(&self) -> &str {
        &self.fact
    }

    /// The placeholders this matcher needs an instance to supply.
    pub fn placeholders(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (_, p) in &self.fields {
            match p {
                Pattern::Template(t) => {
                    out.extend(PLACEHOLDERS.iter().filter(|n| t.contains(&format!("${n}"))))
                }
                Pattern::Regex { binds, .. } => out.extend(binds.iter().map(|(_, n)| *n)),
                Pattern::Exact(_) => {}
            }
        }
        out
    }

    /// Whether the fact (as JSON, `type` tagged) matches for this instance; its captures.
    pub fn hit(&self, fact: &Value, bindings: &Bindings) -> Option<Hit> {
        if fact.get("type").and_then(Value::as_str) != Some(self.fact.as_str()) {
            return None;
        }
        let mut hit = Hit::default();
        for (path, pattern) in &self.fields {
            let mut v = fact;
            for p in path {
                v = v.get(p)?;
            }
            if !check(pattern, Seen::Json(v), bindings, &mut hit) {
                return None;
            }
        }
        Some(hit)
    }

    /// [`Matcher::hit`] on the fact itself: top-level scalar fields are read borrowed, and
    /// the JSON (`json`) is built only for nested paths, lists and objects.
    pub fn hit_fact<'j>(
        &self,
        fact: &Fact,
        json: impl Fn() -> &'j Value,
        bindings: &Bindings,
    ) -> Option<Hit> {
        if fact.type_name() != self.fact {
            return None;
        }
        let mut hit = Hit::default();
        for (path, pattern) in &self.fields {
            let seen = match (path.len(), fact.field(&path[0])) {
                (1, Some(Field::Other)) | (2.., _) => {
                    let mut v = json();
                    for p in path {
                        v = v.get(p)?;
                    }
                    Seen::Json(v)
                }
                (_, Some(f)) => Seen::Field(f),
                (_, None) => return None,
            };
            if !check(pattern, seen, bindings, &mut hit) {
                return None;
            }
        }
        Some(hit)
    }
}

/// A field's value as a matcher sees it: borrowed from the fact, or from its JSON.
enum Seen<'a> {
    Field(Field<'a>),
    Json(&'a Value),
}

impl Seen<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Seen::Field(Field::Str(s)) => Some(s),
            Seen::Json(v) => v.as_str(),
            _ => None,
        }
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            Seen::Field(Field::Str(s)) => Cow::Borrowed(s),
            Seen::Field(Field::Int(i)) => Cow::Owned(i.to_string()),
            Seen::Field(Field::Bool(b)) => Cow::Owned(b.to_string()),
            Seen::Field(Field::Other) => Cow::Borrowed(""),
            Seen::Json(Value::String(s)) => Cow::Borrowed(s.as_str()),
            Seen::Json(other) => Cow::Owned(other.to_string()),
        }
    }

    fn equals(&self, want: &Value) -> bool {
        match (self, want) {
            (Seen::Json(v), want) => match (v, want) {
                (Value::String(a), Value::String(b)) => a == b,
                (Value::Number(a), Value::String(b)) => b.parse::<f64>().ok() == a.as_f64(),
                (Value::Bool(a), Value::String(b)) => b.parse::<bool>().ok() == Some(*a),
                (a, b) => *a == b,
            },
            (Seen::Field(Field::Str(a)), Value::String(b)) => a == b,
            (Seen::Field(Field::Int(a)), Value::String(b)) => {
                b.parse::<f64>().ok() == Some(*a as f64)
            }
            (Seen::Field(Field::Int(a)), Value::Number(b)) => b.as_f64() == Some(*a as f64),
            (Seen::Field(Field::Bool(a)), Value::String(b)) => b.parse::<bool>().ok() == Some(*a),
            (Seen::Field(Field::Bool(a)), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

/// One field against its pattern; captures go into `hit`.
fn check(pattern: &Pattern, v: Seen<'_>, bindings: &Bindings, hit: &mut Hit) -> bool {
    {
        {
            match pattern {
                Pattern::Exact(want) => {
                    if !v.equals(want) {
                        return false;
                    }
                }
                Pattern::Template(t) => {
                    if v.as_str() != Some(fill(t, bindings).as_str()) {
                        return false;
                    }
                }
                Pattern::Regex { re, binds } => {
                    let text = v.text();
                    let Some(caps) = re.captures(&text) else {
                        return false;
                    };
                    for (group, name) in binds {
                        if caps.name(group).map(|m| m.as_str()) != binding(bindings, name) {
                            return false;
                        }
                    }
                    if let Some(d) = caps.name("duration") {
                        hit.duration_us = parse_go_duration(d.as_str());
                    }
                    if let Some(d) = caps.name("minus") {
                        hit.minus_us = parse_go_duration(d.as_str());
                    }
                    if let Some(d) = caps.name("detail") {
                        hit.detail = Some(d.as_str().to_string());
                    }
                    if let Some(w) = caps.name("weight") {
                        hit.weight = w.as_str().parse().ok();
                    }
                }
            }
        }
    }
    true
}

pub fn compile_all(m: &Option<Matchers>) -> Result<Vec<Matcher>, String> {
    m.iter()
        .flat_map(|m| m.list())
        .map(Matcher::compile)
        .collect()
}

/// Go's `time.Duration` syntax (`850ms`, `3.36s`, `2m13.4s`, `1h2m3s`, `1.5µs`) in µs.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3_600e6,
            "m" => 60e6,
            "s" => 1e6,
            "ms" => 1e3,
            "us" | "µs" | "μs" => 1.0,
            "ns" => 1e-3,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("850ms"), Some(850_000));
        assert_eq!(parse_go_duration("3.36s"), Some(3_360_000));
        assert_eq!(parse_go_duration("2m13.4s"), Some(133_400_000));
        assert_eq!(parse_go_duration("1h2m3.25s"), Some(3_723_250_000));
        assert_eq!(parse_go_duration("1.5µs"), Some(2));
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
