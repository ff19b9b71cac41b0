//! HTTP/1 from byte fixtures: pipelining, chunked bodies, 100-continue, HEAD/204/304,
//! upgrades, close-delimited bodies, lost data and joining mid-connection; the time
//! split; and arbitrary splits of the same bytes giving the same records.

use loupe_l7::{Conn, Dir, Record, Text};

/// Feeds `(dir, bytes)` in order, one push each, 1 ms apart; closes; returns the records.
fn run(parts: &[(Dir, &[u8])]) -> (Vec<Record>, Conn) {
    let mut conn = Conn::new(loupe_l7::DEFAULT_BUFFER);
    let (mut out, mut pos) = (Vec::new(), [0u64, 0u64]);
    for (i, (dir, bytes)) in parts.iter().enumerate() {
        let k = (*dir == Dir::Response) as usize;
        conn.push(*dir, pos[k], bytes, 1000 * i as i64, &mut out);
        pos[k] += bytes.len() as u64;
    }
    conn.close(&mut out);
    (out, conn)
}

use Dir::{Request as Q, Response as A};

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (r, conn) = run(&[
        (Q, b"GET /a/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"),
        (A, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].method.as_str(), r[0].route.as_str(), r[0].status),
        ("GET", "/a/{id}", Some(200))
    );
    assert_eq!(
        (r[1].resource.as_str(), r[1].status, r[1].error.as_deref()),
        ("/b", Some(503), Some("5xx"))
    );
    assert_eq!(r[0].host.as_deref(), Some("x"));
    assert_eq!(conn.http1_stats().malformed, 0);
}

#[test]
fn chunked_bodies_with_trailers_and_the_time_split() {
    let (r, _) = run(&[
        (
            Q,
            b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ),
        (Q, b"0\r\n\r\n"),
        (
            A,
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        ),
        (A, b"0\r\nX-Checksum: 1\r\n\r\n"),
    ]);
    assert_eq!(r.len(), 1);
    let x = &r[0];
    assert_eq!((x.method.as_str(), x.status), ("POST", Some(201)));
    assert_eq!(x.request_bytes, 53 + 15, "head, chunk, last chunk");
    assert_eq!(
        (
            x.request_start,
            x.request_end,
            x.response_start,
            x.response_end
        ),
        (0, 1000, 2000, 3000)
    );
    assert_eq!(
        (x.sending_us(), x.server_us(), x.receiving_us()),
        (1000, 1000, 1000)
    );
}

#[test]
fn continue_head_no_content_and_not_modified_have_no_body() {
    let (r, _) = run(&[
        (Q, b"PUT /k HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"),
        (A, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (Q, b"abc"),
        (A, b"HTTP/1.1 204 No Content\r\n\r\n"),
        (Q, b"HEAD /big HTTP/1.1\r\n\r\nGET /etag HTTP/1.1\r\n\r\n"),
        (A, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
    ]);
    let got: Vec<(&str, Option<u16>)> = r.iter().map(|x| (x.method.as_str(), x.status)).collect();
    assert_eq!(
        got,
        vec![("PUT", Some(204)), ("HEAD", Some(200)), ("GET", Some(304))]
    );
}

#[test]
fn an_upgrade_stops_parsing_and_a_close_ends_an_unframed_body() {
    let (r, conn) = run(&[
        (
            Q,
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ),
        (
            A,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        ),
        (Q, b"\x81\x85garbage that is not http"),
    ]);
    assert_eq!((r.len(), r[0].status), (1, Some(101)));
    assert_eq!(
        conn.http1_stats().malformed,
        0,
        "frames after the upgrade are not parsed"
    );

    let (r, _) = run(&[
        (Q, b"GET /old HTTP/1.0\r\n\r\n"),
        (A, b"HTTP/1.0 200 OK\r\n\r\nbody until"),
        (A, b" the close"),
    ]);
    assert_eq!((r.len(), r[0].response_bytes), (1, 19 + 20));
}

#[test]
fn after_lost_data_both_sides_resynchronise() {
    let mut conn = Conn::new(loupe_l7::DEFAULT_BUFFER);
    let mut out = Vec::new();
    conn.push(Q, 0, b"GET /1 HTTP/1.1\r\n\r\n", 0, &mut out);
    conn.push(
        A,
        0,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234",
        1,
        &mut out,
    );
    // The rest of that body and a whole exchange are lost.
    conn.push(Q, 40, b"GET /3 HTTP/1.1\r\n\r\n", 2, &mut out);
    conn.push(
        A,
        500,
        b"789HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        3,
        &mut out,
    );
    conn.close(&mut out);
    // The response in flight at the gap is dropped, and so are the requests waiting (the
    // pairing is lost); the next response is reported as one whose request was not seen.
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].status, out[0].partial), (Some(404), true));
    assert_eq!(conn.server.losses.gaps, 1);
}

#[test]
fn joining_mid_connection_starts_at_the_next_message() {
    let (r, conn) = run(&[
        (
            A,
            b"ent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ),
        (Q, b"GET /x HTTP/1.1\r\n\r\n"),
        (A, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(
        r.last().map(|x| (x.method.as_str(), x.partial)),
        Some(("GET", false))
    );
    assert!(r.len() <= 2, "{r:?}");
    let _ = conn;
}

#[test]
fn any_split_of_the_bytes_gives_the_same_records() {
    let req: &[u8] =
        b"POST /orders HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /orders/7 HTTP/1.1\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 404 NF\r\nContent-Length: 1\r\n\r\nx";
    let whole = run(&[(Q, req), (A, resp)]).0;
    assert_eq!(whole.len(), 2);
    for size in 1..=17 {
        let mut parts: Vec<(Dir, &[u8])> = req.chunks(size).map(|c| (Q, c)).collect();
        parts.extend(resp.chunks(size).map(|c| (A, c)));
        let split = run(&parts).0;
        let strip = |r: &[Record]| -> Vec<(Text, Text, Option<u16>, u64, u64)> {
            r.iter()
                .map(|x| {
                    (
                        x.method.clone(),
                        x.route.clone(),
                        x.status,
                        x.request_bytes,
                        x.response_bytes,
                    )
                })
                .collect()
        };
        assert_eq!(strip(&split), strip(&whole), "pieces of {size}");
    }
}

#[test]
fn garbage_is_counted_never_a_panic() {
    let mut conn = Conn::new(4096);
    let mut out = Vec::new();
    let mut seed = 7u64;
    conn.push(Q, 0, b"GET / HTTP/1.1\r\n", 0, &mut out);
    let mut pos = [16u64, 0];
    for i in 0..2000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = (seed >> 33) as usize % 300;
        let bytes: Vec<u8> = (0..len).map(|j| (seed >> (j % 56)) as u8).collect();
        let k = (i % 2) as usize;
        let dir = if k == 0 { Q } else { A };
        conn.push(dir, pos[k], &bytes, i, &mut out);
        pos[k] += len as u64;
        assert!(conn.client.buffered() <= 4096 && conn.server.buffered() <= 4096);
    }
    conn.close(&mut out);
}

#[test]
fn bytes_lost_inside_a_body_do_not_lose_the_exchange() {
    // A capture with a small snap length: the middle of a long body is missing.
    let mut conn = Conn::new(loupe_l7::DEFAULT_BUFFER);
    let mut out = Vec::new();
    conn.push(
        Q,
        0,
        b"GET /big HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
        0,
        &mut out,
    );
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n";
    conn.push(A, 0, head, 1, &mut out);
    conn.push(A, head.len() as u64, &[b'x'; 100], 2, &mut out);
    // 9 800 bytes never captured, then the body's last 100 and the next response.
    let tail_at = head.len() as u64 + 9900;
    let mut tail = vec![b'y'; 100];
    tail.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    conn.push(A, tail_at, &tail, 3, &mut out);
    conn.close(&mut out);
    let got: Vec<(&str, Option<u16>, u64)> = out
        .iter()
        .map(|r| (r.resource.as_str(), r.status, r.response_bytes))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/big", Some(200), head.len() as u64 + 10_000),
            ("/next", Some(404), 45)
        ]
    );
}

#[test]
fn a_full_queue_drops_its_oldest_requests_without_shifting_the_pairing() {
    // 300 pipelined requests before any answer: the first 44 fall out of the queue of
    // 256; their answers are read and not paired with the requests after them.
    let (mut asks, mut answers) = (Vec::new(), Vec::new());
    for i in 0..300 {
        let status = if i % 3 == 0 { 404 } else { 200 };
        asks.extend_from_slice(format!("GET /s/{status} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        answers.extend_from_slice(
            format!("HTTP/1.1 {status} X\r\nContent-Length: 1\r\n\r\n.").as_bytes(),
        );
    }
    let (r, conn) = run(&[(Q, &asks), (A, &answers)]);
    assert_eq!(r.len(), 256);
    for x in &r {
        assert_eq!(x.resource, format!("/s/{}", x.status.unwrap()), "{x:?}");
    }
    let stats = conn.http1_stats();
    assert_eq!((stats.unanswered, stats.orphans), (44, 0));
}
