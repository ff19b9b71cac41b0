//! Writing audit lines in batches straight from their strings (one `writev` per batch),
//! instead of copying each into a buffer first: the simulator's output is gigabytes.

use std::io::{self, IoSlice, Write};

/// Lines held before a write: a batch is at most this many bytes or lines (`IOV_MAX` is
/// 1 024 slices, two per line).
const BATCH_BYTES: usize = 1 << 20;
const BATCH_LINES: usize = 500;

/// Writes whole lines, each followed by a newline, to `W` in batches.
pub struct LineWriter<W: Write> {
    out: W,
    lines: Vec<String>,
    bytes: usize,
}

impl<W: Write> LineWriter<W> {
    pub fn new(out: W) -> LineWriter<W> {
        LineWriter {
            out,
            lines: Vec::with_capacity(BATCH_LINES),
            bytes: 0,
        }
    }

    /// Adds a line (without its newline); writes the batch when it is full.
    pub fn push(&mut self, line: String) -> io::Result<()> {
        self.bytes += line.len() + 1;
        self.lines.push(line);
        if self.bytes >= BATCH_BYTES || self.lines.len() >= BATCH_LINES {
            self.write_batch()?;
        }
        Ok(())
    }

    /// Writes what is held and flushes `W`.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_batch()?;
        self.out.flush()
    }

    /// Writes what is held and hands `W` back (to finish a compressed stream, say).
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    fn write_batch(&mut self) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(2 * self.lines.len());
        for line in &self.lines {
            slices.push(IoSlice::new(line.as_bytes()));
            slices.push(IoSlice::new(b"\n"));
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.out.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.lines.clear();
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `max` bytes per call, to exercise partial writes.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_come_out_whole_and_in_order_through_partial_writes() {
        for max in [1, 7, 4096] {
            let mut w = LineWriter::new(Trickle {
                got: Vec::new(),
                max,
            });
            let lines: Vec<String> = (0..1200).map(|i| format!("{{\"n\":{i}}}")).collect();
            for l in &lines {
                w.push(l.clone()).unwrap();
            }
            w.flush().unwrap();
            let want: String = lines.iter().map(|l| format!("{l}\n")).collect();
            assert_eq!(String::from_utf8(w.out.got).unwrap(), want, "max {max}");
        }
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error() {
        let mut w = LineWriter::new(Trickle {
            got: Vec::new(),
            max: 0,
        });
        w.push("x".into()).unwrap();
        assert_eq!(w.flush().unwrap_err().kind(), io::ErrorKind::WriteZero);
    }
}
