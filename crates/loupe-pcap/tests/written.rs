//! Captures written here (no corpus needed): a legacy pcap of an HTTP exchange over
//! Ethernet/IPv4 with its handshake, a reordered segment and a retransmit; the same
//! frames cut short at the end of the file.

use etherparse::PacketBuilder;

type Packet = (i64, Vec<u8>);

fn tcp(ts: i64, from_client: bool, seq: u32, flags: &str, payload: &[u8]) -> Packet {
    let (c, s) = (([10, 0, 0, 1], 40123u16), ([10, 0, 0, 2], 8080u16));
    let ((src, sp), (dst, dp)) = if from_client { (c, s) } else { (s, c) };
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 65535);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('A') {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    (ts, out)
}

/// A classic pcap (little-endian, µs, Ethernet).
pub fn pcap(packets: &[Packet]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (ts, data) in packets {
        f.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
    }
    f
}

fn exchange() -> Vec<Packet> {
    let t = 1_700_000_000_000_000;
    let req = b"GET /orders/42 HTTP/1.1\r\nHost: shop\r\n\r\n";
    let resp = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!";
    vec![
        tcp(t, true, 1000, "S", b""),
        tcp(t + 100, false, 5000, "SA", b""),
        tcp(t + 200, true, 1001 + 10, "A", &req[10..]),
        tcp(t + 300, true, 1001, "A", &req[..10]),
        tcp(t + 400, true, 1001, "A", &req[..10]),
        tcp(t + 2_000, false, 5001, "A", &resp[..20]),
        tcp(t + 2_500, false, 5021, "A", &resp[20..]),
        tcp(t + 3_000, true, 1001 + req.len() as u32, "FA", b""),
        tcp(t + 3_100, false, 5001 + resp.len() as u32, "FA", b""),
    ]
}

#[test]
fn an_exchange_in_a_written_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pcap");
    std::fs::write(&path, pcap(&exchange())).unwrap();
    let a = loupe_pcap::analyze(&path).unwrap();
    assert_eq!(
        (a.read.frames, a.read.tcp_segments, a.read.damaged.clone()),
        (9, 9, None)
    );
    assert_eq!(a.records.len(), 1, "{:?}", a.records);
    let s = &a.records[0];
    assert_eq!(s.client.to_string(), "10.0.0.1:40123");
    let r = &s.record;
    assert_eq!(
        (
            r.method.as_str(),
            r.route.as_str(),
            r.status,
            r.error.as_deref()
        ),
        ("GET", "/orders/{id}", Some(500), Some("5xx"))
    );
    // The request was whole when its first piece, late, arrived (t + 300 µs).
    assert_eq!((r.server_us(), r.receiving_us()), (1_700, 500));
    assert_eq!(a.flows.out_of_order, 1);
    assert_eq!(a.connections.len(), 1);
}

#[test]
fn a_capture_cut_short_reads_up_to_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.pcap");
    let mut bytes = pcap(&exchange());
    bytes.truncate(bytes.len() - 30);
    std::fs::write(&path, &bytes).unwrap();
    let a = loupe_pcap::analyze(&path).unwrap();
    assert_eq!(a.read.frames, 8, "{:?}", a.read);
    assert!(
        a.read
            .damaged
            .as_deref()
            .is_some_and(|d| d.contains("cut.pcap")),
        "{:?}",
        a.read
    );
    // The response's head and body came before the cut: the exchange is still there.
    assert_eq!(a.records.len(), 1);
    let missing = loupe_pcap::analyze(&dir.path().join("none.pcap")).unwrap_err();
    assert!(missing.to_string().contains("none.pcap"));
}
