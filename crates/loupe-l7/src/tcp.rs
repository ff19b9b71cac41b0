//! TCP reassembly by sequence numbers: segments of many connections in, each
//! connection's two byte streams (by position) out to its [`Conn`]. Out-of-order
//! segments wait, boundedly, for the hole before them; a hole that does not fill is a
//! gap. Which side is the client: the one that sent the SYN, or else the ephemeral port.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use crate::record::{Dir, Record};
use crate::Conn;

/// One TCP segment, decoded.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
    /// Capture time, µs.
    pub ts: i64,
}

/// Out-of-order bytes held per direction before the hole is declared a gap.
const HELD_LIMIT: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub connections: u64,
    pub segments: u64,
    /// Segments that arrived ahead of a hole and waited.
    pub out_of_order: u64,
    /// Connections dropped to stay under the table's bound.
    pub evicted: u64,
}

#[derive(Debug)]
struct Flow {
    conn: Conn,
    client: SocketAddr,
    server: SocketAddr,
    /// Per direction (request, response): the sequence number of stream position 0.
    isn: [Option<u32>; 2],
    /// The position after the last byte delivered, and the last relative sequence seen
    /// (to unwrap 32-bit sequence numbers).
    next: [u64; 2],
    last_rel: [u64; 2],
    held: [BTreeMap<u64, (Vec<u8>, i64)>; 2],
    held_bytes: [usize; 2],
    closed: [bool; 2],
    last_seen: i64,
    /// A SYN was seen: who the client is is known.
    handshake: bool,
}

/// Every connection of a capture (or of a node), by its address pair.
#[derive(Debug)]
pub struct Flows {
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    buffer: usize,
    max_flows: usize,
    pub stats: FlowStats,
}

/// A connection's identity and what it spoke.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub protocol: crate::Protocol,
    pub http1: crate::http1::Http1Stats,
    pub redis: crate::redis::RedisStats,
    pub h2: crate::h2::H2Stats,
    /// What its parser could not follow.
    pub unfollowed: crate::Unfollowed,
    pub client_losses: crate::Losses,
    pub server_losses: crate::Losses,
}

/// A record with the connection it was seen on.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub record: Record,
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Flows {
    pub fn new(buffer: usize, max_flows: usize) -> Flows {
        Flows {
            flows: HashMap::new(),
            buffer,
            max_flows: max_flows.max(1),
            stats: FlowStats::default(),
        }
    }

    /// Adds one segment; records it completes go to `out`, connections it closes to `done`.
    pub fn push(&mut self, seg: &Segment<'_>, out: &mut Vec<Seen>, done: &mut Vec<Finished>) {
        self.stats.segments += 1;
        let k = key(seg.src, seg.dst);
        if !self.flows.contains_key(&k) && !seg.syn && seg.payload.is_empty() {
            // Nothing to read, and no handshake to learn from: the last ACK of a
            // connection already closed (or a keep-alive of one joined mid-way).
            return;
        }
        if !self.flows.contains_key(&k) {
            if self.flows.len() >= self.max_flows {
                self.evict_oldest(out, done);
            }
            let (client, server) = if seg.syn && !seg.ack {
                (seg.src, seg.dst)
            } else if seg.syn {
                (seg.dst, seg.src)
            } else if seg.src.port() > seg.dst.port() {
                // No handshake seen: the ephemeral (higher) port is the client's.
                (seg.src, seg.dst)
            } else {
                (seg.dst, seg.src)
            };
            self.stats.connections += 1;
            self.flows.insert(
                k,
                Flow {
                    conn: Conn::new(self.buffer),
                    client,
                    server,
                    isn: [None; 2],
                    next: [0; 2],
                    last_rel: [0; 2],
                    held: [BTreeMap::new(), BTreeMap::new()],
                    held_bytes: [0; 2],
                    closed: [false; 2],
                    last_seen: seg.ts,
                    handshake: seg.syn,
                },
            );
        }
        let flow = self.flows.get_mut(&k).expect("inserted above");
        flow.last_seen = seg.ts;
        if !flow.handshake && flow.next == [0, 0] && !seg.payload.is_empty() {
            // No handshake seen and no data yet: the first bytes say who asks.
            use crate::Protocol::{Other, Unknown};
            if !matches!(crate::infer(seg.payload, &[]), Unknown | Other) {
                (flow.client, flow.server) = (seg.src, seg.dst);
            } else if !matches!(crate::infer(&[], seg.payload), Unknown | Other) {
                (flow.client, flow.server) = (seg.dst, seg.src);
            }
        }
        let d = usize::from(seg.src != flow.client);
        let mut records = Vec::new();
        if flow.isn[d].is_none() {
            // Data starts after the SYN's sequence number, or at the first byte seen.
            flow.isn[d] = Some(seg.seq.wrapping_add(u32::from(seg.syn)));
        }
        if !seg.payload.is_empty() {
            let rel32 = seg
                .seq
                .wrapping_sub(flow.isn[d].unwrap_or(seg.seq))
                .wrapping_add(u32::from(seg.syn));
            let pos = unwrap(rel32, flow.last_rel[d]);
            flow.last_rel[d] = pos;
            if pos <= flow.next[d] {
                flow.deliver(d, pos, seg.payload, seg.ts, &mut records);
                flow.drain(d, seg.ts, &mut records);
            } else {
                self.stats.out_of_order += 1;
                flow.held_bytes[d] += seg.payload.len();
                flow.held[d].insert(pos, (seg.payload.to_vec(), seg.ts));
                while flow.held_bytes[d] > HELD_LIMIT {
                    flow.skip_hole(d, &mut records);
                }
            }
        }
        if seg.fin || seg.rst {
            flow.closed[d] = true;
            if seg.rst {
                flow.closed = [true; 2];
            }
        }
        let (client, server) = (flow.client, flow.server);
        let finished = flow.closed == [true; 2];
        out.extend(records.into_iter().map(|record| Seen {
            client,
            server,
            record,
        }));
        if finished {
            if let Some(flow) = self.flows.remove(&k) {
                done.push(flow.finish(out));
            }
        }
    }

    /// Closes every connection still open (the end of a capture).
    pub fn finish(&mut self, out: &mut Vec<Seen>, done: &mut Vec<Finished>) {
        let mut flows: Vec<_> = self.flows.drain().map(|(_, f)| f).collect();
        flows.sort_by_key(|f| (f.last_seen, f.client, f.server));
        for flow in flows {
            done.push(flow.finish(out));
        }
    }

    fn evict_oldest(&mut self, out: &mut Vec<Seen>, done: &mut Vec<Finished>) {
        let oldest = self
            .flows
            .iter()
            .min_by_key(|(k, f)| (f.last_seen, **k))
            .map(|(k, _)| *k);
        if let Some(flow) = oldest.and_then(|k| self.flows.remove(&k)) {
            self.stats.evicted += 1;
            done.push(flow.finish(out));
        }
    }

    pub fn open(&self) -> usize {
        self.flows.len()
    }
}

impl Flow {
    fn dir(d: usize) -> Dir {
        if d == 0 {
            Dir::Request
        } else {
            Dir::Response
        }
    }

    fn deliver(&mut self, d: usize, pos: u64, data: &[u8], ts: i64, out: &mut Vec<Record>) {
        self.conn.push(Self::dir(d), pos, data, ts, out);
        self.next[d] = self.next[d].max(pos + data.len() as u64);
    }

    /// Delivers held segments that the stream has reached; their bytes were usable only
    /// from `now` (when the hole before them filled).
    fn drain(&mut self, d: usize, now: i64, out: &mut Vec<Record>) {
        while let Some((&pos, _)) = self.held[d].first_key_value() {
            if pos > self.next[d] {
                break;
            }
            let (data, ts) = self.held[d].remove(&pos).expect("listed");
            self.held_bytes[d] -= data.len();
            self.deliver(d, pos, &data, ts.max(now), out);
        }
    }

    /// Gives up on the hole before the first held segment: a gap, then what follows.
    fn skip_hole(&mut self, d: usize, out: &mut Vec<Record>) {
        if let Some((pos, (data, ts))) = self.held[d].pop_first() {
            self.held_bytes[d] -= data.len();
            self.deliver(d, pos, &data, ts, out);
            self.drain(d, ts, out);
        }
    }

    fn finish(mut self, out: &mut Vec<Seen>) -> Finished {
        let mut records = Vec::new();
        for d in 0..2 {
            while !self.held[d].is_empty() {
                self.skip_hole(d, &mut records);
            }
        }
        self.conn.close(&mut records);
        out.extend(records.into_iter().map(|record| Seen {
            client: self.client,
            server: self.server,
            record,
        }));
        Finished {
            client: self.client,
            server: self.server,
            protocol: self.conn.protocol,
            http1: self.conn.http1_stats(),
            unfollowed: self.conn.unfollowed(),
            redis: self.conn.redis_stats(),
            h2: self.conn.h2_stats(),
            client_losses: self.conn.client.losses,
            server_losses: self.conn.server.losses,
        }
    }
}

/// A 32-bit relative sequence number as a 64-bit stream position, nearest the last one.
fn unwrap(rel32: u32, last: u64) -> u64 {
    let base = last & !0xffff_ffff;
    let candidates = [base.wrapping_sub(1 << 32), base, base + (1 << 32)];
    candidates
        .into_iter()
        .map(|b| b.wrapping_add(u64::from(rel32)))
        .filter(|p| *p < (1 << 63))
        .min_by_key(|p| p.abs_diff(last))
        .unwrap_or(u64::from(rel32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn seg<'a>(
        src: &str,
        dst: &str,
        seq: u32,
        flags: &str,
        payload: &'a [u8],
        ts: i64,
    ) -> Segment<'a> {
        Segment {
            src: addr(src),
            dst: addr(dst),
            seq,
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            payload,
            ts,
        }
    }

    #[test]
    fn reordered_and_retransmitted_segments_make_one_exchange() {
        let (c, s) = ("10.0.0.1:40000", "10.0.0.2:80");
        let mut flows = Flows::new(64 * 1024, 100);
        let (mut out, mut done) = (Vec::new(), Vec::new());
        let req = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
        for s_ in [
            seg(c, s, 100, "S", b"", 0),
            seg(s, c, 900, "SA", b"", 1),
            // The request in two pieces, the second first, then a retransmit.
            seg(c, s, 101 + 10, "A", &req[10..], 2),
            seg(c, s, 101, "A", &req[..10], 3),
            seg(c, s, 101, "A", &req[..10], 4),
            seg(s, c, 901, "A", resp, 5),
            seg(c, s, 101 + req.len() as u32, "FA", b"", 6),
            seg(s, c, 901 + resp.len() as u32, "FA", b"", 7),
            // The last ACK comes after both FINs: not a connection of its own.
            seg(c, s, 102 + req.len() as u32, "A", b"", 8),
        ] {
            flows.push(&s_, &mut out, &mut done);
        }
        assert_eq!(out.len(), 1, "{out:?}");
        let r = &out[0];
        assert_eq!(
            (r.client, r.record.method.as_str(), r.record.status),
            (addr(c), "GET", Some(200))
        );
        assert_eq!(
            (
                r.record.request_start,
                r.record.request_end,
                r.record.response_end
            ),
            (3, 3, 5),
            "its first byte came in the second segment, which completed it"
        );
        assert_eq!(done.len(), 1);
        assert_eq!(flows.stats.connections, 1);
        assert_eq!(flows.stats.out_of_order, 1);
        assert_eq!(flows.open(), 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        assert_eq!(unwrap(5, 0), 5);
        assert_eq!(unwrap(3, (1 << 32) - 10), (1 << 32) + 3);
        assert_eq!(unwrap(u32::MAX - 2, (1 << 32) + 3), (1 << 32) - 3);
        let (c, s) = ("[::1]:5000", "[::1]:80");
        let mut flows = Flows::new(64 * 1024, 100);
        let (mut out, mut done) = (Vec::new(), Vec::new());
        let req = b"GET /w HTTP/1.1\r\n\r\n";
        let start = u32::MAX - 5;
        flows.push(&seg(c, s, start, "A", &req[..8], 0), &mut out, &mut done);
        flows.push(
            &seg(c, s, start.wrapping_add(8), "A", &req[8..], 1),
            &mut out,
            &mut done,
        );
        flows.push(
            &seg(s, c, 7, "A", b"HTTP/1.1 204 No Content\r\n\r\n", 2),
            &mut out,
            &mut done,
        );
        flows.finish(&mut out, &mut done);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].record.resource, "/w");
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut flows = Flows::new(1024, 10);
        let (mut out, mut done) = (Vec::new(), Vec::new());
        for i in 0..50u16 {
            let c = format!("10.0.0.1:{}", 30000 + i);
            flows.push(
                &seg(
                    &c,
                    "10.0.0.2:80",
                    1,
                    "A",
                    b"GET / HTTP/1.1\r\n\r\n",
                    i64::from(i),
                ),
                &mut out,
                &mut done,
            );
            assert!(flows.open() <= 10);
        }
        assert_eq!(flows.stats.evicted, 40);
    }
}
