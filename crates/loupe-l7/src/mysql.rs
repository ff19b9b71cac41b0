//! MySQL: packets (3-byte length, sequence id) read per direction; a command (sequence 0
//! from the client) answered by OK, ERR, or a result set followed to its end (columns,
//! rows, EOF or the OK that replaces it, more results when the status says so);
//! prepared statements' ids mapped to their SQL; errors with their code. Bodies of rows
//! are skipped as they stream; split (16 MiB) packets are followed. The compressed
//! protocol is not read yet: such connections are counted, not parsed.

use std::collections::{HashMap, VecDeque};

use crate::pgsql::summarize;
use crate::record::{Record, Text};
use crate::stream::{Input, StreamBuf};

const COM_QUIT: u8 = 0x01;
const COM_INIT_DB: u8 = 0x02;
/// Not a command byte: the login, recorded as a request of its own.
const LOGIN: u8 = 0xf0;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;
const MAX_SQL: usize = 1024;
const MAX_WAITING: usize = 1024;
const MAX_STATEMENTS: usize = 1024;

#[derive(Debug, Clone)]
struct Command {
    kind: u8,
    sql: Option<String>,
    start: i64,
    end: i64,
    bytes: u64,
}

/// Where a response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its first packet is next.
    First,
    /// Column definitions left, then (maybe) an EOF, then rows.
    Columns(u64),
    Rows,
    /// A prepare's parameter and column definitions left (each group with its EOF).
    Prepared {
        params: u64,
        columns: u64,
    },
}

#[derive(Debug)]
struct Response {
    command: Command,
    state: State,
    start: i64,
    end: i64,
    bytes: u64,
    error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MysqlStats {
    pub malformed: u64,
    pub orphans: u64,
    pub unanswered: u64,
    /// Connections using the compressed protocol (not read).
    pub compressed: u64,
}

/// One connection's MySQL state.
#[derive(Debug)]
pub struct Mysql {
    waiting: VecDeque<Command>,
    response: Option<Response>,
    statements: HashMap<u32, String>,
    /// Bytes of a long packet still to skip, per side.
    skip: [u64; 2],
    /// The handshake is over (the client's login was answered).
    ready: bool,
    compressed: bool,
    /// Whether the server ends result sets with an OK instead of EOF packets (learned
    /// from the login, or from the first result set).
    deprecate_eof: Option<bool>,
    /// Queries start with their attributes (`CLIENT_QUERY_ATTRIBUTES`).
    query_attributes: bool,
    compress_after_login: bool,
    /// The compressed protocol's payloads, per side, as the packet stream they carry.
    inner: [StreamBuf; 2],
    pub stats: MysqlStats,
}

impl Default for Mysql {
    fn default() -> Self {
        Mysql {
            waiting: VecDeque::new(),
            response: None,
            statements: HashMap::new(),
            skip: [0; 2],
            ready: false,
            compressed: false,
            deprecate_eof: None,
            query_attributes: false,
            compress_after_login: false,
            inner: [StreamBuf::new(INNER_BUFFER), StreamBuf::new(INNER_BUFFER)],
            stats: MysqlStats::default(),
        }
    }
}

/// Bytes of decompressed packets held per side.
const INNER_BUFFER: usize = 256 * 1024;
/// Largest compressed frame followed, and largest payload it may inflate to.
const MAX_COMPRESSED: usize = 1 << 20;

/// A compressed-protocol frame (7-byte header) whose payload is one plain packet with
/// sequence 0 and a known command: a connection joined after a compressed login.
fn looks_compressed(data: &[u8]) -> bool {
    if data.len() < 12 {
        return false;
    }
    let comp = usize::from(data[0]) | usize::from(data[1]) << 8 | usize::from(data[2]) << 16;
    let raw = usize::from(data[4]) | usize::from(data[5]) << 8 | usize::from(data[6]) << 16;
    let inner = &data[7..];
    let inner_len =
        usize::from(inner[0]) | usize::from(inner[1]) << 8 | usize::from(inner[2]) << 16;
    raw == 0
        && comp == inner_len + 4
        && inner[3] == 0
        && matches!(inner[4], COM_QUERY | COM_INIT_DB | COM_STMT_PREPARE)
}

/// Moves whole compressed frames from `outer` into `inner` as the bytes they carry.
fn unwrap_frames(outer: &mut Input<'_>, inner: &mut StreamBuf) -> Result<(), ()> {
    if outer.take_loss().is_some() {
        // Frames are lost with the bytes; the packets inside them too.
        inner.lose(1);
        return Err(());
    }
    loop {
        let data = outer.data();
        if data.len() < 7 {
            return Ok(());
        }
        let comp = usize::from(data[0]) | usize::from(data[1]) << 8 | usize::from(data[2]) << 16;
        let raw = usize::from(data[4]) | usize::from(data[5]) << 8 | usize::from(data[6]) << 16;
        if comp > MAX_COMPRESSED || raw > MAX_COMPRESSED {
            let n = outer.buffered();
            outer.consume(n);
            return Err(());
        }
        if data.len() < 7 + comp {
            return Ok(());
        }
        let ts = outer
            .time_at(outer.position() + 6 + comp as u64)
            .unwrap_or(0);
        let payload = &data[7..7 + comp];
        let bytes = if raw == 0 {
            payload.to_vec()
        } else {
            let mut out = Vec::with_capacity(raw);
            use std::io::Read;
            let ok = flate2::read::ZlibDecoder::new(payload)
                .take(raw as u64)
                .read_to_end(&mut out)
                .is_ok();
            if !ok {
                outer.consume(7 + comp);
                return Err(());
            }
            out
        };
        let at = inner.end();
        inner.push(at, &bytes, ts);
        outer.consume(7 + comp);
    }
}

/// The server's greeting (protocol 10) or a client command at the start of the data.
pub fn looks_like(client: &[u8], server: &[u8]) -> bool {
    let greeting =
        server.len() > 5 && server[3] == 0 && server[4] == 0x0a && server[5].is_ascii_digit();
    let command = client.len() > 5
        && client[3] == 0
        && matches!(client[4], COM_QUERY | COM_STMT_PREPARE)
        && (client[5].is_ascii_alphabetic() || client[5] == b'/');
    greeting || command || looks_compressed(client)
}

fn packet(data: &[u8]) -> Option<(usize, u8, usize)> {
    if data.len() < 4 {
        return None;
    }
    let len = usize::from(data[0]) | usize::from(data[1]) << 8 | usize::from(data[2]) << 16;
    Some((len, data[3], 4 + len))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_SQL)])
        .trim_end()
        .to_string()
}

/// A length-encoded integer at the start of `b`.
fn lenenc(b: &[u8]) -> Option<u64> {
    let le = |n: usize| {
        b.get(1..1 + n)
            .map(|s| s.iter().rev().fold(0u64, |a, x| (a << 8) | u64::from(*x)))
    };
    match *b.first()? {
        x @ 0..=0xfa => Some(u64::from(x)),
        0xfc => le(2),
        0xfd => le(3),
        0xfe => le(8),
        _ => None,
    }
}

impl Mysql {
    fn requests(&mut self, buf: &mut Input<'_>) {
        if buf.take_loss().is_some() {
            self.skip[0] = 0;
            resync(buf);
        }
        loop {
            if buf.skip_pending(&mut self.skip[0]) {
                return;
            }
            let Some((len, seq, total)) = packet(buf.data()) else {
                return;
            };
            let start = buf.time_at(buf.position()).unwrap_or(0);
            if buf.buffered() < total.min(4 + 64) {
                return;
            }
            let head = &buf.data()[4..total.min(buf.buffered())];
            if !self.ready && seq == 1 {
                // The login: its capability flags say whether it compresses, whether
                // result sets end with EOF packets, whether queries carry attributes.
                let mut user = String::new();
                if head.len() >= 4 {
                    let flags = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
                    self.deprecate_eof = Some(flags & (1 << 24) != 0);
                    self.query_attributes = flags & (1 << 27) != 0;
                    if flags & 0x20 != 0 {
                        // Compression starts after the login's answer.
                        self.compress_after_login = true;
                    }
                    // Flags, max packet, charset, 23 reserved bytes, then the user name.
                    if let Some(rest) = head.get(32..) {
                        user = text(rest.split(|b| *b == 0).next().unwrap_or(&[]));
                    }
                }
                let end = buf
                    .time_at(buf.position() + total as u64 - 1)
                    .unwrap_or(start);
                self.consume_packet(0, buf, total);
                self.waiting.push_back(Command {
                    kind: LOGIN,
                    sql: Some(format!("LOGIN {user}")),
                    start,
                    end,
                    bytes: total as u64,
                });
                continue;
            }
            if seq != 0 || len == 0 {
                // A continuation (split packet, long data): nothing to pair.
                self.consume_packet(0, buf, total);
                continue;
            }
            let kind = head[0];
            let sql = match kind {
                COM_QUERY => Some(text(self.query_text(&head[1..]))),
                COM_STMT_PREPARE => Some(text(&head[1..])),
                COM_INIT_DB => Some(format!("USE {}", text(&head[1..]))),
                COM_STMT_EXECUTE if head.len() >= 5 => {
                    let id = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
                    self.statements.get(&id).cloned()
                }
                COM_STMT_CLOSE if head.len() >= 5 => {
                    let id = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
                    self.statements.remove(&id);
                    None
                }
                _ => None,
            };
            let end = buf
                .time_at(buf.position() + total as u64 - 1)
                .unwrap_or(start);
            self.consume_packet(0, buf, total);
            if matches!(kind, COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA) {
                // No response follows.
                continue;
            }
            if self.waiting.len() >= MAX_WAITING {
                self.waiting.pop_front();
                self.stats.unanswered += 1;
            }
            self.ready = true;
            self.waiting.push_back(Command {
                kind,
                sql,
                start,
                end,
                bytes: total as u64,
            });
        }
    }

    /// Parses what the client sent.
    pub fn on_request(&mut self, buf: &mut Input<'_>) {
        if !self.compressed && !self.ready && looks_compressed(buf.data()) {
            self.compressed = true;
            self.ready = true;
            self.stats.compressed += 1;
        }
        if self.compressed {
            let (outer, inner) = (buf, &mut self.inner[0]);
            if unwrap_frames(outer, inner).is_err() {
                self.stats.malformed += 1;
            }
            let mut inner = std::mem::replace(&mut self.inner[0], StreamBuf::new(1));
            self.requests(&mut inner.view());
            self.inner[0] = inner;
        } else {
            self.requests(buf);
        }
    }

    /// Parses what the server sent; answered commands go to `out`.
    pub fn on_response(&mut self, buf: &mut Input<'_>, out: &mut Vec<Record>) {
        if self.compressed {
            if unwrap_frames(buf, &mut self.inner[1]).is_err() {
                self.stats.malformed += 1;
            }
            let mut inner = std::mem::replace(&mut self.inner[1], StreamBuf::new(1));
            self.responses(&mut inner.view(), out);
            self.inner[1] = inner;
        } else {
            self.responses(buf, out);
        }
    }

    /// A COM_QUERY's SQL, past the query attributes when the client sends them (MySQL
    /// 8.0.23+: a parameter count and a set count, `00 01` when there are none).
    fn query_text<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        match body {
            [0x00, 0x01, rest @ ..]
                if self.query_attributes || rest.first().is_some_and(u8::is_ascii_alphabetic) =>
            {
                rest
            }
            _ => body,
        }
    }

    /// Consumes a whole packet, or what is buffered of it (skipping the rest).
    fn consume_packet(&mut self, side: usize, buf: &mut Input<'_>, total: usize) {
        let have = buf.buffered().min(total);
        buf.consume(have);
        self.skip[side] = (total - have) as u64;
    }

    fn responses(&mut self, buf: &mut Input<'_>, out: &mut Vec<Record>) {
        if buf.take_loss().is_some() {
            self.skip[1] = 0;
            self.response = None;
            self.stats.unanswered += self.waiting.len() as u64;
            self.waiting.clear();
            let n = buf.buffered();
            buf.consume(n);
            return;
        }
        loop {
            if buf.skip_pending(&mut self.skip[1]) {
                return;
            }
            let Some((len, seq, total)) = packet(buf.data()) else {
                return;
            };
            // Enough of the packet to classify it (its first bytes), or all of it.
            if buf.buffered() < total.min(4 + 16) {
                return;
            }
            let body = &buf.data()[4..total.min(buf.buffered())];
            let start = buf.time_at(buf.position()).unwrap_or(0);
            let end = buf
                .time_at(buf.position() + total as u64 - 1)
                .unwrap_or(start);
            if seq == 1
                && self.response.as_ref().is_some_and(|r| r.bytes > 0)
                && !self.waiting.is_empty()
            {
                // Sequence 1 starts the next answer: the one before ended unnoticed.
                if let Some(r) = self.response.take() {
                    out.push(record(r));
                }
            }
            if self.response.is_none() {
                if !self.ready {
                    // The greeting, authentication exchanges, and the login's answer.
                    let answered = matches!(body.first(), Some(0x00 | 0xff)) && seq >= 2;
                    if answered {
                        self.ready = true;
                        if self.compress_after_login {
                            self.compressed = true;
                            self.stats.compressed += 1;
                        }
                        if let Some(login) = self.waiting.pop_front() {
                            let error = (body.first() == Some(&0xff))
                                .then(|| error_code(body))
                                .flatten();
                            out.push(record(Response {
                                command: login,
                                state: State::First,
                                start,
                                end,
                                bytes: total as u64,
                                error,
                            }));
                        }
                    }
                    self.consume_packet(1, buf, total);
                    continue;
                }
                let Some(command) = self.waiting.pop_front() else {
                    self.stats.orphans += 1;
                    self.consume_packet(1, buf, total);
                    continue;
                };
                self.response = Some(Response {
                    command,
                    state: State::First,
                    start,
                    end,
                    bytes: 0,
                    error: None,
                });
            }
            let first = body.first().copied().unwrap_or(0);
            // An EOF (classic, 5 bytes) or the OK that replaces it (`DEPRECATE_EOF`).
            let terminator = first == 0xfe && len < 0xff_ffff;
            let classic_eof = first == 0xfe && len < 7;
            let deprecate = self.deprecate_eof;
            let mut learned = None;
            let done = {
                let r = self.response.as_mut().expect("set above");
                r.end = end;
                r.bytes += total as u64;
                match r.state {
                    State::First => match first {
                        0x00 if r.command.kind == COM_STMT_PREPARE && body.len() >= 9 => {
                            let id = u32::from_le_bytes([body[1], body[2], body[3], body[4]]);
                            let columns = u64::from(u16::from_le_bytes([body[5], body[6]]));
                            let params = u64::from(u16::from_le_bytes([body[7], body[8]]));
                            if let Some(sql) = &r.command.sql {
                                if self.statements.len() >= MAX_STATEMENTS {
                                    self.statements.clear();
                                }
                                self.statements.insert(id, sql.clone());
                            }
                            r.state = State::Prepared { params, columns };
                            params == 0 && columns == 0
                        }
                        0x00 => !more_results_ok(body),
                        0xff => {
                            r.error = error_code(body);
                            true
                        }
                        0xfb => true,
                        _ => match lenenc(body) {
                            Some(n) if n > 0 => {
                                r.state = State::Columns(n);
                                false
                            }
                            _ => true,
                        },
                    },
                    State::Columns(n) if n > 0 => {
                        r.state = State::Columns(n - 1);
                        false
                    }
                    // After the definitions: a classic EOF, or (DEPRECATE_EOF) the first
                    // row or the OK ending an empty result.
                    State::Columns(_) => {
                        learned = Some(!classic_eof);
                        r.state = State::Rows;
                        terminator && !classic_eof && !more_results_ok(body)
                    }
                    State::Rows => match first {
                        0xff => {
                            r.error = error_code(body);
                            true
                        }
                        _ if terminator => {
                            let more = if classic_eof {
                                more_results_eof(body)
                            } else {
                                more_results_ok(body)
                            };
                            if more {
                                r.state = State::First;
                            }
                            !more
                        }
                        _ => false,
                    },
                    State::Prepared { params, columns } => {
                        if classic_eof {
                            // The EOF closing a group of definitions.
                            learned = Some(false);
                            params == 0 && columns == 0
                        } else {
                            let (p, c) = if params > 0 {
                                (params - 1, columns)
                            } else {
                                (0, columns.saturating_sub(1))
                            };
                            r.state = State::Prepared {
                                params: p,
                                columns: c,
                            };
                            // Without EOFs the last definition ends it.
                            p == 0 && c == 0 && deprecate == Some(true)
                        }
                    }
                }
            };
            if learned.is_some() && self.deprecate_eof.is_none() {
                self.deprecate_eof = learned;
            }
            self.consume_packet(1, buf, total);
            if done {
                if let Some(r) = self.response.take() {
                    out.push(record(r));
                }
            }
        }
    }

    pub fn on_close(&mut self, out: &mut Vec<Record>) {
        if let Some(r) = self.response.take() {
            out.push(record(r));
        }
        self.stats.unanswered += self.waiting.len() as u64;
        self.waiting.clear();
    }
}

/// An OK packet whose status says more results follow.
fn more_results_ok(body: &[u8]) -> bool {
    let mut i = 1;
    for _ in 0..2 {
        match body.get(i) {
            Some(0xfc) => i += 3,
            Some(0xfd) => i += 4,
            Some(0xfe) => i += 9,
            Some(_) => i += 1,
            None => return false,
        }
    }
    body.get(i..i + 2)
        .is_some_and(|s| u16::from_le_bytes([s[0], s[1]]) & 0x0008 != 0)
}

/// An EOF whose status says more results follow.
fn more_results_eof(body: &[u8]) -> bool {
    body.len() >= 5 && u16::from_le_bytes([body[3], body[4]]) & 0x0008 != 0
}

fn error_code(body: &[u8]) -> Option<String> {
    let code = body.get(1..3).map(|s| u16::from_le_bytes([s[0], s[1]]))?;
    Some(code.to_string())
}

/// A command without SQL, by its protocol name (without `COM_`).
fn command_name(kind: u8) -> &'static str {
    match kind {
        COM_STMT_EXECUTE => "EXECUTE",
        LOGIN => "LOGIN",
        COM_INIT_DB => "USE",
        0x09 => "STATISTICS",
        0x0d => "DEBUG",
        0x0e => "PING",
        0x11 => "CHANGE_USER",
        0x1a => "STMT_RESET",
        0x1b => "SET_OPTION",
        0x1c => "STMT_FETCH",
        0x1f => "RESET_CONNECTION",
        _ => "COMMAND",
    }
}

fn record(r: Response) -> Record {
    let sql = r.command.sql.clone().unwrap_or_default();
    let (mut operation, table) = summarize(&sql);
    if operation.is_empty() {
        operation = command_name(r.command.kind).to_string();
    }
    if r.command.kind == COM_STMT_PREPARE {
        operation = format!("PREPARE {operation}");
    }
    Record {
        protocol: "mysql",
        method: operation.as_str().into(),
        route: match table {
            Some(t) => format!("{operation} {t}").into(),
            None => operation.into(),
        },
        resource: sql.into(),
        host: None,
        status: None,
        error: r.error.map(Text::from),
        request_bytes: r.command.bytes,
        response_bytes: r.bytes,
        request_start: r.command.start,
        request_end: r.command.end,
        response_start: r.start,
        response_end: r.end,
        partial: false,
    }
}

/// After lost bytes: to the next command packet (sequence 0, a query or a prepare).
fn resync(buf: &mut Input<'_>) {
    let data = buf.data();
    let n = (0..data.len().saturating_sub(5))
        .find(|&i| {
            data[i + 3] == 0
                && matches!(data[i + 4], COM_QUERY | COM_STMT_PREPARE)
                && data[i + 5].is_ascii_alphabetic()
        })
        .unwrap_or_else(|| data.len().saturating_sub(5));
    buf.consume(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![
            body.len() as u8,
            (body.len() >> 8) as u8,
            (body.len() >> 16) as u8,
            seq,
        ];
        p.extend_from_slice(body);
        p
    }

    fn run(client: &[Vec<u8>], server: &[Vec<u8>]) -> Vec<Record> {
        let (mut c, mut s) = (StreamBuf::new(1 << 16), StreamBuf::new(1 << 16));
        let (mut m, mut out) = (
            Mysql {
                ready: true,
                ..Mysql::default()
            },
            Vec::new(),
        );
        let (mut cp, mut sp) = (0, 0);
        // Each command, then its answer.
        for (q, a) in client.iter().zip(server) {
            c.push(cp, q, 1);
            cp += q.len() as u64;
            m.on_request(&mut c.view());
            s.push(sp, a, 2);
            sp += a.len() as u64;
            m.on_response(&mut s.view(), &mut out);
        }
        m.on_close(&mut out);
        out
    }

    #[test]
    fn queries_result_sets_prepared_statements_and_errors() {
        let ok = pkt(1, &[0, 1, 0, 2, 0, 0, 0]);
        let mut select = pkt(1, &[1]);
        select.extend(pkt(2, b"\x03def\x00\x00\x00\x01a"));
        select.extend(pkt(3, &[0xfe, 0, 0, 2, 0]));
        select.extend(pkt(4, b"\x011"));
        select.extend(pkt(5, b"\x012"));
        select.extend(pkt(6, &[0xfe, 0, 0, 2, 0]));
        let mut prepare_ok = pkt(1, &[0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        prepare_ok.extend(pkt(2, b"\x03def"));
        prepare_ok.extend(pkt(3, &[0xfe, 0, 0, 2, 0]));
        let error = pkt(1, b"\xff\x7a\x04#42S02Table 'shop.missing' doesn't exist");
        let mut q = vec![COM_QUERY];
        q.extend_from_slice(b"SELECT a FROM orders");
        let mut ins = vec![COM_QUERY];
        ins.extend_from_slice(b"insert into items values (1)");
        let mut prep = vec![COM_STMT_PREPARE];
        prep.extend_from_slice(b"UPDATE items SET a = ? WHERE id = 1");
        let exec = vec![COM_STMT_EXECUTE, 7, 0, 0, 0, 0, 1, 0, 0, 0];
        let mut bad = vec![COM_QUERY];
        bad.extend_from_slice(b"SELECT * FROM missing");
        let out = run(
            &[
                pkt(0, &q),
                pkt(0, &ins),
                pkt(0, &prep),
                pkt(0, &exec),
                pkt(0, &bad),
            ],
            &[select, ok.clone(), prepare_ok, ok, error],
        );
        let got: Vec<(&str, &str, Option<&str>)> = out
            .iter()
            .map(|r| (r.method.as_str(), r.route.as_str(), r.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("SELECT", "SELECT orders", None),
                ("INSERT", "INSERT items", None),
                ("PREPARE UPDATE", "PREPARE UPDATE items", None),
                ("UPDATE", "UPDATE items", None),
                ("SELECT", "SELECT missing", Some("1146")),
            ]
        );
        assert_eq!(
            out[3].resource, "UPDATE items SET a = ? WHERE id = 1",
            "the executed statement's SQL"
        );
    }

    #[test]
    fn commands_without_sql_go_by_their_protocol_names() {
        let ok = pkt(1, &[0, 0, 0, 2, 0, 0, 0]);
        let commands = [0x0e, 0x1a, 0x11, 0x1f, 0x7f];
        let client: Vec<Vec<u8>> = commands
            .iter()
            .map(|c| {
                let mut body = vec![*c];
                if *c == 0x1a {
                    body.extend_from_slice(&7u32.to_le_bytes());
                }
                pkt(0, &body)
            })
            .collect();
        let server = vec![ok.clone(); commands.len()];
        let got: Vec<Text> = run(&client, &server)
            .into_iter()
            .map(|r| r.method)
            .collect();
        assert_eq!(
            got,
            [
                "PING",
                "STMT_RESET",
                "CHANGE_USER",
                "RESET_CONNECTION",
                "COMMAND"
            ]
        );
    }

    #[test]
    fn greetings_and_commands_are_recognised() {
        assert!(looks_like(&[], &pkt(0, b"\x0a8.0.36\x00rest")));
        let mut q = vec![COM_QUERY];
        q.extend_from_slice(b"select 1");
        assert!(looks_like(&pkt(0, &q), &[]));
        assert!(!looks_like(b"GET / HTTP/1.1", b""));
        assert_eq!(lenenc(&[0xfc, 0x10, 0x27]), Some(10_000));
    }
}
#[cfg(test)]
mod compressed_tests {
    use super::*;

    #[test]
    fn a_compressed_connection_joined_mid_way() {
        let client = b"\x0f\x00\x00\x00\x00\x00\x00\x0b\x00\x00\x00\x03use `test`";
        let server = b"\x0b\x00\x00\x01\x00\x00\x00\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00";
        assert!(looks_like(client, b""));
        let mut conn = crate::Conn::new(1 << 16);
        let mut out = Vec::new();
        conn.push(crate::Dir::Request, 0, client, 1, &mut out);
        conn.push(crate::Dir::Response, 0, server, 2, &mut out);
        conn.close(&mut out);
        assert_eq!(out.len(), 1, "{out:?} {:?}", conn.protocol);
        assert_eq!(
            (out[0].method.as_str(), out[0].resource.as_str()),
            ("USE", "use `test`")
        );
    }
}
