//! `-o table|json|yaml`: JSON and YAML are the stable contract, tables are for people.

use anyhow::Result;
use comfy_table::{presets::NOTHING, Table};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML, or calls `table` to draw it.
pub fn emit<T: Serialize, D: std::fmt::Display>(
    format: Format,
    value: &T,
    table: impl FnOnce(&T) -> D,
) -> Result<()> {
    let text = match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
        Format::Yaml => serde_norway::to_string(value)?,
        Format::Table => format!("{}\n", table(value)),
    };
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(header.iter().copied());
    t
}

pub fn time(us: Option<i64>) -> String {
    us.map(loupe_audit::format_micros)
        .unwrap_or_else(|| "-".into())
}

/// `+1m2.345s`: the offset of `us` from `base`.
pub fn offset(base: i64, us: i64) -> String {
    let d = us - base;
    let sign = if d < 0 { "-" } else { "+" };
    let d = d.unsigned_abs();
    let (s, ms) = (d / 1_000_000, (d % 1_000_000) / 1000);
    if s >= 60 {
        format!("{sign}{}m{:02}.{:03}s", s / 60, s % 60, ms)
    } else {
        format!("{sign}{s}.{ms:03}s")
    }
}

pub fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}
