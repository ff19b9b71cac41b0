//! Follows a live audit log as kube-apiserver writes and rotates it.
//!
//! The position (device, inode, byte offset after the last complete line) is committed with
//! the records it covers. After a restart the tailer finds the file with that inode, the
//! live file or its rotated backup in the same directory, and continues from the offset;
//! after a rotation it finishes the old file through its open handle before taking the new.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loupe_store::Checkpoint;
use serde::{Deserialize, Serialize};

use crate::files::{adapt, Item};
use crate::writer::{Batch, WriterHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    /// Lines before `offset`, to locate errors.
    pub line: u64,
}

#[derive(Debug, Clone)]
pub struct TailConfig {
    pub path: PathBuf,
    pub cluster: String,
    pub poll: Duration,
    pub batch_lines: usize,
}

/// The checkpoint's source name for a tailed path.
pub fn source_name(path: &Path) -> String {
    format!("tail:{}", path.display())
}

struct Open {
    file: File,
    pos: Position,
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Finds where to resume: the live file, or the rotated file that still has our inode.
fn reopen(path: &Path, saved: Option<Position>) -> std::io::Result<Open> {
    if let Some(pos) = saved {
        if identity(path) == Some((pos.dev, pos.ino)) {
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(pos.offset))?;
            return Ok(Open { file, pos });
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for entry in std::fs::read_dir(dir)?.flatten() {
            let p = entry.path();
            if identity(&p) == Some((pos.dev, pos.ino)) {
                tracing::info!(rotated = %p.display(), "resuming in the rotated file");
                let mut file = File::open(&p)?;
                file.seek(SeekFrom::Start(pos.offset))?;
                return Ok(Open { file, pos });
            }
        }
        tracing::warn!(path = %path.display(), "the checkpointed file is gone; starting the live file from its beginning");
    }
    let file = File::open(path)?;
    let m = file.metadata()?;
    Ok(Open {
        file,
        pos: Position {
            dev: m.dev(),
            ino: m.ino(),
            offset: 0,
            line: 0,
        },
    })
}

/// Runs until `stop` is set. Each batch is committed before the next is read.
pub fn run(
    config: TailConfig,
    saved: Option<Checkpoint>,
    writer: WriterHandle,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let source = source_name(&config.path);
    let saved: Option<Position> = saved.and_then(|c| serde_json::from_str(&c.position).ok());
    let mut current = loop {
        match reopen(&config.path, saved) {
            Ok(o) => break o,
            Err(_) if !stop.load(Ordering::Relaxed) => std::thread::sleep(config.poll),
            Err(e) => return Err(e.into()),
        }
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    while !stop.load(Ordering::Relaxed) {
        let n = current.file.read(&mut chunk)?;
        if n > 0 {
            pending.extend_from_slice(&chunk[..n]);
            send_complete_lines(&config, &source, &mut current.pos, &mut pending, &writer)?;
            continue;
        }
        // At the end: has the file been rotated away or truncated under us?
        let live = identity(&config.path);
        if live.is_some() && live != Some((current.pos.dev, current.pos.ino)) {
            if !pending.is_empty() {
                tracing::warn!("rotated file ended without a newline; its last partial line is dropped from {}", source);
                pending.clear();
            }
            if let Ok(next) = reopen(&config.path, None) {
                current = next;
                continue;
            }
        } else if let Ok(m) = current.file.metadata() {
            if m.len() < current.pos.offset + pending.len() as u64 {
                tracing::warn!(path = %config.path.display(), "the log was truncated; reading it again from the start");
                current.file.seek(SeekFrom::Start(0))?;
                current.pos.offset = 0;
                pending.clear();
                continue;
            }
        }
        std::thread::sleep(config.poll);
    }
    Ok(())
}

fn send_complete_lines(
    config: &TailConfig,
    source: &str,
    pos: &mut Position,
    pending: &mut Vec<u8>,
    writer: &WriterHandle,
) -> anyhow::Result<()> {
    let Some(last_newline) = pending.iter().rposition(|b| *b == b'\n') else {
        return Ok(());
    };
    let complete: Vec<u8> = pending.drain(..=last_newline).collect();
    let mut items = Vec::new();
    let mut consumed = 0u64;
    for raw in complete.split_inclusive(|b| *b == b'\n') {
        consumed += raw.len() as u64;
        pos.line += 1;
        let line = pos.line;
        match std::str::from_utf8(raw) {
            Ok(t) if t.trim().is_empty() => {}
            Ok(t) => items.push(adapt(line, t.trim()).into_owned()),
            Err(e) => items.push(Item::Error {
                line,
                error: format!("not UTF-8: {e}"),
            }),
        }
        if items.len() >= config.batch_lines {
            let at = Position {
                offset: pos.offset + consumed,
                ..*pos
            };
            commit(config, source, std::mem::take(&mut items), at, writer)?;
        }
    }
    pos.offset += consumed;
    commit(config, source, items, *pos, writer)
}

fn commit(
    config: &TailConfig,
    source: &str,
    items: Vec<Item<'static>>,
    at: Position,
    writer: &WriterHandle,
) -> anyhow::Result<()> {
    writer
        .send_and_wait(Batch {
            cluster: config.cluster.clone(),
            source: config.path.display().to_string(),
            items,
            checkpoint: Some(Checkpoint {
                source: source.to_string(),
                position: serde_json::to_string(&at)?,
            }),
            ack: Box::new(|_| {}),
        })
        .map(|_| ())
        .map_err(anyhow::Error::msg)
}
