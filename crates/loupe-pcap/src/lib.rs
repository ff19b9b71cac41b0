//! `loupe-pcap`: captures as input for the L7 engine. Reads pcap and pcapng files (both
//! byte orders, several sections and interfaces, µs and ns resolutions) with
//! `pcap-parser`, decodes Ethernet, Linux cooked (SLL, SLL2), loopback and raw IP frames
//! down to TCP and UDP with `etherparse`, and runs the TCP segments through
//! [`loupe_l7::tcp::Flows`]. A damaged file reads up to the damage and says where.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use loupe_l7::tcp::{Finished, Flows, Seen, Segment};
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file ({problem})")]
    Format { path: String, problem: String },
}

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// µs since the epoch.
    pub ts: i64,
    pub linktype: i32,
    pub data: &'a [u8],
    /// Bytes on the wire (`data` may be shorter: the snap length).
    pub wire_len: u32,
}

/// What reading a capture found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    pub frames: u64,
    /// Frames cut short by the snap length.
    pub truncated: u64,
    /// Frames of a link type or protocol not followed (ARP, ICMP, IP fragments…).
    pub skipped: u64,
    pub tcp_segments: u64,
    pub udp_datagrams: u64,
    /// The file ended inside a block, or a block could not be parsed: where reading stopped.
    pub damaged: Option<String>,
}

const READ_BUFFER: usize = 1 << 20;

fn open(path: &Path) -> Result<(String, std::fs::File), CaptureError> {
    let name = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(file) => Ok((name, file)),
        Err(source) => Err(CaptureError::Open { path: name, source }),
    }
}

/// Calls `on_frame` for every frame of the capture at `path`, in file order.
pub fn read_frames(
    path: &Path,
    mut on_frame: impl FnMut(Frame<'_>),
) -> Result<ReadReport, CaptureError> {
    let (name, file) = open(path)?;
    read_frames_from(&name, file, &mut on_frame)
}

fn read_frames_from(
    name: &str,
    input: impl Read + Send,
    on_frame: &mut dyn FnMut(Frame<'_>),
) -> Result<ReadReport, CaptureError> {
    let mut reader =
        pcap_parser::create_reader(READ_BUFFER, input).map_err(|e| CaptureError::Format {
            path: name.to_string(),
            problem: format!("{e:?}"),
        })?;
    let mut report = ReadReport::default();
    // Legacy: one link type and resolution; pcapng: per interface of the current section.
    let (mut legacy_link, mut legacy_ns) = (Linktype::ETHERNET, false);
    let mut interfaces: Vec<(Linktype, u64, i64)> = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_link = h.network;
                        legacy_ns = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = if legacy_ns {
                            i64::from(b.ts_usec) / 1000
                        } else {
                            i64::from(b.ts_usec)
                        };
                        frame(
                            &mut report,
                            on_frame,
                            Frame {
                                ts: i64::from(b.ts_sec) * 1_000_000 + frac,
                                linktype: legacy_link.0,
                                data: b.data,
                                wire_len: b.origlen,
                            },
                        );
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let resolution = idb.ts_resolution().unwrap_or(1_000_000);
                        interfaces.push((idb.linktype, resolution, idb.ts_offset()));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match interfaces.get(epb.if_id as usize) {
                            Some(&(link, resolution, offset)) => {
                                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let us = (u128::from(units) * 1_000_000
                                    / u128::from(resolution.max(1)))
                                    as i64;
                                frame(
                                    &mut report,
                                    on_frame,
                                    Frame {
                                        ts: us + offset * 1_000_000,
                                        linktype: link.0,
                                        data: epb.data,
                                        wire_len: epb.origlen,
                                    },
                                );
                            }
                            None => report.skipped += 1,
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match interfaces.first() {
                        Some(&(link, _, _)) => frame(
                            &mut report,
                            on_frame,
                            Frame {
                                ts: 0,
                                linktype: link.0,
                                data: spb.data,
                                wire_len: spb.origlen,
                            },
                        ),
                        None => report.skipped += 1,
                    },
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if let Err(e) = reader.refill() {
                    report.damaged = Some(format!("{name}: reading stopped: {e:?}"));
                    break;
                }
                // A refill that brought nothing new: the last block is cut short.
                if reader.position() == 0 && matches!(reader.next(), Err(PcapError::Incomplete(_)))
                {
                    report.damaged = Some(format!("{name}: the last block is truncated"));
                    break;
                }
            }
            Err(e) => {
                report.damaged = Some(format!(
                    "{name}: unreadable block after frame {}: {e:?}",
                    report.frames
                ));
                break;
            }
        }
    }
    Ok(report)
}

fn frame(report: &mut ReadReport, on_frame: &mut dyn FnMut(Frame<'_>), f: Frame<'_>) {
    report.frames += 1;
    if (f.data.len() as u32) < f.wire_len {
        report.truncated += 1;
    }
    on_frame(f);
}

/// A frame's transport payload.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    Tcp(Segment<'a>),
    Udp {
        src: SocketAddr,
        dst: SocketAddr,
        payload: &'a [u8],
        ts: i64,
    },
    Other,
}

/// Decodes a frame down to TCP or UDP.
pub fn decode<'a>(f: &Frame<'a>) -> Transport<'a> {
    let sliced = match f.linktype {
        1 => SlicedPacket::from_ethernet(f.data),
        // Linux cooked (SLL): a 16-byte header ending with the protocol. Read by hand:
        // the hardware types of loopback and tunnels are refused by some decoders.
        113 if f.data.len() > 16 && matches!(&f.data[14..16], [0x08, 0x00] | [0x86, 0xdd]) => {
            SlicedPacket::from_ip(&f.data[16..])
        }
        113 => SlicedPacket::from_linux_sll(f.data),
        // Linux cooked v2: a 20-byte header whose first two bytes are the protocol.
        276 if f.data.len() > 20 => SlicedPacket::from_ip(&f.data[20..]),
        // BSD loopback (NULL, LOOP): a 4-byte address family, then IP.
        0 | 108 if f.data.len() > 4 => SlicedPacket::from_ip(&f.data[4..]),
        101 | 228 | 229 | 12 | 14 => SlicedPacket::from_ip(f.data),
        _ => return Transport::Other,
    };
    let Ok(p) = sliced else {
        return Transport::Other;
    };
    let (src_ip, dst_ip, fragmented) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.payload().fragmented,
        ),
        Some(NetSlice::Ipv6(ip)) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.payload().fragmented,
        ),
        _ => return Transport::Other,
    };
    if fragmented {
        return Transport::Other;
    }
    match p.transport {
        Some(TransportSlice::Tcp(tcp)) => Transport::Tcp(Segment {
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            seq: tcp.sequence_number(),
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            payload: tcp.payload(),
            ts: f.ts,
        }),
        Some(TransportSlice::Udp(udp)) => Transport::Udp {
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            payload: udp.payload(),
            ts: f.ts,
        },
        _ => Transport::Other,
    }
}

/// Everything the L7 engine saw in a capture.
#[derive(Debug, Default)]
pub struct Analysis {
    pub read: ReadReport,
    pub records: Vec<Seen>,
    pub connections: Vec<Finished>,
    pub flows: loupe_l7::tcp::FlowStats,
    pub dns: loupe_l7::dns::DnsStats,
}

/// Reads a capture and runs every TCP connection through the L7 engine.
pub fn analyze(path: &Path) -> Result<Analysis, CaptureError> {
    let (name, file) = open(path)?;
    analyze_reader(&name, file)
}

/// [`analyze`] on any reader (`name` names it in errors).
pub fn analyze_reader(name: &str, input: impl Read + Send) -> Result<Analysis, CaptureError> {
    let mut flows = Flows::new(loupe_l7::DEFAULT_BUFFER, 65_536);
    let mut dns = loupe_l7::dns::Pairing::default();
    let (mut records, mut connections) = (Vec::new(), Vec::new());
    let (mut tcp, mut udp, mut skipped) = (0, 0, 0);
    let mut answered = Vec::new();
    let mut read = read_frames_from(name, input, &mut |f| match decode(&f) {
        Transport::Tcp(seg) => {
            tcp += 1;
            flows.push(&seg, &mut records, &mut connections);
        }
        Transport::Udp {
            src,
            dst,
            payload,
            ts,
        } => {
            udp += 1;
            // DNS, multicast DNS and LLMNR share the message format.
            if [src.port(), dst.port()]
                .iter()
                .any(|p| matches!(p, 53 | 5353 | 5355))
            {
                dns.message(src, dst, payload, ts, &mut answered);
                // A record comes with the response, which the server sent.
                records.extend(answered.drain(..).map(|record| Seen {
                    client: dst,
                    server: src,
                    record,
                }));
            }
        }
        Transport::Other => skipped += 1,
    })?;
    flows.finish(&mut records, &mut connections);
    dns.finish();
    read.tcp_segments = tcp;
    read.udp_datagrams = udp;
    read.skipped += skipped;
    Ok(Analysis {
        read,
        records,
        connections,
        flows: flows.stats,
        dns: dns.stats,
    })
}
