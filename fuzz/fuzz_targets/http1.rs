//! HTTP/1 over arbitrary bytes: the input is cut into pushes to either direction (and
//! sometimes a jump ahead, as lost data), never a panic, a loop or a buffer past its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_l7::{Conn, Dir};

fuzz_target!(|data: &[u8]| {
    let mut conn = Conn::new(2048);
    let mut out = Vec::new();
    let mut pos = [0u64; 2];
    let mut rest = data;
    let mut ts = 0;
    while let Some((&control, tail)) = rest.split_first() {
        let len = (control & 0x3f) as usize;
        let (piece, after) = tail.split_at(len.min(tail.len()));
        let k = (control >> 7) as usize;
        if control & 0x40 != 0 {
            pos[k] += 7; // lost bytes
        }
        let dir = if k == 0 { Dir::Request } else { Dir::Response };
        conn.push(dir, pos[k], piece, ts, &mut out);
        pos[k] += piece.len() as u64;
        ts += 1;
        assert!(conn.client.buffered() <= 2048 && conn.server.buffered() <= 2048);
        rest = after;
    }
    conn.close(&mut out);
    for r in &out {
        assert!(r.response_end >= r.response_start);
    }
});
