//! HTTP/1.x: heads parsed with `httparse` as bytes arrive, bodies framed by
//! `Content-Length`, `chunked` or the connection's close (and skipped, never kept), and
//! responses paired with requests first in, first out (pipelining keeps order).
//! `HEAD`, 1xx, 204 and 304 have no body; `100 Continue` is not the answer; `101` and a
//! successful `CONNECT` turn the connection into a tunnel, which is not parsed further.
//! After lost data each side looks for the next line that starts a message.

use std::collections::VecDeque;
use std::mem::MaybeUninit;

use crate::record::{as_text, Record, Text};
use crate::route::normalize;
use crate::stream::Input;

const MAX_HEADERS: usize = 96;
/// A head longer than this is not one we follow: skip to the next message.
const MAX_HEAD: usize = 64 * 1024;
/// Requests kept waiting for a response; older ones are dropped (counted).
const MAX_WAITING: usize = 256;

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Debug)]
enum Step {
    Done,
    NeedMore,
    Invalid,
}

#[derive(Debug, Clone)]
struct Request {
    method: Text,
    target: Text,
    host: Option<Text>,
    start: i64,
    end: i64,
    bytes: u64,
}

#[derive(Debug)]
struct Response {
    status: u16,
    start: i64,
    end: i64,
    bytes: u64,
    body: Body,
    request: Option<Request>,
    /// A CONNECT that succeeded: after this response the bytes are a tunnel.
    tunnel_after: bool,
    /// The answer to a request dropped from the full queue: read, not recorded.
    dropped: bool,
}

/// Counters of what could not be followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http1Stats {
    pub malformed: u64,
    /// Requests never answered (dropped past the queue's bound, or at close).
    pub unanswered: u64,
    /// Responses whose request was not seen.
    pub orphans: u64,
    /// Responses whose body ended early (the connection closed, or the capture did).
    pub cut_short: u64,
}

/// One connection's HTTP/1 state.
#[derive(Debug, Default)]
pub struct Http1 {
    reading: Option<(Request, Body)>,
    waiting: VecDeque<Request>,
    response: Option<Response>,
    /// 101 or CONNECT: the rest is not HTTP.
    tunnel: bool,
    /// A request was answered before its body ended: find the next request.
    skip_request_body: bool,
    /// Responses still to come for requests dropped from the full queue (pairing them
    /// with the requests after would shift every later pair).
    dropped_responses: u64,
    /// The request line of a head not complete yet (or whose rest was never captured).
    partial_head: Option<Request>,
    /// The status line of a response head not complete yet: (status, first, last byte time, bytes).
    partial_status: Option<(u16, i64, i64, u64)>,
    pub stats: Http1Stats,
}

/// Whether `data` starts like an HTTP/1 request (for protocol inference): a method, and
/// a request line that ends with the version (`GET k` is a Redis inline command). A
/// line too long to have ended yet is taken on its method.
pub fn looks_like_request(data: &[u8]) -> bool {
    let method = METHODS
        .iter()
        .any(|m| data.len() > m.len() && data.starts_with(m.as_bytes()) && data[m.len()] == b' ');
    if !method {
        return false;
    }
    match data.iter().position(|b| *b == b'\n') {
        Some(end) => {
            let line = data[..end].strip_suffix(b"\r").unwrap_or(&data[..end]);
            line.len() > 9 && line[line.len() - 9..].starts_with(b" HTTP/1.")
        }
        None => data.len() >= 2048,
    }
}

/// Whether `data` starts like an HTTP/1 response.
pub fn looks_like_response(data: &[u8]) -> bool {
    data.starts_with(b"HTTP/1.")
}

impl Http1 {
    pub fn is_tunnel(&self) -> bool {
        self.tunnel
    }

    /// Parses what the client sent.
    pub fn on_request(&mut self, buf: &mut Input<'_>) {
        if self.skip_tunnel(buf) {
            return;
        }
        let lost = buf.take_loss();
        let absorbed = match (&mut self.reading, lost) {
            (Some((req, body)), Some(unseen)) => absorb(body, unseen, &mut req.bytes),
            _ => false,
        };
        if (lost.is_some() && !absorbed) || std::mem::take(&mut self.skip_request_body) {
            self.reading = None;
            skip_to(buf, looks_like_request);
        }
        loop {
            if let Some((req, body)) = &mut self.reading {
                let (mut bytes, mut end) = (req.bytes, req.end);
                let step = advance(body, buf, &mut bytes, &mut end);
                (req.bytes, req.end) = (bytes, end);
                match step {
                    Step::Done => {
                        let (req, _) = self.reading.take().expect("reading");
                        self.queue(req);
                        continue;
                    }
                    Step::NeedMore => return,
                    Step::Invalid => {
                        self.stats.malformed += 1;
                        self.reading = None;
                        skip_to(buf, looks_like_request);
                        continue;
                    }
                }
            }
            if buf.buffered() == 0 {
                return;
            }
            // Left uninitialised: httparse writes the ones it returns (a 3 KiB memset
            // per head otherwise).
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut head = httparse::Request::new(&mut []);
            match head.parse_with_uninit_headers(buf.data(), &mut headers) {
                Ok(httparse::Status::Complete(n)) => {
                    self.partial_head = None;
                    let start = buf.time_at(buf.position()).unwrap_or(0);
                    let end = buf.time_at(buf.position() + n as u64 - 1).unwrap_or(start);
                    let method = head.method.unwrap_or("");
                    let info = HeadInfo::of(head.headers);
                    let body = request_body(method, &info);
                    let req = Request {
                        target: head.path.unwrap_or("").into(),
                        host: info.host.map(Text::from),
                        method: method.into(),
                        start,
                        end,
                        bytes: n as u64,
                    };
                    buf.consume(n);
                    self.reading = Some((req, body));
                }
                Ok(httparse::Status::Partial) => {
                    if buf.buffered() > MAX_HEAD {
                        self.stats.malformed += 1;
                        buf.consume(1);
                        skip_to(buf, looks_like_request);
                        continue;
                    }
                    self.partial_head = request_line(buf);
                    return;
                }
                Err(_) => {
                    self.stats.malformed += 1;
                    buf.consume(1);
                    skip_to(buf, looks_like_request);
                }
            }
        }
    }

    fn queue(&mut self, req: Request) {
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
            self.dropped_responses += 1;
            self.stats.unanswered += 1;
        }
        self.waiting.push_back(req);
    }

    /// Parses what the server sent; answered requests go to `out`.
    pub fn on_response(&mut self, buf: &mut Input<'_>, out: &mut Vec<Record>) {
        if self.skip_tunnel(buf) {
            return;
        }
        let lost = buf.take_loss();
        let absorbed = match (&mut self.response, lost) {
            (Some(resp), Some(unseen)) => absorb(&mut resp.body, unseen, &mut resp.bytes),
            _ => false,
        };
        if lost.is_some() && !absorbed {
            // A lost response would shift every later pairing by one: start again.
            self.response = None;
            self.stats.unanswered += self.waiting.len() as u64;
            self.waiting.clear();
            self.dropped_responses = 0;
            skip_to(buf, looks_like_response);
        }
        loop {
            if let Some(resp) = &mut self.response {
                let (mut bytes, mut end) = (resp.bytes, resp.end);
                let step = advance(&mut resp.body, buf, &mut bytes, &mut end);
                (resp.bytes, resp.end) = (bytes, end);
                match step {
                    Step::Done => {
                        let resp = self.response.take().expect("response");
                        self.tunnel = resp.tunnel_after;
                        if !resp.dropped {
                            out.push(record(resp));
                        }
                        if self.skip_tunnel(buf) {
                            return;
                        }
                        continue;
                    }
                    Step::NeedMore => return,
                    Step::Invalid => {
                        self.stats.malformed += 1;
                        self.response = None;
                        skip_to(buf, looks_like_response);
                        continue;
                    }
                }
            }
            if buf.buffered() == 0 {
                return;
            }
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut head = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut head,
                buf.data(),
                &mut headers,
            );
            match parsed {
                Ok(httparse::Status::Complete(n)) => {
                    self.partial_status = None;
                    let status = head.code.unwrap_or(0);
                    let start = buf.time_at(buf.position()).unwrap_or(0);
                    let end = buf.time_at(buf.position() + n as u64 - 1).unwrap_or(start);
                    let info = HeadInfo::of(head.headers);
                    let dropped = self.dropped_responses > 0;
                    let asked = if dropped { None } else { self.waiting.front() };
                    let body = response_body(status, asked, &info);
                    buf.consume(n);
                    if (100..200).contains(&status) && status != 101 {
                        // `100 Continue` and friends: the final answer is still to come.
                        continue;
                    }
                    // The answer to a request dropped from the full queue is read, not
                    // paired. Otherwise, answered before its body was all seen (or the
                    // capture cut it): the request is done; its remaining bytes are skipped.
                    let request = if dropped {
                        self.dropped_responses -= 1;
                        None
                    } else {
                        let request = self.waiting.pop_front().or_else(|| {
                            let req = match self.reading.take() {
                                Some((req, _)) => req,
                                None => self.partial_head.take()?,
                            };
                            self.skip_request_body = true;
                            Some(req)
                        });
                        self.stats.orphans += u64::from(request.is_none());
                        request
                    };
                    let connect = request.as_ref().is_some_and(|r| r.method == "CONNECT");
                    self.response = Some(Response {
                        status,
                        start,
                        end,
                        bytes: n as u64,
                        body,
                        tunnel_after: !dropped
                            && (status == 101 || (connect && (200..300).contains(&status))),
                        request,
                        dropped,
                    });
                }
                Ok(httparse::Status::Partial) => {
                    if buf.buffered() > MAX_HEAD {
                        self.stats.malformed += 1;
                        buf.consume(1);
                        skip_to(buf, looks_like_response);
                        continue;
                    }
                    self.partial_status = status_line(buf);
                    return;
                }
                Err(_) => {
                    self.stats.malformed += 1;
                    buf.consume(1);
                    skip_to(buf, looks_like_response);
                }
            }
        }
    }

    /// The connection closed: a response read to the close is complete.
    pub fn on_close(&mut self, out: &mut Vec<Record>) {
        if let Some(resp) = self.response.take() {
            // Its head said what happened; a body cut short by the close is counted.
            if resp.body != Body::UntilClose {
                self.stats.cut_short += 1;
            }
            out.push(record(resp));
        } else if let Some((status, start, end, bytes)) = self.partial_status.take() {
            // Only the status line arrived: that is still the answer.
            self.stats.cut_short += 1;
            let request = self
                .waiting
                .pop_front()
                .or_else(|| self.reading.take().map(|(r, _)| r));
            out.push(record(Response {
                status,
                start,
                end,
                bytes,
                body: Body::None,
                request,
                tunnel_after: false,
                dropped: false,
            }));
        }
        self.stats.unanswered += self.waiting.len() as u64;
        self.waiting.clear();
    }

    fn skip_tunnel(&self, buf: &mut Input<'_>) -> bool {
        if self.tunnel {
            let n = buf.buffered();
            buf.consume(n);
            buf.take_resync();
        }
        self.tunnel
    }
}

/// The method and target of a head still incomplete, as a request so far.
fn request_line(buf: &Input<'_>) -> Option<Request> {
    let data = buf.data();
    let line = &data[..data.windows(2).position(|w| w == b"\r\n")?];
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !METHODS.contains(&method) || !version.starts_with("HTTP/1.") {
        return None;
    }
    let start = buf.time_at(buf.position())?;
    Some(Request {
        method: method.into(),
        target: target.into(),
        host: None,
        start,
        end: buf.time_at(buf.end().saturating_sub(1)).unwrap_or(start),
        bytes: data.len() as u64,
    })
}

/// The status of a response head still incomplete, with its times and size so far.
fn status_line(buf: &Input<'_>) -> Option<(u16, i64, i64, u64)> {
    let data = buf.data();
    let line = &data[..data.windows(2).position(|w| w == b"\r\n")?];
    let text = std::str::from_utf8(line).ok()?;
    let status: u16 = text.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let start = buf.time_at(buf.position())?;
    let end = buf.time_at(buf.end().saturating_sub(1)).unwrap_or(start);
    Some((status, start, end, data.len() as u64))
}

fn record(resp: Response) -> Record {
    let partial = resp.request.is_none();
    let req = resp.request.unwrap_or(Request {
        method: Text::default(),
        target: Text::default(),
        host: None,
        start: resp.start,
        end: resp.start,
        bytes: 0,
    });
    Record {
        protocol: "http1",
        route: if partial {
            Text::default()
        } else {
            normalize(&req.target)
        },
        method: req.method,
        resource: req.target,
        host: req.host,
        status: Some(resp.status),
        error: (resp.status >= 500).then(|| Text::const_new("5xx")),
        request_bytes: req.bytes,
        response_bytes: resp.bytes,
        request_start: req.start,
        request_end: req.end,
        response_start: resp.start,
        response_end: resp.end,
        partial,
    }
}

/// What a head's headers say of its framing, and its host: one pass over them. The
/// first `Host` and `Content-Length` count; any `Transfer-Encoding` naming `chunked` does.
#[derive(Debug, Default)]
struct HeadInfo<'a> {
    host: Option<&'a str>,
    length: Option<u64>,
    chunked: bool,
}

impl<'a> HeadInfo<'a> {
    fn of(headers: &[httparse::Header<'a>]) -> HeadInfo<'a> {
        let mut info = HeadInfo::default();
        for h in headers {
            // By length first: most headers are none of the three, and say so cheaply.
            let name = h.name.as_bytes();
            match name.len() {
                4 if info.host.is_none() && is_name(name, b"host") => {
                    info.host = as_text(h.value.trim_ascii());
                }
                14 if info.length.is_none() && is_name(name, b"content-length") => {
                    info.length = decimal(h.value.trim_ascii());
                }
                17 if is_name(name, b"transfer-encoding") => {
                    info.chunked |= h
                        .value
                        .split(|b| *b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                }
                _ => {}
            }
        }
        info
    }
}

/// Whether a header name (a token, as httparse checked) is `lower`, in any case. Setting
/// bit 5 lowercases letters and leaves the digits and `-` of these names as they are; no
/// other token character becomes one of them. A fixed length compares without branches.
fn is_name<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    let Ok(name) = <&[u8; N]>::try_from(name) else {
        return false;
    };
    (0..N).fold(0u8, |diff, i| diff | ((name[i] | 0x20) ^ lower[i])) == 0
}

/// A decimal number, all digits (what `u64::from_str` takes, without a sign).
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        let d = d.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn request_body(method: &str, info: &HeadInfo<'_>) -> Body {
    if info.chunked {
        Body::Chunked(Chunk::Size)
    } else {
        // A request without a length has no body (RFC 9112 §6.3); CONNECT's is a tunnel.
        match info.length {
            Some(n) if n > 0 && method != "CONNECT" => Body::Length(n),
            _ => Body::None,
        }
    }
}

fn response_body(status: u16, request: Option<&Request>, info: &HeadInfo<'_>) -> Body {
    let head = request.is_some_and(|r| r.method == "HEAD");
    let connect_ok = request.is_some_and(|r| r.method == "CONNECT") && (200..300).contains(&status);
    if head || connect_ok || (100..200).contains(&status) || status == 204 || status == 304 {
        return Body::None;
    }
    if info.chunked {
        return Body::Chunked(Chunk::Size);
    }
    match info.length {
        Some(0) => Body::None,
        Some(n) => Body::Length(n),
        None => Body::UntilClose,
    }
}

/// `unseen` bytes went by inside a body being skipped: it goes on without them. `false`
/// when they may have held a message boundary.
fn absorb(body: &mut Body, unseen: u64, bytes: &mut u64) -> bool {
    let ok = match body {
        Body::Length(left) | Body::Chunked(Chunk::Data(left)) if *left >= unseen => {
            *left -= unseen;
            true
        }
        Body::UntilClose => true,
        _ => false,
    };
    if ok {
        *bytes += unseen;
    }
    ok
}

/// Reads as much of a body as is buffered; `bytes` and `end` follow what was consumed.
fn advance(body: &mut Body, buf: &mut Input<'_>, bytes: &mut u64, end: &mut i64) -> Step {
    let mut take = |buf: &mut Input<'_>, n: usize| {
        if n > 0 {
            if let Some(t) = buf.time_at(buf.position() + n as u64 - 1) {
                *end = t;
            }
            buf.consume(n);
            *bytes += n as u64;
        }
    };
    loop {
        match body {
            Body::None => return Step::Done,
            Body::Length(left) => {
                let n = (*left).min(buf.buffered() as u64);
                take(buf, n as usize);
                *left -= n;
                return if *left == 0 {
                    Step::Done
                } else {
                    Step::NeedMore
                };
            }
            Body::UntilClose => {
                let n = buf.buffered();
                take(buf, n);
                return Step::NeedMore;
            }
            Body::Chunked(Chunk::Size) => match httparse::parse_chunk_size(buf.data()) {
                Ok(httparse::Status::Complete((n, size))) => {
                    take(buf, n);
                    *body = Body::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                Ok(httparse::Status::Partial) if buf.buffered() < 1024 => return Step::NeedMore,
                _ => return Step::Invalid,
            },
            Body::Chunked(Chunk::Data(left)) => {
                let n = (*left).min(buf.buffered() as u64);
                take(buf, n as usize);
                *left -= n;
                if *left > 0 {
                    return Step::NeedMore;
                }
                *body = Body::Chunked(Chunk::DataEnd);
            }
            Body::Chunked(Chunk::DataEnd) => {
                let data = buf.data();
                if data.len() < 2 {
                    return Step::NeedMore;
                }
                if &data[..2] != b"\r\n" {
                    return Step::Invalid;
                }
                take(buf, 2);
                *body = Body::Chunked(Chunk::Size);
            }
            Body::Chunked(Chunk::Trailers) => {
                let data = buf.data();
                match data.windows(2).position(|w| w == b"\r\n") {
                    // The empty line ends the message.
                    Some(0) => {
                        take(buf, 2);
                        return Step::Done;
                    }
                    Some(i) => take(buf, i + 2),
                    None if data.len() < 8192 => return Step::NeedMore,
                    None => return Step::Invalid,
                }
            }
        }
    }
}

/// Drops bytes up to the next place that `starts` a message (or all but a short tail
/// that may hold the start of one). After lost bytes a message can start mid-line.
fn skip_to(buf: &mut Input<'_>, starts: fn(&[u8]) -> bool) {
    let n = find_start(buf.data(), starts).unwrap_or_else(|| buf.buffered().saturating_sub(16));
    buf.consume(n);
}

/// Where the first message start in `data` is.
pub(crate) fn find_start(data: &[u8], starts: fn(&[u8]) -> bool) -> Option<usize> {
    (0..data.len()).find(|&i| {
        matches!(data[i], b'H' | b'G' | b'P' | b'D' | b'O' | b'C' | b'T') && starts(&data[i..])
    })
}

/// Whether `data` shows an HTTP/1 message starting anywhere in it (a connection joined
/// mid-stream).
pub fn shows_messages(client: &[u8], server: &[u8]) -> bool {
    find_start(client, looks_like_request).is_some()
        || find_start(server, looks_like_response).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_match_in_any_case_and_only_themselves() {
        for name in [
            "Content-Length",
            "content-length",
            "CONTENT-LENGTH",
            "cOnTeNt-LeNgTh",
        ] {
            assert!(is_name(name.as_bytes(), b"content-length"), "{name}");
        }
        // Every token character (RFC 9110 §5.6.2) in every position: only the name's own
        // letters, in either case, and its own `-` match.
        let token =
            (0u8..128).filter(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b));
        for b in token {
            for i in 0..17 {
                let mut name = *b"transfer-encoding";
                name[i] = b;
                let same = b.to_ascii_lowercase() == b"transfer-encoding"[i];
                assert_eq!(
                    is_name(&name, b"transfer-encoding"),
                    same,
                    "{:?}",
                    b as char
                );
            }
        }
        assert!(!is_name(b"host ", b"host"));
        assert!(!is_name(b"hos", b"host"));
    }
}
