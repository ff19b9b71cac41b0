//! A log file's bytes, plain or gzip: read into records and located errors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = std::io::BufReader::new(data);
    let mut n = 0u64;
    loupe_ingest::files::read_records(&mut reader, |_| n += 1);
    let mut gz = std::io::BufReader::new(flate2_like(data));
    loupe_ingest::files::read_records(&mut gz, |_| {});
});

/// The gzip path of `files::open`, without a file.
fn flate2_like(data: &[u8]) -> impl std::io::Read + '_ {
    loupe_ingest::files::gzip_reader(data)
}
