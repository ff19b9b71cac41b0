//! `loupe-l7`: the traffic half's engine, from socket bytes to request records. Pure
//! Rust, no I/O and no eBPF: the node agent feeds it live, `loupe pcap` from captures,
//! tests from byte fixtures.
//!
//! - [`stream`]: one direction's bytes by position, bounded, with gaps said out loud.
//! - [`Conn`]: a connection's two directions and the protocol state that pairs them.
//! - [`http1`]: HTTP/1.x heads, body framing, FIFO stitching.
//! - [`h2`]: HTTP/2 (h2c) frames, HPACK, streams, gRPC status.
//! - [`dns`]: DNS over UDP and TCP, paired by transaction id.
//! - [`redis`]: RESP2/RESP3, pipelining, pub/sub pushes, MULTI/EXEC.
//! - [`pgsql`]: PostgreSQL simple and extended queries, prepared statements, SQLSTATE.
//! - [`mysql`]: MySQL text and prepared statements, result sets, error codes.
//! - [`kafka`]: Kafka requests and responses by correlation id, topics, error codes.
//! - [`route`]: route normalisation for bounded labels.

pub mod dns;
pub mod h2;
pub mod http1;
pub mod kafka;
pub mod mysql;
pub mod pgsql;
pub mod record;
pub mod redis;
pub mod route;
pub mod signals;
pub mod stream;
pub mod tcp;

pub use record::{Dir, Record, Text};
pub use stream::{Input, Losses, Pushed, StreamBuf};

/// Bytes buffered per direction by default (a message head larger than this is skipped).
pub const DEFAULT_BUFFER: usize = 256 * 1024;

/// What a connection's parser could not follow, in the same terms for every protocol
/// (each parser's own counters say more). `loupe pcap` reports these, so that a record
/// missing from its output is accounted for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Unfollowed {
    /// Input that did not parse as the protocol; the parser resynchronised after it.
    pub malformed: u64,
    /// Requests never answered: the capture ended or missed the answer, data was lost,
    /// or the queue's bound was passed.
    pub unanswered: u64,
    /// Answers whose request was not seen.
    pub orphans: u64,
    /// Answers cut short by the close or by the capture (still recorded).
    pub cut_short: u64,
}

impl Unfollowed {
    pub fn is_empty(&self) -> bool {
        *self == Unfollowed::default()
    }
}

impl std::ops::AddAssign for Unfollowed {
    fn add_assign(&mut self, other: Unfollowed) {
        self.malformed += other.malformed;
        self.unanswered += other.unanswered;
        self.orphans += other.orphans;
        self.cut_short += other.cut_short;
    }
}

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Not known yet: the first bytes of each direction decide.
    Unknown,
    Http1,
    /// HTTP/2 cleartext (h2c), gRPC included.
    Http2,
    /// DNS over TCP (UDP datagrams go to [`dns::Pairing`] directly).
    Dns,
    Redis,
    Postgresql,
    Mysql,
    Kafka,
    /// Seen and not recognised: its bytes are counted, not parsed.
    Other,
}

impl Protocol {
    /// The name reports use (`http1`, `postgresql`, …), as in records.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Unknown => "unknown",
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Dns => "dns",
            Protocol::Redis => "redis",
            Protocol::Postgresql => "postgresql",
            Protocol::Mysql => "mysql",
            Protocol::Kafka => "kafka",
            Protocol::Other => "other",
        }
    }
}

/// One connection: the client's and the server's bytes, and what they are saying.
#[derive(Debug)]
pub struct Conn {
    pub client: StreamBuf,
    pub server: StreamBuf,
    pub protocol: Protocol,
    http1: http1::Http1,
    h2: h2::H2,
    dns: dns::DnsTcp,
    redis: redis::Redis,
    pgsql: pgsql::Pgsql,
    mysql: mysql::Mysql,
    kafka: kafka::Kafka,
}

/// The two sides of a connection, as the TCP DNS pairing names them.
const SIDES: [std::net::SocketAddr; 2] = [
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 1),
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 2),
];

impl Conn {
    pub fn new(buffer: usize) -> Conn {
        Conn {
            client: StreamBuf::new(buffer),
            server: StreamBuf::new(buffer),
            protocol: Protocol::Unknown,
            http1: http1::Http1::default(),
            h2: h2::H2::default(),
            dns: dns::DnsTcp::default(),
            redis: redis::Redis::default(),
            pgsql: pgsql::Pgsql::default(),
            mysql: mysql::Mysql::default(),
            kafka: kafka::Kafka::default(),
        }
    }

    /// A connection known to speak `protocol` (a port convention, or a test).
    pub fn with_protocol(buffer: usize, protocol: Protocol) -> Conn {
        Conn {
            protocol,
            ..Conn::new(buffer)
        }
    }

    /// Adds bytes seen at `ts` (µs) at stream position `pos` of one direction; records
    /// completed by them go to `out`.
    pub fn push(&mut self, dir: Dir, pos: u64, data: &[u8], ts: i64, out: &mut Vec<Record>) {
        if self.protocol != Protocol::Unknown {
            return self.parse(Some((dir, pos, data, ts)), out);
        }
        // Inference reads both directions' first bytes: buffer them.
        match dir {
            Dir::Request => self.client.push(pos, data, ts),
            Dir::Response => self.server.push(pos, data, ts),
        };
        self.protocol = infer(self.client.data(), self.server.data());
        self.parse(None, out);
    }

    /// Runs the protocol's parsers over both directions, requests first: a response is
    /// paired with a request only once the request is parsed, and bytes buffered before
    /// inference wait no longer. A segment `pushed` is parsed where it lies; only what
    /// waits for more is copied into its direction's buffer.
    fn parse(&mut self, pushed: Option<(Dir, u64, &[u8], i64)>, out: &mut Vec<Record>) {
        let Conn {
            client,
            server,
            protocol,
            http1,
            h2,
            dns,
            redis,
            pgsql,
            mysql,
            kafka,
        } = self;
        let (mut c, mut s) = match pushed {
            Some((Dir::Request, pos, data, ts)) => {
                (client.push_view(pos, data, ts).1, server.view())
            }
            Some((Dir::Response, pos, data, ts)) => {
                (client.view(), server.push_view(pos, data, ts).1)
            }
            None => (client.view(), server.view()),
        };
        match protocol {
            Protocol::Http1 => {
                http1.on_request(&mut c);
                http1.on_response(&mut s, out);
            }
            Protocol::Http2 => {
                h2.on_data(0, &mut c, out);
                h2.on_data(1, &mut s, out);
            }
            Protocol::Dns => {
                dns.on_data(&mut c, SIDES[0], SIDES[1], out);
                dns.on_data(&mut s, SIDES[1], SIDES[0], out);
            }
            Protocol::Redis => {
                redis.on_request(&mut c);
                redis.on_response(&mut s, out);
            }
            Protocol::Postgresql => {
                pgsql.on_request(&mut c);
                pgsql.on_response(&mut s, out);
            }
            Protocol::Mysql => {
                mysql.on_request(&mut c);
                mysql.on_response(&mut s, out);
            }
            Protocol::Kafka => {
                kafka.on_request(&mut c);
                kafka.on_response(&mut s, out);
            }
            Protocol::Other => {
                for v in [&mut c, &mut s] {
                    let n = v.buffered();
                    v.consume(n);
                }
            }
            Protocol::Unknown => {}
        }
    }

    /// The connection closed.
    pub fn close(&mut self, out: &mut Vec<Record>) {
        if matches!(
            self.protocol,
            Protocol::Http1 | Protocol::Http2 | Protocol::Mysql
        ) {
            // What is buffered may complete a message at the close.
            self.parse(None, out);
        }
        match self.protocol {
            Protocol::Http1 => self.http1.on_close(out),
            Protocol::Http2 => self.h2.on_close(out),
            Protocol::Redis => self.redis.on_close(out),
            Protocol::Postgresql => self.pgsql.on_close(out),
            Protocol::Kafka => self.kafka.on_close(),
            Protocol::Mysql => self.mysql.on_close(out),
            _ => {}
        }
    }

    pub fn h2_stats(&self) -> h2::H2Stats {
        self.h2.stats
    }

    pub fn redis_stats(&self) -> redis::RedisStats {
        self.redis.stats
    }

    pub fn http1_stats(&self) -> http1::Http1Stats {
        self.http1.stats
    }

    /// What this connection's parser could not follow.
    pub fn unfollowed(&self) -> Unfollowed {
        match self.protocol {
            Protocol::Http1 => {
                let s = self.http1.stats;
                Unfollowed {
                    malformed: s.malformed,
                    unanswered: s.unanswered,
                    orphans: s.orphans,
                    cut_short: s.cut_short,
                }
            }
            Protocol::Http2 => {
                let s = self.h2.stats;
                Unfollowed {
                    malformed: s.malformed + s.undecodable_headers,
                    unanswered: s.unfinished,
                    ..Unfollowed::default()
                }
            }
            Protocol::Dns => {
                let s = self.dns.stats();
                Unfollowed {
                    malformed: s.malformed,
                    unanswered: s.unanswered,
                    orphans: s.orphans,
                    cut_short: 0,
                }
            }
            Protocol::Redis => {
                let s = self.redis.stats;
                Unfollowed {
                    malformed: s.malformed,
                    unanswered: s.unanswered,
                    orphans: s.orphans,
                    cut_short: s.cut_short,
                }
            }
            Protocol::Postgresql => {
                let s = self.pgsql.stats;
                Unfollowed {
                    malformed: s.malformed,
                    unanswered: s.unanswered,
                    orphans: s.orphans,
                    cut_short: s.cut_short,
                }
            }
            Protocol::Mysql => {
                let s = self.mysql.stats;
                Unfollowed {
                    malformed: s.malformed,
                    unanswered: s.unanswered,
                    orphans: s.orphans,
                    cut_short: 0,
                }
            }
            Protocol::Kafka => {
                let s = self.kafka.stats;
                Unfollowed {
                    malformed: s.malformed,
                    unanswered: s.unanswered,
                    orphans: s.orphans,
                    cut_short: 0,
                }
            }
            Protocol::Unknown | Protocol::Other => Unfollowed::default(),
        }
    }
}

/// The protocol the first bytes of each direction show, or `Unknown` while too few
/// have arrived to tell.
pub fn infer(client: &[u8], server: &[u8]) -> Protocol {
    if h2::looks_like(client) || (client.is_empty() && h2::looks_like(server)) {
        return Protocol::Http2;
    }
    if http1::looks_like_request(client) || http1::looks_like_response(server) {
        return Protocol::Http1;
    }
    if dns::looks_like_tcp(client) {
        return Protocol::Dns;
    }
    if redis::looks_like_command(client) || redis::looks_like_inline(client, server) {
        return Protocol::Redis;
    }
    if pgsql::looks_like_client(client) {
        return Protocol::Postgresql;
    }
    if mysql::looks_like(client, server) {
        return Protocol::Mysql;
    }
    if kafka::looks_like(client) {
        return Protocol::Kafka;
    }
    // Joined mid-stream: a message may start further in.
    let (c, s) = (
        &client[..client.len().min(INFER_WINDOW)],
        &server[..server.len().min(INFER_WINDOW)],
    );
    if http1::shows_messages(c, s) {
        return Protocol::Http1;
    }
    if client.len() + server.len() >= 2 * INFER_WINDOW {
        Protocol::Other
    } else {
        Protocol::Unknown
    }
}

/// How far into each direction inference looks for a message start.
const INFER_WINDOW: usize = 4096;
