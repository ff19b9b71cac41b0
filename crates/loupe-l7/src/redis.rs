//! Redis (RESP2 and RESP3): values read incrementally by a resumable reader (an explicit
//! stack of open aggregates; bulk strings skipped as they stream, never buffered whole),
//! replies paired with commands first in, first out (pipelining keeps order), RESP3
//! pushes and RESP2 pub/sub messages recognised as having no command, one reply per
//! channel for (un)subscribe, MULTI/EXEC as the commands they are.

use std::collections::VecDeque;

use crate::record::{as_text, Record, Text};
use crate::stream::Input;

/// Longest line (a simple string, an error, a length) before the stream is not RESP.
const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting followed.
const MAX_DEPTH: usize = 32;
/// Most elements an aggregate may claim.
const MAX_ELEMENTS: i64 = 1 << 24;
/// Command text kept (for the record's resource), and arguments shown.
const MAX_TEXT: usize = 256;
const MAX_ARGS: usize = 8;
/// Commands waiting for replies.
const MAX_WAITING: usize = 4096;

/// One complete top-level value, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Value {
    /// The RESP type byte of the top-level value (`*`, `+`, `-`, `>`, …; `i` inline).
    pub kind: u8,
    /// The first bulk strings of a top-level array (or an inline command's words).
    pub parts: Vec<Text>,
    /// The text of an error reply.
    pub error: Option<String>,
    /// Elements of a top-level aggregate.
    pub elements: i64,
    pub bytes: u64,
    pub start: i64,
    pub end: i64,
}

#[derive(Debug)]
enum Step {
    Value(Value),
    NeedMore,
    Invalid,
}

/// A resumable RESP reader for one direction.
#[derive(Debug, Default)]
struct Reader {
    /// Elements still to come in each open aggregate.
    stack: Vec<i64>,
    /// Bytes of a bulk string (and its CRLF) still to skip, and whether to keep them.
    skip: u64,
    keep: Option<Vec<u8>>,
    value: Option<Value>,
}

impl Reader {
    fn reset(&mut self) {
        *self = Reader::default();
    }

    /// `unseen` bytes went by unread: fine if they were inside a bulk being skipped (the
    /// value goes on, and may end with them); otherwise the reader starts over.
    fn lose(&mut self, unseen: u64) -> Result<Option<Value>, ()> {
        if self.skip == 0 || self.skip < unseen {
            self.reset();
            return Err(());
        }
        self.skip -= unseen;
        if let Some(v) = &mut self.value {
            v.bytes += unseen;
        }
        self.keep = None;
        if self.skip > 0 {
            return Ok(None);
        }
        Ok(self.element_done())
    }

    fn read(&mut self, buf: &mut Input<'_>, requests: bool) -> Step {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.buffered() as u64) as usize;
                if n == 0 {
                    return Step::NeedMore;
                }
                match &mut self.keep {
                    // The whole bulk (and its CRLF) is here: read it in place.
                    Some(keep) if keep.is_empty() && n as u64 == self.skip => {
                        self.keep = None;
                        let kept = &buf.data()[..n.min(MAX_TEXT)];
                        let kept = kept.strip_suffix(b"\r\n").unwrap_or(kept);
                        if let Some(v) = &mut self.value {
                            v.parts.push(lossy_text(kept));
                        }
                    }
                    Some(keep) => {
                        let room = MAX_TEXT.saturating_sub(keep.len());
                        keep.extend_from_slice(&buf.data()[..n.min(room)]);
                    }
                    None => {}
                }
                self.take(buf, n);
                self.skip -= n as u64;
                if self.skip > 0 {
                    return Step::NeedMore;
                }
                if let Some(mut bytes) = self.keep.take() {
                    // The bulk's CRLF may have been kept too.
                    if bytes.ends_with(b"\r\n") {
                        bytes.truncate(bytes.len() - 2);
                    }
                    if let Some(v) = &mut self.value {
                        v.parts.push(lossy_text(&bytes));
                    }
                }
                if let Some(done) = self.element_done() {
                    return Step::Value(done);
                }
                continue;
            }
            let data = buf.data();
            let Some(eol) = data.windows(2).take(MAX_LINE).position(|w| w == b"\r\n") else {
                return if data.len() > MAX_LINE {
                    Step::Invalid
                } else {
                    Step::NeedMore
                };
            };
            let line = &data[..eol];
            let Some(&kind) = line.first() else {
                return Step::Invalid;
            };
            let top = self.stack.is_empty();
            if top {
                self.value = Some(Value {
                    kind,
                    start: buf.time_at(buf.position()).unwrap_or(0),
                    ..Value::default()
                });
            }
            let number = || {
                std::str::from_utf8(&line[1..])
                    .ok()?
                    .trim()
                    .parse::<i64>()
                    .ok()
            };
            match kind {
                b'+' | b':' | b',' | b'#' | b'(' | b'_' => {
                    self.take(buf, eol + 2);
                }
                b'-' => {
                    let text =
                        String::from_utf8_lossy(&line[1..line.len().min(MAX_TEXT)]).into_owned();
                    self.take(buf, eol + 2);
                    if top {
                        if let Some(v) = &mut self.value {
                            v.error = Some(text);
                        }
                    }
                }
                b'$' | b'!' | b'=' => {
                    let Some(n) = number() else {
                        return Step::Invalid;
                    };
                    self.take(buf, eol + 2);
                    if n >= 0 {
                        self.skip = n as u64 + 2;
                        let collecting = self.stack.len() == 1
                            && self
                                .value
                                .as_ref()
                                .is_some_and(|v| v.kind == b'*' && v.parts.len() < MAX_ARGS);
                        self.keep = collecting.then(Vec::new);
                        if kind == b'!' && top {
                            if let Some(v) = &mut self.value {
                                v.error = Some(String::new());
                            }
                        }
                        continue;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let Some(n) = number() else {
                        return Step::Invalid;
                    };
                    if n > MAX_ELEMENTS || self.stack.len() >= MAX_DEPTH {
                        return Step::Invalid;
                    }
                    self.take(buf, eol + 2);
                    // Maps hold pairs; an attribute is a map that precedes the real value.
                    let count = match kind {
                        b'%' => n.saturating_mul(2),
                        b'|' => n.saturating_mul(2) + 1,
                        _ => n,
                    };
                    if top {
                        if let Some(v) = &mut self.value {
                            v.elements = n;
                        }
                    }
                    if count > 0 {
                        self.stack.push(count);
                        continue;
                    }
                }
                _ if top && requests => {
                    // An inline command (`PING`, from telnet-like clients).
                    let text =
                        String::from_utf8_lossy(&line[..line.len().min(MAX_TEXT)]).into_owned();
                    self.take(buf, eol + 2);
                    if let Some(v) = &mut self.value {
                        v.kind = b'i';
                        v.parts = text
                            .split_whitespace()
                            .take(MAX_ARGS)
                            .map(Text::from)
                            .collect();
                    }
                    if v_empty(&self.value) {
                        return Step::Invalid;
                    }
                }
                _ => return Step::Invalid,
            }
            if let Some(done) = self.element_done() {
                return Step::Value(done);
            }
        }
    }

    fn take(&mut self, buf: &mut Input<'_>, n: usize) {
        if let Some(v) = &mut self.value {
            if let Some(t) = buf.time_at(buf.position() + n as u64 - 1) {
                v.end = t;
            }
            v.bytes += n as u64;
        }
        buf.consume(n);
    }

    /// An element ended: close the aggregates it completes; the top-level value if done.
    fn element_done(&mut self) -> Option<Value> {
        while let Some(left) = self.stack.last_mut() {
            *left -= 1;
            if *left > 0 {
                return None;
            }
            self.stack.pop();
        }
        self.value.take()
    }
}

fn v_empty(v: &Option<Value>) -> bool {
    v.as_ref().is_none_or(|v| v.parts.is_empty())
}

#[derive(Debug)]
struct Command {
    value: Value,
    /// Its name in upper case (`GET`).
    name: Text,
    /// Replies it gets (one per channel for (un)subscribe).
    replies: usize,
}

/// Counters of what could not be followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStats {
    pub malformed: u64,
    /// Server pushes (pub/sub messages, RESP3 `>`): no command asked for them.
    pub pushes: u64,
    pub orphans: u64,
    pub unanswered: u64,
    /// Replies the connection's (or the capture's) end cut short.
    pub cut_short: u64,
}

/// One connection's Redis state.
#[derive(Debug, Default)]
pub struct Redis {
    requests: Reader,
    replies: Reader,
    waiting: VecDeque<Command>,
    /// Replies still to come for commands dropped from a full queue: they are not the
    /// answers of the commands after them (pairing would shift by one for good).
    dropped_replies: u64,
    subscribed: bool,
    pub stats: RedisStats,
}

/// Whether `data` starts like a RESP command (an array of bulk strings).
pub fn looks_like_command(data: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(b"*") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest[digits..].starts_with(b"\r\n$")
}

/// Commands a client may send inline (as text, `PING\r\n`) first: HAProxy's and
/// Kubernetes' health checks, `redis-cli --pipe` fed text, telnet.
const INLINE_FIRST: &[&str] = &[
    "PING",
    "ECHO",
    "SET",
    "GET",
    "DEL",
    "EXISTS",
    "INCR",
    "DECR",
    "INCRBY",
    "MGET",
    "MSET",
    "EXPIRE",
    "TTL",
    "KEYS",
    "SCAN",
    "TYPE",
    "HSET",
    "HGET",
    "HGETALL",
    "HDEL",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "LRANGE",
    "LLEN",
    "SADD",
    "SREM",
    "SMEMBERS",
    "SPOP",
    "ZADD",
    "ZRANGE",
    "ZREM",
    "INFO",
    "SELECT",
    "AUTH",
    "HELLO",
    "CLIENT",
    "CONFIG",
    "MULTI",
    "EXEC",
    "WATCH",
    "SUBSCRIBE",
    "PUBLISH",
    "FLUSHALL",
    "FLUSHDB",
    "DBSIZE",
    "COMMAND",
    "ROLE",
];

/// An inline command answered by a RESP reply: text alone is too common to tell, so
/// the command must be a Redis one and the server's first bytes a RESP value.
pub fn looks_like_inline(client: &[u8], server: &[u8]) -> bool {
    let Some(line_end) = client.iter().take(512).position(|b| *b == b'\n') else {
        return false;
    };
    let word_len = client
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    let word = &client[..word_len];
    let command = INLINE_FIRST
        .iter()
        .any(|c| c.as_bytes().eq_ignore_ascii_case(word));
    let separated = matches!(client.get(word_len), Some(b' ' | b'\r' | b'\n'));
    let reply = matches!(
        server.first(),
        Some(b'+' | b'-' | b':' | b'$' | b'*' | b'%' | b'_' | b'#' | b',' | b'=' | b'|')
    ) && server.windows(2).take(512).any(|w| w == b"\r\n");
    line_end > 0 && command && separated && reply
}

impl Redis {
    pub fn on_request(&mut self, buf: &mut Input<'_>) {
        if let Some(unseen) = buf.take_loss() {
            match self.requests.lose(unseen) {
                Ok(Some(v)) => self.command(v),
                Ok(None) => {}
                Err(()) => skip_to_command(buf),
            }
        }
        loop {
            match self.requests.read(buf, true) {
                Step::Value(v) => self.command(v),
                Step::NeedMore => return,
                Step::Invalid => {
                    self.stats.malformed += 1;
                    self.requests.reset();
                    buf.consume(1);
                    skip_to_command(buf);
                }
            }
        }
    }

    fn command(&mut self, v: Value) {
        let command = v.parts.first().map(|c| upper(c)).unwrap_or_default();
        let replies = match command.as_str() {
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE"
            | "SUNSUBSCRIBE" => {
                self.subscribed = !command.contains("UNSUB");
                // One reply per channel named, however many the record kept.
                let channels = (v.elements - 1).max(v.parts.len() as i64 - 1);
                channels.max(1) as usize
            }
            _ => 1,
        };
        if self.waiting.len() >= MAX_WAITING {
            if let Some(oldest) = self.waiting.pop_front() {
                self.dropped_replies += oldest.replies as u64;
            }
            self.stats.unanswered += 1;
        }
        self.waiting.push_back(Command {
            value: v,
            name: command,
            replies,
        });
    }

    pub fn on_response(&mut self, buf: &mut Input<'_>, out: &mut Vec<Record>) {
        if let Some(unseen) = buf.take_loss() {
            match self.replies.lose(unseen) {
                Ok(Some(v)) => self.reply(v, out),
                Ok(None) => {}
                Err(()) => {
                    self.stats.unanswered += self.waiting.len() as u64;
                    self.waiting.clear();
                    self.dropped_replies = 0;
                    // Replies have no marker to find: wait for the next command's reply.
                    let n = buf.buffered();
                    buf.consume(n);
                    return;
                }
            }
        }
        loop {
            match self.replies.read(buf, false) {
                Step::Value(v) => self.reply(v, out),
                Step::NeedMore => return,
                Step::Invalid => {
                    self.stats.malformed += 1;
                    self.replies.reset();
                    let n = buf.buffered();
                    buf.consume(n);
                    return;
                }
            }
        }
    }

    fn reply(&mut self, v: Value, out: &mut Vec<Record>) {
        let push = v.kind == b'>'
            || (self.subscribed
                && v.kind == b'*'
                && matches!(
                    v.parts.first().map(|p| p.to_ascii_lowercase()).as_deref(),
                    Some("message" | "pmessage" | "smessage")
                ));
        if push {
            self.stats.pushes += 1;
            return;
        }
        if self.dropped_replies > 0 {
            self.dropped_replies -= 1;
            return;
        }
        let Some(front) = self.waiting.front_mut() else {
            self.stats.orphans += 1;
            return;
        };
        front.replies -= 1;
        if front.replies > 0 {
            return;
        }
        let Some(cmd) = self.waiting.pop_front() else {
            return;
        };
        let command = cmd.name;
        let text = joined(&cmd.value.parts, MAX_TEXT);
        out.push(Record {
            protocol: "redis",
            route: command.clone(),
            method: command,
            resource: text,
            host: None,
            status: None,
            error: v
                .error
                .map(|e| e.split_whitespace().next().unwrap_or("ERR").into()),
            request_bytes: cmd.value.bytes,
            response_bytes: v.bytes,
            request_start: cmd.value.start,
            request_end: cmd.value.end,
            response_start: v.start,
            response_end: v.end,
            partial: false,
        });
    }

    /// The connection closed: a reply cut short still answers its command.
    pub fn on_close(&mut self, out: &mut Vec<Record>) {
        if let Some(v) = self.replies.value.take() {
            self.stats.cut_short += 1;
            if let Some(front) = self.waiting.front_mut() {
                front.replies = 1;
            }
            self.reply(v, out);
        }
        self.stats.unanswered += self.waiting.len() as u64;
        self.waiting.clear();
    }
}

fn skip_to_command(buf: &mut Input<'_>) {
    let data = buf.data();
    let n = (0..data.len())
        .find(|&i| data[i] == b'*' && looks_like_command(&data[i..]))
        .unwrap_or_else(|| data.len().saturating_sub(16));
    buf.consume(n);
}

/// Bytes as text, invalid UTF-8 replaced; keys and values are nearly always ASCII, which
/// needs no decoding.
fn lossy_text(bytes: &[u8]) -> Text {
    match as_text(bytes) {
        Some(text) => Text::from(text),
        None => Text::from(String::from_utf8_lossy(bytes)),
    }
}

/// A command name in upper case, inline for every real command.
fn upper(word: &str) -> Text {
    let mut text = Text::from(word);
    text.make_ascii_uppercase();
    text
}

/// The words of a command joined by spaces, cut to at most `max` bytes on a character
/// boundary (keys and values may hold any UTF-8).
fn joined(parts: &[Text], max: usize) -> Text {
    let mut text = Text::default();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(part);
        if text.len() >= max {
            break;
        }
    }
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamBuf;

    fn run(parts: &[(bool, &[u8])]) -> (Vec<Record>, RedisStats) {
        let (mut c, mut s) = (StreamBuf::new(1 << 16), StreamBuf::new(1 << 16));
        let (mut r, mut out, mut pos) = (Redis::default(), Vec::new(), [0u64; 2]);
        for (i, (client, bytes)) in parts.iter().enumerate() {
            let k = usize::from(!*client);
            if *client {
                c.push(pos[k], bytes, i as i64);
                r.on_request(&mut c.view());
            } else {
                s.push(pos[k], bytes, i as i64);
                r.on_response(&mut s.view(), &mut out);
            }
            pos[k] += bytes.len() as u64;
        }
        r.on_close(&mut out);
        (out, r.stats)
    }

    #[test]
    fn pipelined_commands_errors_and_nested_replies() {
        let (out, stats) = run(&[
            (true, b"*2\r\n$3\r\nGET\r\n$4\r\nuser\r\n*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nKEYS\r\n"),
            (false, b"$5\r\nalice\r\n-WRONGTYPE Operation against a key\r\n"),
            (false, b"*2\r\n*1\r\n:1\r\n%1\r\n+a\r\n$-1\r\n"),
        ]);
        let got: Vec<(&str, &str, Option<&str>)> = out
            .iter()
            .map(|r| (r.method.as_str(), r.resource.as_str(), r.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("GET", "GET user", None),
                ("SET", "set k v", Some("WRONGTYPE")),
                ("KEYS", "KEYS", None)
            ]
        );
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn a_big_bulk_streams_through_without_being_buffered() {
        let big = vec![b'x'; 200_000];
        let mut reply = b"$200000\r\n".to_vec();
        reply.extend_from_slice(&big);
        reply.extend_from_slice(b"\r\n");
        let mut parts: Vec<(bool, &[u8])> = vec![(true, b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")];
        parts.extend(reply.chunks(30_000).map(|c| (false, c)));
        let (out, _) = run(&parts);
        assert_eq!((out.len(), out[0].response_bytes), (1, reply.len() as u64));
    }

    #[test]
    fn pubsub_pushes_subscribe_replies_multi_exec_and_inline() {
        let (out, stats) = run(&[
            (true, b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n"),
            (false, b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"),
            (false, b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n>3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nyo\r\n"),
        ]);
        assert_eq!(out.len(), 1, "two replies answer one SUBSCRIBE");
        let (out, _) = run(&[
            (true, b"*5\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n*1\r\n$4\r\nPING\r\n"),
            (false, b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:3\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nd\r\n:4\r\n+PONG\r\n"),
        ]);
        let got: Vec<&str> = out.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(
            got,
            vec!["SUBSCRIBE", "PING"],
            "four channels, four replies"
        );
        assert_eq!(stats.pushes, 2);
        let (out, _) = run(&[
            (
                true,
                b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*1\r\n$4\r\nEXEC\r\nPING\r\n",
            ),
            (false, b"+OK\r\n+QUEUED\r\n*1\r\n:1\r\n+PONG\r\n"),
        ]);
        let got: Vec<&str> = out.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(got, vec!["MULTI", "INCR", "EXEC", "PING"]);
    }

    #[test]
    fn a_connection_that_starts_inline_is_told_by_its_resp_replies() {
        use crate::{infer, Conn, Dir, Protocol};
        assert!(!looks_like_inline(b"SET k v\r\n", b""), "no reply yet");
        assert!(looks_like_inline(b"SET k v\r\n", b"+OK\r\n"));
        assert!(looks_like_inline(b"ping\r\n", b"+PONG\r\n"));
        // POP3 and SMTP answer "+OK" and "250" to words Redis does not have.
        assert!(!looks_like_inline(b"USER bob\r\n", b"+OK\r\n"));
        assert!(!looks_like_inline(b"SETTINGS\r\n", b"+OK\r\n"));
        assert_eq!(infer(b"GET k\r\n", b"$-1\r\n"), Protocol::Redis);
        let (mut conn, mut out) = (Conn::new(1 << 16), Vec::new());
        conn.push(Dir::Request, 0, b"SET k v\r\nLPUSH k x\r\n", 1, &mut out);
        conn.push(
            Dir::Response,
            0,
            b"+OK\r\n-WRONGTYPE Operation\r\n",
            2,
            &mut out,
        );
        let got: Vec<(&str, Option<&str>)> = out
            .iter()
            .map(|r| (r.method.as_str(), r.error.as_deref()))
            .collect();
        assert_eq!(got, vec![("SET", None), ("LPUSH", Some("WRONGTYPE"))]);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_commands_without_shifting_the_pairing() {
        // 5 000 pipelined commands before any reply: the first 904 fall out of the queue.
        let (mut commands, mut replies) = (Vec::new(), Vec::new());
        for i in 0..5000 {
            if i % 2 == 0 {
                commands.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
                replies.extend_from_slice(b"+OK\r\n");
            } else {
                commands.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
                replies.extend_from_slice(b"-ERR not this time\r\n");
            }
        }
        let mut parts: Vec<(bool, &[u8])> = commands.chunks(8192).map(|c| (true, c)).collect();
        parts.extend(replies.chunks(8192).map(|r| (false, r)));
        let (out, stats) = run(&parts);
        assert_eq!(out.len(), MAX_WAITING);
        assert_eq!(stats.unanswered, 5000 - MAX_WAITING as u64);
        assert_eq!(stats.orphans, 0);
        // Every GET got its error, every SET its OK.
        for r in &out {
            assert_eq!(r.error.is_some(), r.method == "GET", "{r:?}");
        }
    }

    #[test]
    fn lies_about_lengths_are_refused() {
        let (_, stats) = run(&[
            (true, b"*99999999999\r\n$3\r\nGET\r\n"),
            (true, b"*1\r\n$x\r\n"),
        ]);
        assert!(stats.malformed >= 1);
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(b"*1\r\n");
        }
        let (_, stats) = run(&[(false, &deep)]);
        assert!(stats.malformed >= 1);
        assert!(looks_like_command(b"*2\r\n$3\r\nGET"));
        assert!(!looks_like_command(b"*x\r\n"));
    }

    #[test]
    fn a_long_command_is_cut_on_a_character_boundary() {
        // "SET " + 200-byte key + " " = 205 bytes, then two-byte characters: byte 256
        // falls inside one.
        let key = "k".repeat(200);
        let value = "é".repeat(40);
        let cmd = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        );
        let (out, _) = run(&[(true, cmd.as_bytes()), (false, b"+OK\r\n")]);
        assert_eq!(out.len(), 1);
        assert!(out[0].resource.len() <= MAX_TEXT);
        assert!(out[0].resource.starts_with("SET kkk"));
        assert!(out[0].resource.ends_with('é'));
    }

    #[test]
    fn a_bulk_read_in_place_or_in_pieces_gives_the_same_record() {
        let cmd = "*3\r\n$3\r\nset\r\n$9\r\nkey:ü:42\r\n$5\r\nhello\r\n".as_bytes();
        let bad = b"*2\r\n$3\r\nGET\r\n$2\r\n\xff\xfe\r\n";
        let whole = run(&[
            (true, cmd),
            (false, b"+OK\r\n"),
            (true, bad),
            (false, b"$-1\r\n"),
        ])
        .0;
        let mut pieces: Vec<(bool, &[u8])> = cmd.chunks(1).map(|c| (true, c)).collect();
        pieces.push((false, b"+OK\r\n"));
        pieces.extend(bad.chunks(3).map(|c| (true, c)));
        pieces.push((false, b"$-1\r\n"));
        let split = run(&pieces).0;
        let texts = |r: &[Record]| -> Vec<(Text, Text)> {
            r.iter()
                .map(|x| (x.method.clone(), x.resource.clone()))
                .collect()
        };
        assert_eq!(texts(&whole), texts(&split));
        assert_eq!(whole[0].resource, "set key:ü:42 hello");
        assert_eq!(whole[0].method, "SET");
        assert_eq!(whole[1].resource, "GET \u{fffd}\u{fffd}");
    }
}
