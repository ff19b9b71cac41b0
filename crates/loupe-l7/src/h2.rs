//! HTTP/2 (cleartext, h2c) and gRPC over it: frames read per direction, header blocks
//! (HEADERS + CONTINUATION, padding and priority stripped) decoded by HPACK
//! (`loona-hpack`, one decoder per direction), streams tracked by id until both sides
//! end them (or one resets), gRPC status from trailers. DATA payloads are skipped as they
//! stream. Joining mid-connection loses the HPACK dynamic table: that side's headers are
//! then unknown, and its streams are still counted (records marked partial).

use std::collections::BTreeMap;

use crate::record::{Record, Text};
use crate::route::normalize;
use crate::stream::Input;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest header block (or non-DATA frame) followed.
const MAX_BLOCK: usize = 256 * 1024;
/// Largest frame length accepted (the protocol's maximum).
const MAX_FRAME: usize = (1 << 24) - 1;
/// Streams tracked per connection at once.
const MAX_STREAMS: usize = 4096;

/// An HPACK decoder with bounds, for one direction.
pub struct HeaderDecoder {
    inner: loona_hpack::Decoder<'static>,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        HeaderDecoder {
            inner: loona_hpack::Decoder::new(),
        }
    }
}

impl std::fmt::Debug for HeaderDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderDecoder")
    }
}

impl HeaderDecoder {
    /// Decodes what it can of a block: the headers before the first it cannot read (an
    /// entry of a table built before the capture), and whether it read them all.
    pub fn decode_partial(&mut self, block: &[u8]) -> (Vec<(String, String)>, bool) {
        let mut headers = Vec::new();
        if block.len() > MAX_BLOCK {
            return (headers, false);
        }
        let complete = self
            .inner
            .decode_with_cb(block, |n, v| {
                headers.push((
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ));
            })
            .is_ok();
        (headers, complete)
    }

    /// Decodes one header block into (name, value) pairs.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        if block.len() > MAX_BLOCK {
            return Err("header block too large".into());
        }
        let headers = self
            .inner
            .decode(block)
            .map_err(|e| format!("HPACK: {e:?}"))?;
        Ok(headers
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect())
    }
}

#[derive(Debug, Default, Clone)]
struct Side {
    start: Option<i64>,
    end: i64,
    bytes: u64,
    done: bool,
}

#[derive(Debug, Default, Clone)]
struct Stream {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
    grpc: bool,
    status: Option<u16>,
    grpc_status: Option<u16>,
    reset: bool,
    unknown_headers: bool,
    request: Side,
    response: Side,
}

/// Counters of what could not be followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct H2Stats {
    pub malformed: u64,
    /// Header blocks HPACK could not decode (joined mid-connection, or lost data).
    pub undecodable_headers: u64,
    pub streams: u64,
    /// Streams still open at the end.
    pub unfinished: u64,
}

#[derive(Debug, Default)]
struct Direction {
    decoder: HeaderDecoder,
    preface_checked: bool,
    /// A header block being gathered: (stream, end of stream, fragments).
    block: Option<(u32, bool, Vec<u8>)>,
    /// DATA payload still to skip: (stream, bytes left, end of stream after it).
    skip: Option<(u32, u64, bool)>,
}

/// One connection's HTTP/2 state.
#[derive(Debug, Default)]
pub struct H2 {
    sides: [Direction; 2],
    streams: BTreeMap<u32, Stream>,
    pub stats: H2Stats,
}

/// Whether the client's bytes start an HTTP/2 connection (its preface), or the bytes
/// look like HTTP/2 frames (two plausible frame headers in a row: joined mid-way).
pub fn looks_like(data: &[u8]) -> bool {
    let preface_part = data.len() >= 4 && data.len() < PREFACE.len() && PREFACE.starts_with(data);
    if data.starts_with(PREFACE) || preface_part {
        return true;
    }
    match plausible(data) {
        Some(first) if data.len() >= first + 9 => plausible(&data[first..]).is_some(),
        _ => false,
    }
}

/// A plausible frame header at the start of `d`: its whole length.
fn plausible(d: &[u8]) -> Option<usize> {
    if d.len() < 9 {
        return None;
    }
    let len = (usize::from(d[0]) << 16) | (usize::from(d[1]) << 8) | usize::from(d[2]);
    let kind = d[3];
    let stream = u32::from_be_bytes([d[5] & 0x7f, d[6], d[7], d[8]]);
    let ok = kind <= 9
        && len <= 16_384 * 4
        && (kind != 4 || (stream == 0 && len % 6 == 0))
        && (kind != 0 && kind != 1 || stream != 0);
    ok.then_some(9 + len)
}

/// Whether a frame starts at `d[0]` after lost bytes: a plausible header whose frame
/// ends the buffer exactly or is followed by another plausible header.
fn frame_starts(d: &[u8]) -> bool {
    match plausible(d) {
        Some(n) if d.len() == n => true,
        Some(n) if d.len() >= n + 9 => plausible(&d[n..]).is_some(),
        _ => false,
    }
}

impl H2 {
    /// Parses one direction's frames (`d`: 0 client, 1 server); finished streams go to `out`.
    pub fn on_data(&mut self, d: usize, buf: &mut Input<'_>, out: &mut Vec<Record>) {
        if let Some(unseen) = buf.take_loss() {
            let side = &mut self.sides[d];
            match &mut side.skip {
                Some((_, left, _)) if *left >= unseen => *left -= unseen,
                _ => {
                    // Framing and the HPACK table are lost with the bytes.
                    side.skip = None;
                    side.block = None;
                    resync(buf);
                }
            }
        }
        if d == 0 && !self.sides[0].preface_checked {
            let data = buf.data();
            if data.len() < PREFACE.len() && PREFACE.starts_with(data) {
                return;
            }
            if data.starts_with(PREFACE) {
                buf.consume(PREFACE.len());
            }
            // Joined mid-connection, the table was built before we came: blocks that
            // refer to entries we never saw fail to decode (counted, the stream's headers
            // unknown); the others (static entries, literals) still decode.
            self.sides[0].preface_checked = true;
        }
        loop {
            if let Some((stream, left, end_stream)) = self.sides[d].skip {
                let n = left.min(buf.buffered() as u64);
                if n > 0 {
                    self.account(d, stream, buf, n as usize);
                }
                let left = left - n;
                if left > 0 {
                    self.sides[d].skip = Some((stream, left, end_stream));
                    return;
                }
                self.sides[d].skip = None;
                if end_stream {
                    self.end_side(d, stream, out);
                }
            }
            let data = buf.data();
            if data.len() < 9 {
                return;
            }
            let len =
                (usize::from(data[0]) << 16) | (usize::from(data[1]) << 8) | usize::from(data[2]);
            let (kind, flags) = (data[3], data[4]);
            let stream = u32::from_be_bytes([data[5] & 0x7f, data[6], data[7], data[8]]);
            if len > MAX_FRAME || kind > 9 {
                self.stats.malformed += 1;
                buf.consume(1);
                resync(buf);
                continue;
            }
            if kind == 0 {
                // DATA: skip the payload as it streams.
                self.account(d, stream, buf, 9);
                self.sides[d].skip = Some((stream, len as u64, flags & 0x1 != 0));
                continue;
            }
            if len > MAX_BLOCK {
                self.stats.malformed += 1;
                self.sides[d].skip = Some((0, (9 + len) as u64, false));
                continue;
            }
            if data.len() < 9 + len {
                return;
            }
            let payload = data[9..9 + len].to_vec();
            self.account(d, stream, buf, 9 + len);
            match kind {
                1 => {
                    let Some(fragment) = strip(&payload, flags) else {
                        self.stats.malformed += 1;
                        continue;
                    };
                    self.sides[d].block = Some((stream, flags & 0x1 != 0, fragment.to_vec()));
                    if flags & 0x4 != 0 {
                        self.headers_done(d, out);
                    }
                }
                9 => {
                    if let Some((_, _, block)) = &mut self.sides[d].block {
                        block.extend_from_slice(&payload);
                        if block.len() > MAX_BLOCK {
                            self.sides[d].block = None;
                            self.stats.malformed += 1;
                            continue;
                        }
                    }
                    if flags & 0x4 != 0 {
                        self.headers_done(d, out);
                    }
                }
                3 => {
                    if let Some(s) = self.streams.get_mut(&stream) {
                        s.reset = true;
                        s.request.done = true;
                        s.response.done = true;
                    }
                    self.finish_if_done(stream, out);
                }
                _ => {}
            }
        }
    }

    /// Counts `n` bytes of stream `stream` sent by side `d` and consumes them.
    fn account(&mut self, d: usize, stream: u32, buf: &mut Input<'_>, n: usize) {
        let (first, last) = (
            buf.time_at(buf.position()).unwrap_or(0),
            buf.time_at(buf.position() + n as u64 - 1).unwrap_or(0),
        );
        if stream != 0 {
            if let Some(s) = self.stream(stream) {
                let side = if d == 0 {
                    &mut s.request
                } else {
                    &mut s.response
                };
                side.start.get_or_insert(first);
                side.end = side.end.max(last);
                side.bytes += n as u64;
            }
        }
        buf.consume(n);
    }

    fn stream(&mut self, id: u32) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            if self.streams.len() >= MAX_STREAMS {
                self.stats.unfinished += 1;
                let oldest = *self.streams.keys().next()?;
                self.streams.remove(&oldest);
            }
            self.stats.streams += 1;
            self.streams.insert(id, Stream::default());
        }
        self.streams.get_mut(&id)
    }

    fn headers_done(&mut self, d: usize, out: &mut Vec<Record>) {
        let Some((id, end_stream, block)) = self.sides[d].block.take() else {
            return;
        };
        let (headers, complete) = self.sides[d].decoder.decode_partial(&block);
        if !complete {
            self.stats.undecodable_headers += 1;
        }
        let Some(s) = self.stream(id) else {
            return;
        };
        s.unknown_headers |= !complete;
        for (name, value) in headers {
            match (d, name.as_str()) {
                (0, ":method") => s.method = Some(value),
                (0, ":path") => s.path = Some(value),
                (0, ":authority") => s.authority = Some(value),
                (_, "content-type") if value.starts_with("application/grpc") => s.grpc = true,
                (1, ":status") => s.status = value.parse().ok(),
                (1, "grpc-status") => s.grpc_status = value.parse().ok(),
                _ => {}
            }
        }
        if end_stream {
            self.end_side(d, id, out);
        }
    }

    fn end_side(&mut self, d: usize, id: u32, out: &mut Vec<Record>) {
        if let Some(s) = self.streams.get_mut(&id) {
            if d == 0 {
                s.request.done = true;
            } else {
                s.response.done = true;
            }
        }
        self.finish_if_done(id, out);
    }

    fn finish_if_done(&mut self, id: u32, out: &mut Vec<Record>) {
        let done = self
            .streams
            .get(&id)
            .is_some_and(|s| s.response.done && (s.request.done || s.reset));
        if done {
            if let Some(s) = self.streams.remove(&id) {
                out.push(record(s));
            }
        }
    }

    /// The connection ended: streams with an answer are reported, the rest counted.
    pub fn on_close(&mut self, out: &mut Vec<Record>) {
        for (_, s) in std::mem::take(&mut self.streams) {
            if s.response.start.is_some() && (s.status.is_some() || s.grpc_status.is_some()) {
                out.push(record(s));
            } else {
                self.stats.unfinished += 1;
            }
        }
    }
}

/// A HEADERS payload without its padding and priority fields.
fn strip(payload: &[u8], flags: u8) -> Option<&[u8]> {
    let mut p = payload;
    let mut pad = 0usize;
    if flags & 0x8 != 0 {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    if flags & 0x20 != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

/// After lost bytes: to the next place two plausible frame headers follow each other.
fn resync(buf: &mut Input<'_>) {
    let data = buf.data();
    let n = (0..data.len())
        .find(|&i| frame_starts(&data[i..]))
        .unwrap_or_else(|| data.len().saturating_sub(64));
    buf.consume(n);
}

/// The gRPC status code's name.
pub fn grpc_code_name(code: u16) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

fn record(s: Stream) -> Record {
    let path: Text = s.path.as_deref().unwrap_or_default().into();
    let (protocol, route, status, error) = if s.grpc {
        let error = match (s.grpc_status, s.reset) {
            (Some(0), _) => None,
            (Some(c), _) => Some(grpc_code_name(c).into()),
            (None, true) => Some("RST_STREAM".into()),
            (None, false) => None,
        };
        ("grpc", path.clone(), s.grpc_status, error)
    } else {
        let error = match (s.status, s.reset) {
            (Some(c), _) if c >= 500 => Some("5xx".into()),
            (None, true) => Some("RST_STREAM".into()),
            _ => None,
        };
        (
            "http2",
            if path.is_empty() {
                Text::default()
            } else {
                normalize(&path)
            },
            s.status,
            error,
        )
    };
    let request_start = s.request.start.or(s.response.start).unwrap_or(0);
    let response_start = s.response.start.unwrap_or(request_start);
    Record {
        protocol,
        method: s.method.as_deref().unwrap_or_default().into(),
        resource: path,
        route,
        host: s.authority.map(Text::from),
        status,
        error,
        request_bytes: s.request.bytes,
        response_bytes: s.response.bytes,
        request_start,
        request_end: s.request.end.max(request_start),
        response_start,
        response_end: s.response.end.max(response_start),
        partial: s.unknown_headers || s.method.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamBuf;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn block(headers: &[(&str, &str)], enc: &mut loona_hpack::Encoder<'static>) -> Vec<u8> {
        enc.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn a_grpc_call_and_an_http2_request_on_one_connection() {
        let (mut req_enc, mut resp_enc) =
            (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
        let mut client = PREFACE.to_vec();
        client.extend(frame(4, 0, 0, &[]));
        let h = block(
            &[
                (":method", "POST"),
                (":path", "/shop.Cart/Add"),
                (":authority", "cart:50051"),
                ("content-type", "application/grpc"),
            ],
            &mut req_enc,
        );
        // A header block split over HEADERS and CONTINUATION.
        client.extend(frame(1, 0, 1, &h[..3]));
        client.extend(frame(9, 0x4, 1, &h[3..]));
        client.extend(frame(0, 0x1, 1, &[0, 0, 0, 0, 2, 8, 1]));
        let h3 = block(
            &[
                (":method", "GET"),
                (":path", "/items/42"),
                (":authority", "cart"),
            ],
            &mut req_enc,
        );
        client.extend(frame(1, 0x5, 3, &h3));
        let mut server = frame(4, 0, 0, &[]);
        server.extend(frame(
            1,
            0x4,
            1,
            &block(
                &[(":status", "200"), ("content-type", "application/grpc")],
                &mut resp_enc,
            ),
        ));
        server.extend(frame(0, 0, 1, &[0, 0, 0, 0, 0]));
        server.extend(frame(
            1,
            0x5,
            1,
            &block(&[("grpc-status", "14")], &mut resp_enc),
        ));
        server.extend(frame(
            1,
            0x5,
            3,
            &block(&[(":status", "404")], &mut resp_enc),
        ));
        let (mut c, mut s) = (StreamBuf::new(1 << 16), StreamBuf::new(1 << 16));
        let (mut h2, mut out) = (H2::default(), Vec::new());
        // Byte by byte: framing survives any split.
        for (i, b) in client.iter().enumerate() {
            c.push(i as u64, &[*b], i as i64);
            h2.on_data(0, &mut c.view(), &mut out);
        }
        s.push(0, &server, 10_000);
        h2.on_data(1, &mut s.view(), &mut out);
        type Seen<'a> = (&'a str, &'a str, &'a str, Option<u16>, Option<&'a str>);
        let got: Vec<Seen> = out
            .iter()
            .map(|r| {
                (
                    r.protocol,
                    r.method.as_str(),
                    r.route.as_str(),
                    r.status,
                    r.error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "grpc",
                    "POST",
                    "/shop.Cart/Add",
                    Some(14),
                    Some("UNAVAILABLE")
                ),
                ("http2", "GET", "/items/{id}", Some(404), None)
            ]
        );
        assert_eq!(h2.stats.undecodable_headers, 0);
    }

    #[test]
    fn joining_mid_connection_counts_streams_with_unknown_headers() {
        let mut enc = loona_hpack::Encoder::new();
        // Headers referring to a dynamic table the capture never saw.
        let _ = block(&[(":method", "GET"), ("x-a", "1")], &mut enc);
        let again = block(&[(":method", "GET"), ("x-a", "1")], &mut enc);
        let client = frame(1, 0x5, 5, &again);
        let server = frame(
            1,
            0x5,
            5,
            &block(&[(":status", "200")], &mut loona_hpack::Encoder::new()),
        );
        let (mut c, mut s) = (StreamBuf::new(1 << 16), StreamBuf::new(1 << 16));
        let (mut h2, mut out) = (H2::default(), Vec::new());
        c.push(0, &client, 1);
        h2.on_data(0, &mut c.view(), &mut out);
        s.push(0, &server, 2);
        h2.on_data(1, &mut s.view(), &mut out);
        h2.on_close(&mut out);
        assert_eq!(h2.stats.streams, 1);
        assert!(out.iter().all(|r| r.partial));
    }
}
