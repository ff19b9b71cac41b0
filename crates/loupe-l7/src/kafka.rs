//! Kafka: size-prefixed requests (api key, version, correlation id, client id; header v2
//! with tagged fields for flexible versions) and responses (correlation id; header v1 for
//! flexible versions, except ApiVersions), paired by correlation id. The topic of Produce
//! and Fetch requests (classic and flexible encodings) and the error code of the common
//! responses are read; bodies are skipped as they stream.

use std::collections::HashMap;

use crate::record::Record;
use crate::stream::Input;

/// Largest message followed whole (for its topic or error); larger ones stream through.
const MAX_PARSED: usize = 1 << 20;
const MAX_WAITING: usize = 4096;

#[derive(Debug, Clone)]
struct Request {
    api: i16,
    version: i16,
    topic: Option<String>,
    start: i64,
    end: i64,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaStats {
    pub malformed: u64,
    pub orphans: u64,
    pub unanswered: u64,
}

/// One connection's Kafka state.
#[derive(Debug, Default)]
pub struct Kafka {
    waiting: HashMap<i32, Request>,
    /// A message being skipped: (bytes left, side's message so far).
    skip: [u64; 2],
    pub stats: KafkaStats,
}

/// The name of an API key.
pub fn api_name(key: i16) -> &'static str {
    match key {
        0 => "Produce",
        1 => "Fetch",
        2 => "ListOffsets",
        3 => "Metadata",
        8 => "OffsetCommit",
        9 => "OffsetFetch",
        10 => "FindCoordinator",
        11 => "JoinGroup",
        12 => "Heartbeat",
        13 => "LeaveGroup",
        14 => "SyncGroup",
        15 => "DescribeGroups",
        16 => "ListGroups",
        17 => "SaslHandshake",
        18 => "ApiVersions",
        19 => "CreateTopics",
        20 => "DeleteTopics",
        22 => "InitProducerId",
        32 => "DescribeConfigs",
        36 => "SaslAuthenticate",
        _ => "Other",
    }
}

/// The first version of each API whose headers carry tagged fields.
fn flexible(api: i16, version: i16) -> bool {
    let from = match api {
        0 => 9,
        1 => 12,
        2 => 6,
        3 => 9,
        8 => 8,
        9 => 6,
        10 => 3,
        11 => 6,
        12 => 4,
        13 => 4,
        14 => 4,
        15 => 5,
        16 => 3,
        18 => 3,
        19 => 5,
        20 => 4,
        22 => 2,
        32 => 4,
        36 => 2,
        _ => i16::MAX,
    };
    version >= from
}

/// Whether `data` starts like a Kafka request.
pub fn looks_like(data: &[u8]) -> bool {
    if data.len() < 14 {
        return false;
    }
    let size = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let api = i16::from_be_bytes([data[4], data[5]]);
    let version = i16::from_be_bytes([data[6], data[7]]);
    let client_len = i16::from_be_bytes([data[12], data[13]]);
    (10..(1 << 24)).contains(&size)
        && api_name(api) != "Other"
        && (0..=16).contains(&version)
        && (-1..=256).contains(&client_len)
        && data[14..]
            .iter()
            .take(client_len.max(0) as usize)
            .all(|b| b.is_ascii_graphic())
}

/// A cursor over a message body.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = *self.take(1)?.first()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn string(&mut self, compact: bool) -> Option<Option<&'a [u8]>> {
        let len = if compact {
            self.uvarint()? as i64 - 1
        } else {
            i64::from(self.i16()?)
        };
        if len < 0 {
            return Some(None);
        }
        self.take(len as usize).map(Some)
    }
    fn array_len(&mut self, compact: bool) -> Option<i64> {
        if compact {
            Some(self.uvarint()? as i64 - 1)
        } else {
            self.i32().map(i64::from)
        }
    }
    fn tags(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Some(())
    }
}

/// The first topic a Produce or Fetch request names (after the request header).
fn topic(api: i16, version: i16, body: &[u8]) -> Option<String> {
    let compact = flexible(api, version);
    let mut c = Cursor(body);
    match api {
        0 => {
            if version >= 3 {
                c.string(compact)?;
            }
            c.i16()?;
            c.i32()?;
        }
        1 => {
            if version <= 14 {
                c.i32()?;
            }
            c.i32()?;
            c.i32()?;
            if version >= 3 {
                c.i32()?;
            }
            if version >= 4 {
                c.take(1)?;
            }
            if version >= 7 {
                c.i32()?;
                c.i32()?;
            }
            if version >= 13 {
                // Topics by id from v13: no name on the wire.
                return None;
            }
        }
        _ => return None,
    }
    if c.array_len(compact)? < 1 {
        return None;
    }
    let name = c.string(compact)??;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The error code of a response body (after its header), where the API puts one early.
fn error_code(api: i16, version: i16, body: &[u8]) -> Option<i16> {
    let compact = flexible(api, version);
    let mut c = Cursor(body);
    match api {
        // ApiVersions: the error code first.
        18 => c.i16(),
        // Throttle time, then the error code.
        1 if version >= 7 => {
            c.i32()?;
            c.i16()
        }
        11..=14 if version >= 1 => {
            c.i32()?;
            c.i16()
        }
        // Produce: the first partition of the first topic.
        0 => {
            if c.array_len(compact)? < 1 {
                return None;
            }
            c.string(compact)?;
            if c.array_len(compact)? < 1 {
                return None;
            }
            c.i32()?;
            c.i16()
        }
        _ => None,
    }
}

impl Kafka {
    pub fn on_request(&mut self, buf: &mut Input<'_>) {
        if buf.take_loss().is_some() {
            self.skip[0] = 0;
            resync(buf);
        }
        loop {
            if buf.skip_pending(&mut self.skip[0]) {
                return;
            }
            let data = buf.data();
            if data.len() < 14 {
                return;
            }
            let size = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            if size < 10 {
                self.stats.malformed += 1;
                buf.consume(1);
                resync(buf);
                continue;
            }
            let total = 4 + size as usize;
            let whole = data.len() >= total;
            if !whole && total <= MAX_PARSED {
                return;
            }
            let api = i16::from_be_bytes([data[4], data[5]]);
            let version = i16::from_be_bytes([data[6], data[7]]);
            let correlation = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
            let topic = whole.then(|| {
                let mut c = Cursor(&data[12..total]);
                c.string(false)?;
                if flexible(api, version) {
                    c.tags()?;
                }
                topic(api, version, c.0)
            });
            let start = buf.time_at(buf.position()).unwrap_or(0);
            let end = buf
                .time_at(buf.position() + total as u64 - 1)
                .unwrap_or(start);
            consume(&mut self.skip[0], buf, total);
            if self.waiting.len() >= MAX_WAITING {
                self.waiting.clear();
                self.stats.unanswered += MAX_WAITING as u64;
            }
            self.waiting.insert(
                correlation,
                Request {
                    api,
                    version,
                    topic: topic.flatten(),
                    start,
                    end,
                    bytes: total as u64,
                },
            );
        }
    }

    pub fn on_response(&mut self, buf: &mut Input<'_>, out: &mut Vec<Record>) {
        if buf.take_loss().is_some() {
            self.skip[1] = 0;
            // Responses carry their correlation id: the next whole one pairs again.
            let n = buf.buffered();
            buf.consume(n);
            return;
        }
        loop {
            if buf.skip_pending(&mut self.skip[1]) {
                return;
            }
            let data = buf.data();
            if data.len() < 8 {
                return;
            }
            let size = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            if size < 4 {
                self.stats.malformed += 1;
                let n = buf.buffered();
                buf.consume(n);
                return;
            }
            let total = 4 + size as usize;
            let whole = data.len() >= total;
            if !whole && total <= MAX_PARSED {
                return;
            }
            let correlation = i32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            let Some(req) = self.waiting.remove(&correlation) else {
                self.stats.orphans += 1;
                consume(&mut self.skip[1], buf, total);
                continue;
            };
            let error = whole.then(|| {
                let mut c = Cursor(&data[8..total]);
                // Response header v1 (tagged fields) for flexible versions, but ApiVersions.
                if flexible(req.api, req.version) && req.api != 18 {
                    c.tags()?;
                }
                error_code(req.api, req.version, c.0)
            });
            let start = buf.time_at(buf.position()).unwrap_or(0);
            let end = buf
                .time_at(buf.position() + total as u64 - 1)
                .unwrap_or(start);
            consume(&mut self.skip[1], buf, total);
            let code = error.flatten();
            let name = api_name(req.api);
            out.push(Record {
                protocol: "kafka",
                method: name.into(),
                resource: req.topic.clone().unwrap_or_default().into(),
                route: req.topic.unwrap_or_default().into(),
                host: None,
                status: code.map(|c| c as u16),
                error: code.filter(|c| *c != 0).map(|c| c.to_string().into()),
                request_bytes: req.bytes,
                response_bytes: total as u64,
                request_start: req.start,
                request_end: req.end,
                response_start: start,
                response_end: end,
                partial: false,
            });
        }
    }

    pub fn on_close(&mut self) {
        self.stats.unanswered += self.waiting.len() as u64;
        self.waiting.clear();
    }
}

/// Consumes a message, or what is buffered of it (the rest skipped as it comes).
fn consume(skip: &mut u64, buf: &mut Input<'_>, total: usize) {
    let have = buf.buffered().min(total);
    buf.consume(have);
    *skip = (total - have) as u64;
}

fn resync(buf: &mut Input<'_>) {
    let data = buf.data();
    let n = (0..data.len())
        .find(|&i| looks_like(&data[i..]))
        .unwrap_or_else(|| data.len().saturating_sub(14));
    buf.consume(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamBuf;

    fn request(api: i16, version: i16, id: i32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&api.to_be_bytes());
        m.extend_from_slice(&version.to_be_bytes());
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&3i16.to_be_bytes());
        m.extend_from_slice(b"app");
        if flexible(api, version) {
            m.push(0);
        }
        m.extend_from_slice(body);
        let mut out = (m.len() as i32).to_be_bytes().to_vec();
        out.extend(m);
        out
    }

    fn response(id: i32, body: &[u8]) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(body);
        let mut out = (m.len() as i32).to_be_bytes().to_vec();
        out.extend(m);
        out
    }

    #[test]
    fn produce_and_fetch_pair_by_correlation_id_out_of_order() {
        // Produce v2: acks, timeout, [topic "orders", …].
        let mut produce = vec![0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 1, 0, 6];
        produce.extend_from_slice(b"orders");
        // Fetch v12 (flexible): replica, wait, min, max, isolation, session, epoch,
        // compact topics [compact "events"].
        let mut fetch = vec![
            0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0xf4, 0, 0, 0, 1, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 2, 7,
        ];
        fetch.extend_from_slice(b"events");
        let (mut c, mut s) = (StreamBuf::new(1 << 16), StreamBuf::new(1 << 16));
        let (mut k, mut out) = (Kafka::default(), Vec::new());
        let reqs = [request(0, 2, 7, &produce), request(1, 12, 8, &fetch)].concat();
        assert!(looks_like(&reqs));
        c.push(0, &reqs, 1);
        k.on_request(&mut c.view());
        // The fetch answers first: throttle 0, error 0 (flexible header: a tag byte).
        let mut fetch_resp = vec![0];
        fetch_resp.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        // Produce v2 response: [topic "orders" [partition 0, error 3]].
        let mut produce_resp = vec![0, 0, 0, 1, 0, 6];
        produce_resp.extend_from_slice(b"orders");
        produce_resp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 3]);
        let resps = [response(8, &fetch_resp), response(7, &produce_resp)].concat();
        s.push(0, &resps, 5);
        k.on_response(&mut s.view(), &mut out);
        let got: Vec<(&str, &str, Option<&str>)> = out
            .iter()
            .map(|r| (r.method.as_str(), r.resource.as_str(), r.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![("Fetch", "events", None), ("Produce", "orders", Some("3"))]
        );
    }
}
