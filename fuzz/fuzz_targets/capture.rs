//! A capture file of arbitrary bytes through the reader, the frame decoder, TCP
//! reassembly and the L7 engine: read, or refused with where it failed, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = loupe_pcap::analyze_reader("fuzz.pcap", data) {
        assert!(a.read.tcp_segments + a.read.udp_datagrams <= a.read.frames);
    }
});
