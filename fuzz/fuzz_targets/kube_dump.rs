//! A kubectl dump (`loupe pcap --kube`) from arbitrary text: names or a clear error,
//! never a panic; every name it gives answers the address it was read for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(names) = loupe_kube::Names::parse(text) {
        for addr in ["10.0.0.1:80", "[fd00::1]:443", "127.0.0.1:1"] {
            let addr = addr.parse().expect("a socket address");
            let _ = names.server(addr).map(loupe_kube::Named::display);
            let _ = names.client(addr).map(loupe_kube::Named::display);
        }
    }
});
