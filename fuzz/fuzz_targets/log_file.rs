//! A log file's bytes, plain or gzip: read into records and located errors. The first
//! byte picks the reader's buffer size, so lines straddle fills; whatever the size, the
//! records and errors must be those of one big buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;

use loupe_ingest::files::{read_records, Item};

fuzz_target!(|data: &[u8]| {
    let Some((&size, data)) = data.split_first() else {
        return;
    };
    let whole = items(&mut std::io::BufReader::with_capacity(1 << 20, data));
    let small = items(&mut std::io::BufReader::with_capacity(1 + size as usize % 64, data));
    assert_eq!(whole, small, "buffer of {} bytes", 1 + size % 64);
    let mut gz = std::io::BufReader::new(loupe_ingest::files::gzip_reader(data));
    read_records(&mut gz, |_| {});
});

fn items(reader: &mut dyn std::io::BufRead) -> Vec<Item<'static>> {
    let mut items = Vec::new();
    read_records(reader, |i| items.push(i.into_owned()));
    items
}
