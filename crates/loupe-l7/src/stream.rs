//! One direction of a connection's bytes, by stream position: what arrived, in order,
//! with gaps said out loud. Segments may come twice (retransmits), overlap, or skip
//! ahead (lost or truncated data); the buffer never grows past its limit, it drops and
//! counts instead, and tells the parser to resynchronise.

use std::collections::VecDeque;

/// What became of one pushed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Its new bytes were appended.
    Appended(usize),
    /// Nothing new (a retransmit of bytes already seen).
    Duplicate,
    /// It starts past what was seen: the bytes between are lost, what was buffered was
    /// dropped, and the parser must resynchronise.
    Gap { lost: u64 },
    /// The buffer would pass its limit: its contents were dropped (and the segment kept
    /// from the point that fits); the parser must resynchronise.
    Overflow { dropped: u64 },
}

/// Counters of what a stream lost; never reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    pub gaps: u64,
    pub lost_bytes: u64,
    pub overflows: u64,
    pub dropped_bytes: u64,
    pub duplicates: u64,
}

/// Buffered bytes of one direction, with the capture time of each push.
#[derive(Debug, Clone)]
pub struct StreamBuf {
    /// Stream position of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed (dropped lazily, so consuming is O(1)).
    read: usize,
    limit: usize,
    /// (position, time) of each push still in the buffer, oldest first.
    times: VecDeque<(u64, i64)>,
    resync: bool,
    /// Bytes passed over unseen since the last resync was taken (lost, or dropped).
    unseen: u64,
    started: bool,
    pub losses: Losses,
}

impl StreamBuf {
    pub fn new(limit: usize) -> StreamBuf {
        StreamBuf {
            base: 0,
            buf: Vec::new(),
            read: 0,
            limit: limit.max(1),
            times: VecDeque::new(),
            resync: false,
            unseen: 0,
            started: false,
            losses: Losses::default(),
        }
    }

    /// The position after the last byte seen.
    pub fn end(&self) -> u64 {
        self.base + self.buffered() as u64
    }

    /// Adds the bytes at stream position `pos`, seen at time `ts` (µs).
    pub fn push(&mut self, pos: u64, data: &[u8], ts: i64) -> Pushed {
        if !self.started {
            self.started = true;
            self.base = pos;
        }
        let end = self.end();
        let data_end = pos + data.len() as u64;
        if data_end <= end || data.is_empty() {
            self.losses.duplicates += 1;
            return Pushed::Duplicate;
        }
        let mut outcome = None;
        let mut fresh = if pos > end {
            let lost = pos - end;
            self.losses.gaps += 1;
            self.losses.lost_bytes += lost;
            self.clear_to(pos);
            outcome = Some(Pushed::Gap { lost });
            data
        } else {
            &data[(end - pos) as usize..]
        };
        if self.buffered() + fresh.len() > self.limit {
            let dropped = self.buffered() as u64;
            self.losses.overflows += 1;
            self.losses.dropped_bytes += dropped;
            let start = self.end();
            self.clear_to(start);
            if fresh.len() > self.limit {
                // Keep the tail that fits: the next message starts somewhere in it.
                let skip = fresh.len() - self.limit;
                self.losses.dropped_bytes += skip as u64;
                self.clear_to(start + skip as u64);
                fresh = &fresh[skip..];
            }
            outcome = Some(Pushed::Overflow { dropped });
        }
        let at = self.end();
        self.times.push_back((at, ts));
        if self.read > 0 && self.read * 2 >= self.buf.len() {
            // Compact once half the vector is consumed: amortised O(1) per byte.
            self.buf.drain(..self.read);
            self.read = 0;
        }
        self.buf.extend_from_slice(fresh);
        outcome.unwrap_or(Pushed::Appended(fresh.len()))
    }

    /// Declares `n` bytes lost after what was seen (a layer below lost them): like a gap.
    pub fn lose(&mut self, n: u64) {
        let end = self.end();
        self.losses.gaps += 1;
        self.losses.lost_bytes += n;
        self.clear_to(end + n);
    }

    fn clear_to(&mut self, pos: u64) {
        self.unseen += pos.saturating_sub(self.base);
        self.buf.clear();
        self.read = 0;
        self.times.clear();
        self.base = pos;
        self.resync = true;
    }

    /// The buffered bytes, from the first one not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.read..]
    }

    /// Stream position of `data()[0]`.
    pub fn position(&self) -> u64 {
        self.base
    }

    /// Time the byte at stream position `pos` was seen (the push that carried it).
    pub fn time_at(&self, pos: u64) -> Option<i64> {
        // Most lookups fall in the latest push.
        if let Some(&(p, t)) = self.times.back() {
            if p <= pos {
                return Some(t);
            }
        }
        let i = self.times.partition_point(|(p, _)| *p <= pos);
        i.checked_sub(1).map(|i| self.times[i].1)
    }

    /// Drops the first `n` bytes (parsed).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buffered());
        self.read += n;
        if self.read == self.buf.len() {
            self.buf.clear();
            self.read = 0;
        }
        self.base += n as u64;
        // Keep the push covering the new first byte.
        while self.times.len() > 1 && self.times[1].0 <= self.base {
            self.times.pop_front();
        }
    }

    /// Whether data was lost since the last call: the parser must find the next message
    /// boundary instead of continuing the one it was in.
    pub fn take_resync(&mut self) -> bool {
        self.unseen = 0;
        std::mem::take(&mut self.resync)
    }

    /// Like [`StreamBuf::take_resync`], saying how many bytes were passed over unseen:
    /// a parser skipping a body at least that long can carry on instead.
    pub fn take_loss(&mut self) -> Option<u64> {
        let unseen = std::mem::take(&mut self.unseen);
        std::mem::take(&mut self.resync).then_some(unseen)
    }

    pub fn buffered(&self) -> usize {
        self.buf.len() - self.read
    }
}

/// What a parser reads: a direction's buffer, or the segment just pushed where it lies.
/// A segment that continues an empty buffer in order (nearly every one: a read is
/// usually whole messages) is parsed in place; only what the parser leaves unconsumed
/// is copied into the buffer, when the view is dropped.
#[derive(Debug)]
pub struct Input<'a> {
    buf: &'a mut StreamBuf,
    /// The unconsumed rest of a segment parsed in place; the buffer is empty while it is
    /// not.
    segment: &'a [u8],
}

impl StreamBuf {
    /// Adds a segment, as [`StreamBuf::push`] does, and gives the view to parse it by.
    pub fn push_view<'a>(&'a mut self, pos: u64, data: &'a [u8], ts: i64) -> (Pushed, Input<'a>) {
        if !self.started {
            self.started = true;
            self.base = pos;
        }
        let in_place = pos == self.end()
            && self.buffered() == 0
            && !data.is_empty()
            && data.len() <= self.limit;
        if !in_place {
            let pushed = self.push(pos, data, ts);
            return (pushed, self.view());
        }
        self.buf.clear();
        self.read = 0;
        self.times.push_back((pos, ts));
        let view = Input {
            buf: self,
            segment: data,
        };
        (Pushed::Appended(data.len()), view)
    }

    /// The view of what is buffered.
    pub fn view(&mut self) -> Input<'_> {
        Input {
            buf: self,
            segment: &[],
        }
    }
}

impl Input<'_> {
    /// The unconsumed bytes, from the first one not yet consumed.
    pub fn data(&self) -> &[u8] {
        if self.segment.is_empty() {
            self.buf.data()
        } else {
            self.segment
        }
    }

    pub fn buffered(&self) -> usize {
        if self.segment.is_empty() {
            self.buf.buffered()
        } else {
            self.segment.len()
        }
    }

    /// Drops the first `n` bytes (parsed).
    pub fn consume(&mut self, n: usize) {
        if self.segment.is_empty() {
            return self.buf.consume(n);
        }
        let n = n.min(self.segment.len());
        self.segment = &self.segment[n..];
        self.buf.base += n as u64;
        while self.buf.times.len() > 1 && self.buf.times[1].0 <= self.buf.base {
            self.buf.times.pop_front();
        }
    }

    /// Stream position of `data()[0]`.
    pub fn position(&self) -> u64 {
        self.buf.position()
    }

    /// The position after the last byte seen.
    pub fn end(&self) -> u64 {
        self.position() + self.buffered() as u64
    }

    /// Time the byte at stream position `pos` was seen.
    pub fn time_at(&self, pos: u64) -> Option<i64> {
        self.buf.time_at(pos)
    }

    /// Skips what is left (`left` bytes) of a message too long to hold, as it streams;
    /// whether more of it is still to come.
    pub fn skip_pending(&mut self, left: &mut u64) -> bool {
        if *left == 0 {
            return false;
        }
        let n = (*left).min(self.buffered() as u64) as usize;
        self.consume(n);
        *left -= n as u64;
        *left > 0
    }

    /// See [`StreamBuf::take_resync`].
    pub fn take_resync(&mut self) -> bool {
        self.buf.take_resync()
    }

    /// See [`StreamBuf::take_loss`].
    pub fn take_loss(&mut self) -> Option<u64> {
        self.buf.take_loss()
    }
}

impl Drop for Input<'_> {
    fn drop(&mut self) {
        // The parser needs more than the segment holds: keep the rest for the next one.
        if !self.segment.is_empty() {
            self.buf.buf.extend_from_slice(self.segment);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_retransmitted_and_overlapping_segments() {
        let mut s = StreamBuf::new(1024);
        assert_eq!(s.push(1000, b"GET /", 1), Pushed::Appended(5));
        assert_eq!(s.push(1000, b"GET /", 2), Pushed::Duplicate);
        assert_eq!(s.push(1003, b" /a HTTP", 3), Pushed::Appended(6));
        assert_eq!(s.data(), b"GET /a HTTP");
        assert_eq!((s.time_at(1000), s.time_at(1006)), (Some(1), Some(3)));
        s.consume(4);
        assert_eq!((s.position(), s.data()), (1004, &b"/a HTTP"[..]));
        assert_eq!(s.time_at(1004), Some(1), "the push that carried it");
        assert!(!s.take_resync());
        assert_eq!(s.losses.duplicates, 1);
    }

    #[test]
    fn a_gap_drops_the_partial_message_and_asks_for_a_resync() {
        let mut s = StreamBuf::new(1024);
        s.push(0, b"HTTP/1.1 200 OK\r\nContent-", 1);
        assert_eq!(
            s.push(100, b"GET / HTTP/1.1\r\n", 2),
            Pushed::Gap { lost: 75 }
        );
        assert!(s.take_resync());
        assert!(!s.take_resync());
        assert_eq!((s.position(), s.data()), (100, &b"GET / HTTP/1.1\r\n"[..]));
        assert_eq!((s.losses.gaps, s.losses.lost_bytes), (1, 75));
        // What a parser skipping a body learns: all 100 bytes since its last position.
        s.consume(5);
        s.push(200, b"x", 3);
        assert_eq!(s.take_loss(), Some(200 - 105));
    }

    #[test]
    fn a_segment_is_parsed_in_place_and_its_rest_kept() {
        let mut s = StreamBuf::new(64);
        {
            let (pushed, mut v) = s.push_view(100, b"GET / HTTP/1.1\r\nHo", 7);
            assert_eq!(pushed, Pushed::Appended(18));
            assert_eq!(v.data(), b"GET / HTTP/1.1\r\nHo");
            v.consume(16);
            assert_eq!(
                (v.position(), v.data(), v.time_at(116)),
                (116, &b"Ho"[..], Some(7))
            );
        }
        // The rest was copied; the next segment joins it in the buffer.
        assert_eq!((s.position(), s.data()), (116, &b"Ho"[..]));
        {
            let (_, mut v) = s.push_view(118, b"st: a\r\n", 8);
            assert_eq!(v.data(), b"Host: a\r\n");
            assert_eq!((v.time_at(116), v.time_at(118)), (Some(7), Some(8)));
            v.consume(9);
        }
        assert_eq!((s.position(), s.buffered()), (125, 0));
        // In place again, with the times of consumed pushes dropped.
        let (_, mut v) = s.push_view(125, b"xyz", 9);
        v.consume(3);
        drop(v);
        assert_eq!(
            (s.position(), s.buffered(), s.time_at(127)),
            (128, 0, Some(9))
        );
        // Out of order or too big: the buffer's own rules.
        assert_eq!(s.push_view(200, b"late", 10).0, Pushed::Gap { lost: 72 });
        assert!(s.take_resync());
        assert_eq!(s.push_view(0, b"old", 11).0, Pushed::Duplicate);
        assert_eq!(s.data(), b"late");
    }

    #[test]
    fn the_buffer_never_grows_past_its_limit() {
        let mut s = StreamBuf::new(8);
        s.push(0, b"abcdef", 1);
        assert_eq!(s.push(6, b"ghij", 2), Pushed::Overflow { dropped: 6 });
        assert_eq!(s.data(), b"ghij");
        assert!(s.take_resync());
        // A segment bigger than the buffer keeps its tail.
        assert_eq!(
            s.push(10, b"0123456789", 3),
            Pushed::Overflow { dropped: 4 }
        );
        assert_eq!((s.position(), s.data()), (12, &b"23456789"[..]));
        assert!(s.buffered() <= 8);
        assert_eq!(s.losses.overflows, 2);
    }
}
