//! Audit log files: JSON lines as kube-apiserver writes them, plain, gzip (also
//! concatenated gzip members) or zstd (also concatenated frames), and directories of
//! rotated files taken in time order.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::formats::{admission_review_to_audit, is_admission_review};

/// One record of a file, or why a line could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// Borrowed from the reader's buffer when possible: most lines are used as they are.
    Record {
        line: u64,
        json: Cow<'a, str>,
    },
    Error {
        line: u64,
        error: String,
    },
    /// A record of a shape Loupe reads but does not analyse: counted as skipped.
    Skipped {
        line: u64,
    },
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Opens a file, decompressing it if it starts with the gzip or the zstd magic (whatever
/// its name says).
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 4];
    let n = read_fully(&mut file, &mut magic)?;
    let file = File::open(path)?;
    if n >= 2 && magic[..2] == GZIP_MAGIC {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(file),
        )))
    } else if n == 4 && magic == ZSTD_MAGIC {
        // The decoder reads frame after frame, as `zstd -d` does.
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            zstd::stream::read::Decoder::new(file)?,
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

/// A gzip reader (all members) over any byte source.
pub fn gzip_reader<R: Read>(inner: R) -> MultiGzDecoder<R> {
    MultiGzDecoder::new(inner)
}

fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads every record of `reader`, calling `sink` for each record and each bad line.
/// A read error (a truncated gzip stream) ends the file with an [`Item::Error`]; what was
/// read before it is kept. Returns the number of lines read.
///
/// Lines are found with SIMD `memchr` and handed over in place from the reader's buffer;
/// only a line that straddles two fills is copied.
pub fn read_records(reader: &mut dyn BufRead, mut sink: impl FnMut(Item<'_>)) -> u64 {
    let mut carry: Vec<u8> = Vec::new();
    let mut line = 0u64;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                sink(Item::Error {
                    line: line + 1,
                    error: format!("read failed (truncated or corrupt file?): {e}"),
                });
                return line;
            }
        };
        if chunk.is_empty() {
            if !carry.is_empty() {
                line += 1;
                one_line(line, &carry, &mut sink);
            }
            return line;
        }
        let mut used = 0;
        if !carry.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    carry.extend_from_slice(&chunk[..=i]);
                    line += 1;
                    one_line(line, &carry, &mut sink);
                    carry.clear();
                    used = i + 1;
                }
                None => {
                    carry.extend_from_slice(chunk);
                    used = chunk.len();
                }
            }
        }
        if carry.is_empty() {
            let rest = &chunk[used..];
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', rest) {
                line += 1;
                one_line(line, &rest[start..=end], &mut sink);
                start = end + 1;
            }
            carry.extend_from_slice(&rest[start..]);
            used = chunk.len();
        }
        reader.consume(used);
    }
}

/// One line (with its `\n`, unless it is the file's unterminated last one).
fn one_line(line: u64, bytes: &[u8], sink: &mut impl FnMut(Item<'_>)) {
    let complete = bytes.last() == Some(&b'\n');
    // SIMD validation: std's took 2 % of a replay. std again only to say where it fails.
    let text = match simdutf8::basic::from_utf8(bytes) {
        Ok(t) => t.trim(),
        Err(_) => {
            let error = std::str::from_utf8(bytes)
                .err()
                .map_or_else(|| "invalid byte sequence".to_string(), |e| e.to_string());
            sink(Item::Error {
                line,
                error: format!("not UTF-8: {error}"),
            });
            return;
        }
    };
    if text.is_empty() {
        return;
    }
    if !complete && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        sink(Item::Error {
            line,
            error: "incomplete last line (no newline, not valid JSON): the file was cut mid-write"
                .into(),
        });
        return;
    }
    sink(adapt(line, text));
}

/// Turns a line into an audit-event record, adapting other known shapes.
pub fn adapt(line: u64, text: &str) -> Item<'_> {
    if is_admission_review(text) {
        return match admission_review_to_audit(text) {
            Ok(Some(json)) => Item::Record {
                line,
                json: Cow::Owned(json),
            },
            Ok(None) => Item::Skipped { line },
            Err(error) => Item::Error { line, error },
        };
    }
    Item::Record {
        line,
        json: Cow::Borrowed(text),
    }
}

impl Item<'_> {
    /// An owned copy, to send to another thread.
    pub fn into_owned(self) -> Item<'static> {
        match self {
            Item::Record { line, json } => Item::Record {
                line,
                json: Cow::Owned(json.into_owned()),
            },
            Item::Error { line, error } => Item::Error { line, error },
            Item::Skipped { line } => Item::Skipped { line },
        }
    }
}

/// Expands directories and orders the files so that events come oldest first: rotated
/// backups before the active file, whatever their names.
pub fn list_inputs(paths: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            collect_dir(p, &mut found)?;
            found.sort();
            files.extend(order_by_first_event(found));
        } else if p.exists() {
            files.push(p.clone());
        } else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file or directory", p.display()),
            ));
        }
    }
    Ok(files)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_dir(&path, out)?;
        } else if is_audit_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Licences, provenance notes and other text beside the logs are not audit input.
fn is_audit_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let lower = name.to_ascii_lowercase();
    !(lower.ends_with(".md")
        || lower.starts_with("license")
        || lower.starts_with("copying")
        || lower.starts_with('.'))
}

fn order_by_first_event(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut keyed: Vec<(i64, PathBuf)> = files
        .into_iter()
        .map(|f| (first_event_time(&f).unwrap_or(i64::MAX), f))
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, f)| f).collect()
}

fn first_event_time(path: &Path) -> Option<i64> {
    let mut reader = open(path).ok()?;
    let mut line = String::new();
    for _ in 0..16 {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Ok(e) = loupe_audit::decode(line.trim()) {
            return e.time();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(bytes: &[u8]) -> Vec<Item<'static>> {
        let mut items = Vec::new();
        read_records(&mut BufReader::new(bytes), |i| items.push(i.into_owned()));
        items
    }

    #[test]
    fn reads_lines_and_locates_bad_ones() {
        let items = collect(b"{\"a\":1}\n\n\xff\xfe\n{\"b\":2}\n{\"c\":");
        assert_eq!(items.len(), 4);
        assert_eq!(
            items[0],
            Item::Record {
                line: 1,
                json: "{\"a\":1}".into()
            }
        );
        assert!(matches!(&items[1], Item::Error { line: 3, error } if error.contains("UTF-8")));
        assert_eq!(
            items[2],
            Item::Record {
                line: 4,
                json: "{\"b\":2}".into()
            }
        );
        assert!(
            matches!(&items[3], Item::Error { line: 5, error } if error.contains("incomplete last line"))
        );
    }

    #[test]
    fn lines_across_buffer_fills_read_the_same() {
        let input = b"{\"a\":1}\n\n\xff\xfe\n{\"long\":\"0123456789abcdef\"}\r\n{\"b\":2}\n{\"c\":";
        let whole = collect(input);
        assert_eq!(whole.len(), 5);
        for capacity in [1, 2, 3, 7, 16, 64] {
            let mut items = Vec::new();
            let lines = read_records(&mut BufReader::with_capacity(capacity, &input[..]), |i| {
                items.push(i.into_owned())
            });
            assert_eq!(items, whole, "buffer of {capacity} bytes");
            assert_eq!(lines, 6);
        }
    }

    #[test]
    fn keeps_a_complete_last_line_without_newline() {
        let items = collect(b"{\"a\":1}\n{\"b\":2}");
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn reads_gzip_and_reports_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..2000 {
            writeln!(gz, "{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 97)).unwrap();
        }
        let full = gz.finish().unwrap();
        std::fs::write(&path, &full).unwrap();
        let mut items = Vec::new();
        read_records(&mut *open(&path).unwrap(), |i| items.push(i.into_owned()));
        assert_eq!(items.len(), 2000);

        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        let mut items = Vec::new();
        read_records(&mut *open(&path).unwrap(), |i| items.push(i.into_owned()));
        let errors: Vec<_> = items
            .iter()
            .filter(|i| matches!(i, Item::Error { .. }))
            .collect();
        assert!(!errors.is_empty(), "truncation must be reported");
        assert!(items.len() > 100, "records before the cut are kept");
    }

    #[test]
    fn reads_concatenated_zstd_frames_and_reports_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log.zst");
        let text = |from: usize, to: usize| {
            (from..to)
                .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "y".repeat(i % 89)))
                .collect::<String>()
        };
        let mut full = zstd::encode_all(text(0, 1500).as_bytes(), 1).unwrap();
        full.extend(zstd::encode_all(text(1500, 3000).as_bytes(), 1).unwrap());
        std::fs::write(&path, &full).unwrap();
        let mut items = Vec::new();
        read_records(&mut *open(&path).unwrap(), |i| items.push(i.into_owned()));
        assert_eq!(items.len(), 3000, "both frames are read");
        assert!(items.iter().all(|i| matches!(i, Item::Record { .. })));
        assert!(
            matches!(&items[2999], Item::Record { json, .. } if json.starts_with("{\"n\":2999,"))
        );

        std::fs::write(&path, &full[..full.len() * 3 / 4]).unwrap();
        let mut items = Vec::new();
        read_records(&mut *open(&path).unwrap(), |i| items.push(i.into_owned()));
        let records = items
            .iter()
            .filter(|i| matches!(i, Item::Record { .. }))
            .count();
        assert!(
            matches!(items.last(), Some(Item::Error { error, .. }) if error.contains("truncated")),
            "truncation must be reported: {:?}",
            items.last()
        );
        assert!(
            records >= 1500,
            "records before the cut are kept: {records}"
        );
    }
}
