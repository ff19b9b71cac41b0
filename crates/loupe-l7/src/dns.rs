//! DNS: messages parsed from UDP datagrams or TCP's length-prefixed stream (header,
//! question with compression pointers; answers counted), queries paired with responses by
//! transaction id and address pair. Every length and pointer is bounded: a message that
//! lies about them is refused, never followed into a loop.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::record::Record;
use crate::stream::Input;

/// A parsed DNS message (what the records need of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub rcode: u8,
    /// The first question's name (as written, without the final dot) and type.
    pub name: String,
    pub qtype: u16,
    pub answers: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("shorter than a DNS header")]
    Short,
    #[error("a name runs past the message")]
    Truncated,
    #[error("a compression pointer loops or points forward")]
    BadPointer,
    #[error("a label or name is too long")]
    TooLong,
}

/// Parses one message.
pub fn parse(msg: &[u8]) -> Result<Message, DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::Short);
    }
    let be = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let flags = be(2);
    let (qdcount, ancount) = (be(4), be(6));
    let (name, qtype) = if qdcount > 0 {
        let (name, end) = read_name(msg, 12)?;
        if end + 4 > msg.len() {
            return Err(DnsError::Truncated);
        }
        (name, be(end))
    } else {
        (String::new(), 0)
    };
    Ok(Message {
        id: be(0),
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        rcode: (flags & 0xf) as u8,
        name,
        qtype,
        answers: ancount,
    })
}

/// A name at `at`; returns it and the offset after it (where it was first read).
fn read_name(msg: &[u8], at: usize) -> Result<(String, usize), DnsError> {
    let (mut name, mut pos, mut end, mut jumps) = (String::new(), at, None, 0);
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::Truncated)?;
                if name.len() + len + 1 > 255 {
                    return Err(DnsError::TooLong);
                }
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|&b| b as char));
                pos += 1 + len;
            }
            0xc0 => {
                let target = (u16::from_be_bytes([
                    len as u8 & 0x3f,
                    *msg.get(pos + 1).ok_or(DnsError::Truncated)?,
                ])) as usize;
                // Pointers go back: that and a bound on their number rule out loops.
                jumps += 1;
                if target >= pos || jumps > 32 {
                    return Err(DnsError::BadPointer);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(DnsError::BadPointer),
        }
    }
}

/// The name of a query type.
pub fn qtype_name(qtype: u16) -> String {
    let known = match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        64 => "SVCB",
        65 => "HTTPS",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{qtype}"),
    };
    known.to_string()
}

/// The name of a response code, for `error`.
pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "RCODE",
    }
}

#[derive(Debug, Clone)]
struct Query {
    msg: Message,
    ts: i64,
    bytes: u64,
}

/// Counters of what could not be followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    pub malformed: u64,
    /// Responses with no query waiting (the capture missed it, or a late duplicate).
    pub orphans: u64,
    /// Queries dropped unanswered (the table's bound, or a retry with the same id).
    pub unanswered: u64,
}

/// Queries waiting for their answer, by (client, server, id).
#[derive(Debug, Default)]
pub struct Pairing {
    waiting: HashMap<(SocketAddr, SocketAddr, u16), Query>,
    pub stats: DnsStats,
}

/// Queries kept waiting before the oldest are dropped.
const MAX_WAITING: usize = 65_536;

impl Pairing {
    /// One message from `src` to `dst` seen at `ts`; a completed exchange goes to `out`.
    pub fn message(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        bytes: &[u8],
        ts: i64,
        out: &mut Vec<Record>,
    ) {
        let msg = match parse(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if !msg.response {
            if self.waiting.len() >= MAX_WAITING {
                if let Some(oldest) = self
                    .waiting
                    .iter()
                    .min_by_key(|(k, q)| (q.ts, **k))
                    .map(|(k, _)| *k)
                {
                    self.waiting.remove(&oldest);
                    self.stats.unanswered += 1;
                }
            }
            let previous = self.waiting.insert(
                (src, dst, msg.id),
                Query {
                    msg,
                    ts,
                    bytes: bytes.len() as u64,
                },
            );
            self.stats.unanswered += u64::from(previous.is_some());
            return;
        }
        let Some(q) = self.waiting.remove(&(dst, src, msg.id)) else {
            self.stats.orphans += 1;
            return;
        };
        out.push(Record {
            protocol: "dns",
            method: qtype_name(q.msg.qtype).into(),
            // Names are case-insensitive: the route, a label, is lower-case.
            route: q.msg.name.to_ascii_lowercase().into(),
            resource: q.msg.name.into(),
            host: None,
            status: Some(u16::from(msg.rcode)),
            error: (msg.rcode != 0).then(|| rcode_name(msg.rcode).into()),
            request_bytes: q.bytes,
            response_bytes: bytes.len() as u64,
            request_start: q.ts,
            request_end: q.ts,
            response_start: ts,
            response_end: ts,
            partial: false,
        });
    }

    /// Queries never answered, counted at the end.
    pub fn finish(&mut self) {
        self.stats.unanswered += self.waiting.len() as u64;
        self.waiting.clear();
    }
}

/// DNS over TCP: each message prefixed by its 2-byte length.
#[derive(Debug, Default)]
pub struct DnsTcp {
    pairing: Pairing,
}

/// Whether `data` starts like DNS over TCP (a length, then a plausible header).
pub fn looks_like_tcp(data: &[u8]) -> bool {
    if data.len() < 14 {
        return false;
    }
    let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let opcode = (data[4] >> 3) & 0xf;
    let qdcount = u16::from_be_bytes([data[6], data[7]]);
    (12..=4096).contains(&len) && opcode <= 5 && qdcount == 1
}

impl DnsTcp {
    /// Parses the framed messages buffered in `buf`, sent from `src` to `dst` (any two
    /// distinct addresses naming the connection's sides).
    pub fn on_data(
        &mut self,
        buf: &mut Input<'_>,
        src: SocketAddr,
        dst: SocketAddr,
        out: &mut Vec<Record>,
    ) {
        if buf.take_resync() {
            // Framing is lost with the bytes: skip to something that looks like a message.
            while buf.buffered() >= 14 && !looks_like_tcp(buf.data()) {
                buf.consume(1);
            }
        }
        loop {
            let data = buf.data();
            if data.len() < 2 {
                return;
            }
            let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
            if data.len() < 2 + len {
                return;
            }
            let ts = buf.time_at(buf.position() + 1 + len as u64).unwrap_or(0);
            let msg = data[2..2 + len].to_vec();
            buf.consume(2 + len);
            self.pairing.message(src, dst, &msg, ts, out);
        }
    }

    pub fn stats(&self) -> DnsStats {
        self.pairing.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamBuf;

    /// A query for `name` of type `qtype` with id `id`.
    pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![
            (id >> 8) as u8,
            id as u8,
            0x01,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
        m
    }

    fn answer(q: &[u8], rcode: u8) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] |= 0x80;
        m[3] = (m[3] & 0xf0) | rcode;
        m[7] = 1;
        // An answer naming the question by a pointer to offset 12.
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
        m
    }

    #[test]
    fn queries_and_answers_pair_by_id_and_addresses() {
        let (c, s): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5353".parse().unwrap(),
            "10.0.0.53:53".parse().unwrap(),
        );
        let mut p = Pairing::default();
        let mut out = Vec::new();
        let q1 = query(7, "Shop.Example.com", 1);
        let q2 = query(8, "missing.example", 28);
        p.message(c, s, &q1, 100, &mut out);
        p.message(c, s, &q2, 110, &mut out);
        p.message(s, c, &answer(&q2, 3), 150, &mut out);
        p.message(s, c, &answer(&q1, 0), 300, &mut out);
        p.message(s, c, &answer(&q1, 0), 301, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|r| {
                (
                    r.method.as_str(),
                    r.resource.as_str(),
                    r.status,
                    r.error.as_deref(),
                    r.duration_us(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("AAAA", "missing.example", Some(3), Some("NXDOMAIN"), 40),
                ("A", "Shop.Example.com", Some(0), None, 200)
            ]
        );
        assert_eq!(p.stats.orphans, 1, "the duplicate answer");
    }

    #[test]
    fn names_with_pointers_and_lies() {
        let q = query(1, "a.b", 1);
        let a = answer(&q, 0);
        assert_eq!(parse(&a).unwrap().name, "a.b");
        // A pointer to itself, a pointer forward, a label past the end.
        let mut looped = q.clone();
        looped[12] = 0xc0;
        looped[13] = 12;
        assert_eq!(parse(&looped), Err(DnsError::BadPointer));
        let mut cut = q.clone();
        cut[12] = 60;
        assert_eq!(parse(&cut), Err(DnsError::Truncated));
        assert_eq!(parse(&q[..5]), Err(DnsError::Short));
        assert_eq!(qtype_name(65), "HTTPS");
        assert_eq!(qtype_name(999), "TYPE999");
    }

    #[test]
    fn dns_over_tcp_is_framed_by_length() {
        let (c, s): (SocketAddr, SocketAddr) = (
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.53:53".parse().unwrap(),
        );
        let q = query(9, "x.y", 1);
        let mut framed = vec![0, q.len() as u8];
        framed.extend_from_slice(&q);
        assert!(looks_like_tcp(&framed));
        let (mut cb, mut sb) = (StreamBuf::new(4096), StreamBuf::new(4096));
        let mut d = DnsTcp::default();
        let mut out = Vec::new();
        cb.push(0, &framed[..5], 1);
        d.on_data(&mut cb.view(), c, s, &mut out);
        cb.push(5, &framed[5..], 2);
        d.on_data(&mut cb.view(), c, s, &mut out);
        let a = answer(&q, 0);
        let mut framed_a = vec![0, a.len() as u8];
        framed_a.extend_from_slice(&a);
        sb.push(0, &framed_a, 9);
        d.on_data(&mut sb.view(), s, c, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].request_start, out[0].response_end), (2, 9));
    }
}
