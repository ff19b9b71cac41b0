//! Every L7 parser on arbitrary bytes, chosen by the first byte (HTTP/1, HTTP/2, DNS over
//! TCP, Redis, PostgreSQL, MySQL, Kafka), the rest cut into pushes to either direction
//! with jumps as lost data: never a panic, a loop, or a buffer past its bound. DNS
//! datagrams go through `dns::Pairing` too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_l7::{Conn, Dir, Protocol};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let protocol = match which % 7 {
        0 => Protocol::Http1,
        1 => Protocol::Http2,
        2 => Protocol::Dns,
        3 => Protocol::Redis,
        4 => Protocol::Postgresql,
        5 => Protocol::Mysql,
        _ => Protocol::Kafka,
    };
    let mut conn = Conn::with_protocol(4096, protocol);
    let mut out = Vec::new();
    let mut pos = [0u64; 2];
    let mut rest = rest;
    let mut ts = 0;
    let mut dns = loupe_l7::dns::Pairing::default();
    let (a, b) = ("10.0.0.1:5353".parse().unwrap(), "10.0.0.53:53".parse().unwrap());
    while let Some((&control, tail)) = rest.split_first() {
        let len = (control & 0x3f) as usize;
        let (piece, after) = tail.split_at(len.min(tail.len()));
        let k = (control >> 7) as usize;
        if control & 0x40 != 0 {
            pos[k] += 5;
        }
        let dir = if k == 0 { Dir::Request } else { Dir::Response };
        conn.push(dir, pos[k], piece, ts, &mut out);
        dns.message(if k == 0 { a } else { b }, if k == 0 { b } else { a }, piece, ts, &mut out);
        pos[k] += piece.len() as u64;
        ts += 1;
        assert!(conn.client.buffered() <= 4096 && conn.server.buffered() <= 4096);
        rest = after;
    }
    conn.close(&mut out);
});
