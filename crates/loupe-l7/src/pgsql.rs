//! PostgreSQL: the frontend/backend protocol 3.0, simple and extended. Messages are a
//! type byte and a length; the startup, SSL and cancel requests have no type byte. A
//! request is a query cycle: a `Query`, or the extended messages up to `Sync`, answered
//! up to `ReadyForQuery`. Prepared statements are remembered by name, so an `Execute`
//! of one is recorded with its SQL; errors carry their SQLSTATE.

use std::collections::{HashMap, VecDeque};

use crate::record::{Record, Text};
use crate::stream::Input;

/// Longest message followed; longer ones (big COPY rows, huge results) are skipped.
const MAX_MESSAGE: usize = 1 << 20;
/// SQL text kept per record.
const MAX_SQL: usize = 1024;
/// Prepared statements remembered per connection.
const MAX_STATEMENTS: usize = 1024;
const MAX_WAITING: usize = 1024;

#[derive(Debug, Clone, Default)]
struct Cycle {
    sql: Option<String>,
    start: i64,
    end: i64,
    bytes: u64,
    /// The startup: answered by authentication up to the first `ReadyForQuery`.
    startup: bool,
    /// A `Query` or an `Execute` ran a statement; a cycle of only `Parse` prepared one.
    executes: bool,
    prepares: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgStats {
    pub malformed: u64,
    pub unanswered: u64,
    pub orphans: u64,
    pub cut_short: u64,
}

/// One connection's PostgreSQL state.
#[derive(Debug, Default)]
pub struct Pgsql {
    started: bool,
    /// The extended-protocol cycle being sent (until `Sync`).
    open: Option<Cycle>,
    waiting: VecDeque<Cycle>,
    /// Answers still to come for cycles dropped from the full queue (not the answers of
    /// the cycles after them).
    dropped_answers: u64,
    statements: HashMap<String, String>,
    /// The answer being read: (first byte time, bytes, rows, last command tag, SQLSTATE).
    answer: Option<Answer>,
    /// Bytes of a long message still to skip, per side.
    skip: [u64; 2],
    pub stats: PgStats,
}

#[derive(Debug, Default)]
struct Answer {
    start: i64,
    end: i64,
    bytes: u64,
    tag: Option<String>,
    sqlstate: Option<String>,
}

/// Whether `data` starts a PostgreSQL conversation (a startup or SSL request), or a
/// simple query mid-connection.
pub fn looks_like_client(data: &[u8]) -> bool {
    if data.len() >= 8 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let code = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        // A startup's parameters are `name\0value\0` pairs with well-known names (a
        // Kafka Metadata v0 request has the same first eight bytes).
        let params = &data[8..];
        let startup = code == 196_608
            && [
                "user\0",
                "database\0",
                "application_name\0",
                "client_encoding\0",
                "options\0",
                "replication\0",
            ]
            .iter()
            .any(|k| params.starts_with(k.as_bytes()));
        if (8..10_000).contains(&len) && (startup || matches!(code, 80_877_103 | 80_877_104)) {
            return true;
        }
    }
    if data.len() < 6 || !matches!(data[0], b'Q' | b'P') {
        return false;
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if !(5..MAX_MESSAGE).contains(&len) {
        return false;
    }
    // A query's SQL, or a Parse's statement name then its SQL, starts with a letter.
    let sql = if data[0] == b'Q' {
        &data[5..]
    } else {
        match data[5..].iter().take(64).position(|b| *b == 0) {
            Some(i) => &data[5 + i + 1..],
            None => return false,
        }
    };
    sql.first()
        .is_some_and(|b| b.is_ascii_alphabetic() || b.is_ascii_whitespace())
}

/// One framed message at the start of `data`: (type, body, total length), or `None`
/// while it is incomplete. `Err` when the length is impossible.
/// A framed message: its type, its body, and its length with the header.
type Framed<'a> = (u8, &'a [u8], usize);

fn message(data: &[u8]) -> Result<Option<Framed<'_>>, ()> {
    if data.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if len < 4 {
        return Err(());
    }
    if data.len() < len + 1 {
        return Ok(None);
    }
    Ok(Some((data[0], &data[5..len + 1], len + 1)))
}

fn cstr(body: &[u8]) -> (&[u8], &[u8]) {
    match body.iter().position(|b| *b == 0) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[]),
    }
}

fn text(b: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(&b[..b.len().min(MAX_SQL)]).into_owned();
    s.truncate(s.trim_end().len());
    s
}

impl Pgsql {
    pub fn on_request(&mut self, buf: &mut Input<'_>) {
        if buf.take_loss().is_some() {
            self.open = None;
            self.skip[0] = 0;
            resync(buf, b"QPBES");
        }
        loop {
            if buf.skip_pending(&mut self.skip[0]) {
                return;
            }
            // Startup, SSL or cancel request (again after an SSL refusal): a length and a
            // code, no type byte.
            let data = buf.data();
            if data.first() == Some(&0) && looks_like_client(data) {
                let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
                if data.len() < len {
                    return;
                }
                let code = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                buf.consume(len);
                self.started = true;
                // A startup (not an SSL or cancel request) is answered up to ReadyForQuery.
                if code == 196_608 {
                    self.queue(Cycle {
                        startup: true,
                        ..Cycle::default()
                    });
                }
                continue;
            }
            if data.len() < 8 && !self.started && data.first() == Some(&0) {
                return;
            }
            self.started = true;
            let (kind, body, total) = match message(buf.data()) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    self.skip_long(0, buf);
                    return;
                }
                Err(()) => {
                    self.stats.malformed += 1;
                    buf.consume(1);
                    resync(buf, b"QPBES");
                    continue;
                }
            };
            let start = buf.time_at(buf.position()).unwrap_or(0);
            let end = buf
                .time_at(buf.position() + total as u64 - 1)
                .unwrap_or(start);
            let cycle = self.open.get_or_insert_with(|| Cycle {
                start,
                ..Cycle::default()
            });
            cycle.end = end;
            cycle.bytes += total as u64;
            match kind {
                b'Q' => {
                    cycle.executes = true;
                    cycle.sql = Some(text(cstr(body).0));
                    let c = self.open.take().unwrap_or_default();
                    self.queue(c);
                }
                b'P' => {
                    cycle.prepares = true;
                    let (name, rest) = cstr(body);
                    let sql = text(cstr(rest).0);
                    if self.statements.len() >= MAX_STATEMENTS {
                        self.statements.clear();
                    }
                    self.statements
                        .insert(String::from_utf8_lossy(name).into_owned(), sql.clone());
                    cycle.sql.get_or_insert(sql);
                }
                b'B' => {
                    let (_portal, rest) = cstr(body);
                    let statement = String::from_utf8_lossy(cstr(rest).0).into_owned();
                    if cycle.sql.is_none() {
                        cycle.sql = self.statements.get(&statement).cloned();
                    }
                }
                b'E' => cycle.executes = true,
                b'S' => {
                    let c = self.open.take().unwrap_or_default();
                    self.queue(c);
                }
                b'X' => self.open = None,
                _ => {}
            }
            buf.consume(total);
        }
    }

    fn queue(&mut self, cycle: Cycle) {
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
            self.dropped_answers += 1;
            self.stats.unanswered += 1;
        }
        self.waiting.push_back(cycle);
    }

    /// A message longer than the buffer can hold: skip it as it streams.
    fn skip_long(&mut self, side: usize, buf: &mut Input<'_>) {
        let data = buf.data();
        if data.len() >= 5 {
            let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
            if len + 1 > MAX_MESSAGE && data.len() >= MAX_MESSAGE / 2 {
                let have = data.len();
                self.skip[side] = (len + 1 - have) as u64;
                if side == 1 {
                    if let Some(a) = &mut self.answer {
                        a.bytes += have as u64;
                    }
                }
                buf.consume(have);
            }
        }
    }

    pub fn on_response(&mut self, buf: &mut Input<'_>, out: &mut Vec<Record>) {
        if buf.take_loss().is_some() {
            self.answer = None;
            self.skip[1] = 0;
            self.stats.unanswered += self.waiting.len() as u64;
            self.waiting.clear();
            self.dropped_answers = 0;
            resync(buf, b"Z");
        }
        loop {
            if buf.skip_pending(&mut self.skip[1]) {
                return;
            }
            // The one-byte answer to an SSL request.
            if matches!(buf.data().first(), Some(b'S' | b'N')) && buf.buffered() == 1 {
                buf.consume(1);
                return;
            }
            let (kind, body, total) = match message(buf.data()) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    self.skip_long(1, buf);
                    return;
                }
                Err(()) => {
                    self.stats.malformed += 1;
                    buf.consume(1);
                    resync(buf, b"Z");
                    continue;
                }
            };
            let start = buf.time_at(buf.position()).unwrap_or(0);
            let end = buf
                .time_at(buf.position() + total as u64 - 1)
                .unwrap_or(start);
            let a = self.answer.get_or_insert_with(|| Answer {
                start,
                ..Answer::default()
            });
            a.end = end;
            a.bytes += total as u64;
            match kind {
                b'C' => a.tag = Some(text(cstr(body).0)),
                b'E' => {
                    let mut fields = body;
                    while let Some((&code, rest)) = fields.split_first() {
                        if code == 0 {
                            break;
                        }
                        let (value, next) = cstr(rest);
                        if code == b'C' {
                            a.sqlstate = Some(text(value));
                        }
                        fields = next;
                    }
                }
                b'Z' => {
                    let a = self.answer.take().unwrap_or_default();
                    self.answered(a, out);
                }
                _ => {}
            }
            buf.consume(total);
        }
    }

    fn answered(&mut self, a: Answer, out: &mut Vec<Record>) {
        if self.dropped_answers > 0 {
            self.dropped_answers -= 1;
            return;
        }
        let Some(c) = self.waiting.pop_front() else {
            self.stats.orphans += 1;
            return;
        };
        if c.startup {
            return;
        }
        let sql = c.sql.unwrap_or_default();
        let (mut operation, table) = summarize(&sql);
        if operation.is_empty() {
            // A statement prepared before the capture (or the connection) began.
            operation = "EXECUTE".into();
        }
        if !c.executes {
            // Prepared, not run (as MySQL's `PREPARE …`): not counted as the statement.
            operation = if c.prepares {
                format!("PREPARE {operation}")
            } else {
                "SYNC".into()
            };
        }
        out.push(Record {
            protocol: "postgresql",
            method: operation.as_str().into(),
            route: match table {
                Some(t) => format!("{operation} {t}").into(),
                None => operation.into(),
            },
            resource: sql.into(),
            host: None,
            status: None,
            error: a.sqlstate.map(Text::from),
            request_bytes: c.bytes,
            response_bytes: a.bytes,
            request_start: c.start,
            request_end: c.end,
            response_start: a.start,
            response_end: a.end,
            partial: false,
        });
    }

    /// The connection (or the capture) ended: an answer without its `ReadyForQuery`
    /// still answers.
    pub fn on_close(&mut self, out: &mut Vec<Record>) {
        if let Some(a) = self.answer.take() {
            self.stats.cut_short += 1;
            self.answered(a, out);
        }
        self.stats.unanswered += self.waiting.len() as u64;
        self.waiting.clear();
    }
}

/// After lost bytes: to the next plausible message of one of `kinds`.
fn resync(buf: &mut Input<'_>, kinds: &[u8]) {
    let data = buf.data();
    let found = (0..data.len().saturating_sub(5)).find(|&i| {
        kinds.contains(&data[i]) && {
            let len =
                u32::from_be_bytes([data[i + 1], data[i + 2], data[i + 3], data[i + 4]]) as usize;
            (4..MAX_MESSAGE).contains(&len)
        }
    });
    let n = found.unwrap_or_else(|| data.len().saturating_sub(5));
    buf.consume(n);
}

/// The SQL operation (first keyword, upper-case) and the table it works on, if found:
/// `SELECT … FROM t`, `INSERT INTO t`, `UPDATE t`, `DELETE FROM t`. Bounded labels.
pub fn summarize(sql: &str) -> (String, Option<String>) {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .take(256)
        .collect();
    let operation = words
        .first()
        .map_or(String::new(), |w| w.to_ascii_uppercase());
    let after = |keyword: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(keyword))
            .and_then(|i| words.get(i + 1))
            .map(|t| {
                t.trim_matches(|c| c == '"' || c == '`')
                    .to_ascii_lowercase()
            })
    };
    let table = match operation.as_str() {
        "SELECT" | "DELETE" => after("from"),
        "INSERT" => after("into"),
        "UPDATE" => words
            .get(1)
            .map(|t| t.trim_matches('"').to_ascii_lowercase()),
        _ => None,
    };
    (
        operation,
        table.filter(|t| !t.starts_with('$') && t.len() <= 64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamBuf;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn run(client: &[Vec<u8>], server: &[Vec<u8>]) -> (Vec<Record>, PgStats) {
        let (mut c, mut s) = (StreamBuf::new(1 << 16), StreamBuf::new(1 << 16));
        let (mut p, mut out) = (Pgsql::default(), Vec::new());
        let (mut cp, mut sp) = (0, 0);
        for (i, m) in client.iter().enumerate() {
            c.push(cp, m, i as i64);
            cp += m.len() as u64;
            p.on_request(&mut c.view());
        }
        for (i, m) in server.iter().enumerate() {
            s.push(sp, m, 100 + i as i64);
            sp += m.len() as u64;
            p.on_response(&mut s.view(), &mut out);
        }
        p.on_close(&mut out);
        (out, p.stats)
    }

    #[test]
    fn simple_and_extended_queries_with_prepared_statements_and_errors() {
        let params = b"user\0app\0\0";
        let mut startup = ((8 + params.len()) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&196_608u32.to_be_bytes());
        startup.extend_from_slice(params);
        let client = vec![
            startup,
            msg(b'Q', b"SELECT * FROM orders WHERE id = 1\0"),
            msg(b'P', b"s1\0INSERT INTO items(a) VALUES ($1)\0\0\0"),
            msg(b'B', b"\0s1\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
            // The statement again, by name only.
            msg(b'B', b"\0s1\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
            msg(b'Q', b"SELECT * FROM missing\0"),
            // Prepared only (libpq's PQprepare, pgbench -M prepared): Parse, Sync.
            msg(b'P', b"s2\0UPDATE t SET a = $1\0\0\0"),
            msg(b'S', b""),
        ];
        let server = vec![
            msg(b'R', b"\0\0\0\0"),
            msg(b'Z', b"I"),
            msg(b'T', b"\0\0"),
            msg(b'D', b"\0\0"),
            msg(b'C', b"SELECT 1\0"),
            msg(b'Z', b"I"),
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'C', b"INSERT 0 1\0"),
            msg(b'Z', b"I"),
            msg(b'2', b""),
            msg(b'E', b"SERROR\0C23505\0Mduplicate key\0\0"),
            msg(b'Z', b"E"),
            msg(
                b'E',
                b"SERROR\0C42P01\0Mrelation \"missing\" does not exist\0\0",
            ),
            msg(b'Z', b"I"),
            msg(b'1', b""),
            msg(b'Z', b"I"),
        ];
        let (out, stats) = run(&client, &server);
        let got: Vec<(&str, &str, Option<&str>)> = out
            .iter()
            .map(|r| (r.method.as_str(), r.route.as_str(), r.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("SELECT", "SELECT orders", None),
                ("INSERT", "INSERT items", None),
                ("INSERT", "INSERT items", Some("23505")),
                ("SELECT", "SELECT missing", Some("42P01")),
                ("PREPARE UPDATE", "PREPARE UPDATE t", None),
            ]
        );
        assert_eq!(
            out[2].resource, "INSERT INTO items(a) VALUES ($1)",
            "the SQL of the named statement"
        );
        assert_eq!(stats, PgStats::default());
    }

    #[test]
    fn a_full_queue_drops_its_oldest_cycles_without_shifting_the_pairing() {
        // 1 100 pipelined queries before any answer: the first 76 fall out of the queue.
        let (mut client, mut server) = (Vec::new(), Vec::new());
        for i in 0..1100 {
            let fails = i % 2 == 0;
            let sql = if fails {
                "SELECT * FROM bad\0"
            } else {
                "SELECT * FROM good\0"
            };
            client.push(msg(b'Q', sql.as_bytes()));
            server.push(if fails {
                msg(b'E', b"SERROR\0C42P01\0\0")
            } else {
                msg(b'C', b"SELECT 1\0")
            });
            server.push(msg(b'Z', b"I"));
        }
        let (out, stats) = run(&client, &server);
        assert_eq!(out.len(), MAX_WAITING);
        assert_eq!((stats.unanswered, stats.orphans), (76, 0));
        for r in &out {
            assert_eq!(r.error.is_some(), r.route == "SELECT bad", "{r:?}");
        }
    }

    #[test]
    fn sql_is_summarised_to_operation_and_table() {
        assert_eq!(
            summarize("select a from public.t1 where x"),
            ("SELECT".into(), Some("public.t1".into()))
        );
        assert_eq!(
            summarize("UPDATE \"Users\" SET a=1"),
            ("UPDATE".into(), Some("users".into()))
        );
        assert_eq!(summarize("BEGIN"), ("BEGIN".into(), None));
        assert_eq!(summarize(""), (String::new(), None));
    }

    #[test]
    fn impossible_lengths_are_refused() {
        let (_, stats) = run(&[vec![b'Q', 0, 0, 0, 1, b'x']], &[]);
        assert!(stats.malformed >= 1);
        assert!(looks_like_client(&msg(b'Q', b"SELECT 1\0")));
        assert!(!looks_like_client(b"GET / HTTP/1.1"));
    }
}
