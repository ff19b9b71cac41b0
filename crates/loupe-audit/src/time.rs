use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the Unix epoch, UTC. Audit `MicroTime` has exactly this precision.
pub type Micros = i64;

/// Parses an RFC 3339 timestamp (`2024-01-01T01:00:00.123456Z`, any offset) into [`Micros`].
pub fn parse_time_micros(s: &str) -> Option<Micros> {
    parse_utc_fast(s.as_bytes()).or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros())
    })
}

/// The apiserver's own form, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, without a general parser:
/// it is read twice per audit event. Anything else returns `None` for the full parser.
fn parse_utc_fast(b: &[u8]) -> Option<Micros> {
    // The second's part repeats from one event to the next: remembered, only the
    // fraction is read (the full parse was 4 % of decoding an event).
    if let Some((head, second)) = SECOND.get() {
        if b.len() >= 20 && b[..19] == head && b.last() == Some(&b'Z') {
            return Some(second + fraction_micros(&b[19..b.len() - 1])?);
        }
    }
    let micros = parse_utc_full(b)?;
    if let Some(head) = b.first_chunk::<19>() {
        let fraction = micros.rem_euclid(1_000_000);
        SECOND.set(Some((*head, micros - fraction)));
    }
    Some(micros)
}

thread_local! {
    /// The last `YYYY-MM-DDTHH:MM:SS` parsed in full (so valid) and its second in µs.
    static SECOND: std::cell::Cell<Option<([u8; 19], Micros)>> =
        const { std::cell::Cell::new(None) };
}

/// `.f{1,9}` (or nothing) as µs; `None` if malformed.
fn fraction_micros(frac: &[u8]) -> Option<Micros> {
    if frac.is_empty() {
        return Some(0);
    }
    if frac[0] != b'.' || frac.len() < 2 || frac.len() > 10 {
        return None;
    }
    let digits = &frac[1..];
    let value = digits.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })?;
    Some(match digits.len() {
        n @ 1..=6 => value * 10i64.pow(6 - n as u32),
        n => value / 10i64.pow(n as u32 - 6),
    })
}

fn parse_utc_full(b: &[u8]) -> Option<Micros> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b.last() != Some(&b'Z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let micros = fraction_micros(&b[19..b.len() - 1])?;
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// "00" to "99", each pair at twice its value.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Formats [`Micros`] the way the apiserver writes `MicroTime`
/// (`2025-09-03T12:55:44.912345Z`); years outside 0–9999 fall back to a general formatter.
pub fn format_micros(us: Micros) -> String {
    let mut out = String::with_capacity(27);
    push_micros(&mut out, us);
    out
}

/// [`format_micros`] appended to `out`, without a string of its own.
pub fn push_micros(out: &mut String, us: Micros) {
    let (days, rem) = (us.div_euclid(86_400_000_000), us.rem_euclid(86_400_000_000));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        match DateTime::<Utc>::from_timestamp_micros(us) {
            Some(t) => out.push_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            None => out.push_str(&us.to_string()),
        }
        return;
    }
    let secs = rem / 1_000_000;
    let micros = rem % 1_000_000;
    let mut text = [0u8; 27];
    // Two digits at a time from a table: the simulator writes two stamps per event.
    let mut put2 = |at: usize, value: i64| {
        let i = 2 * value as usize;
        text[at..at + 2].copy_from_slice(&DIGIT_PAIRS[i..i + 2]);
    };
    put2(0, year / 100);
    put2(2, year % 100);
    put2(5, month);
    put2(8, day);
    put2(11, secs / 3600);
    put2(14, secs / 60 % 60);
    put2(17, secs % 60);
    put2(20, micros / 10_000);
    put2(22, micros / 100 % 100);
    put2(24, micros % 100);
    for (at, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        text[at] = c;
    }
    // Digits and separators only (the year is checked above, the rest are remainders).
    out.push_str(std::str::from_utf8(&text).expect("a formatted time is ASCII"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_micro_time() {
        let us = parse_time_micros("2025-09-03T12:55:44.912345Z").unwrap();
        assert_eq!(format_micros(us), "2025-09-03T12:55:44.912345Z");
        assert_eq!(
            parse_time_micros("2018-10-25T14:09:12Z"),
            Some(1_540_476_552_000_000)
        );
        assert_eq!(
            parse_time_micros("2018-10-25T16:09:12+02:00"),
            Some(1_540_476_552_000_000)
        );
        assert_eq!(parse_time_micros("yesterday"), None);
        assert_eq!(
            parse_time_micros("2024-01-01T00:00:00.5Z"),
            Some(1_704_067_200_500_000)
        );
        assert_eq!(
            parse_time_micros("2024-01-01T00:00:00.123456789Z"),
            Some(1_704_067_200_123_456)
        );
        assert_eq!(parse_time_micros("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn the_formatter_agrees_with_chrono() {
        let mut t = -2_208_988_800_000_000i64; // 1900
        while t < 4_102_444_800_000_000 {
            let chrono = DateTime::<Utc>::from_timestamp_micros(t)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::Micros, true);
            assert_eq!(format_micros(t), chrono);
            t += 86_399_999_937 / 7;
        }
        assert_eq!(format_micros(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn the_fast_path_agrees_with_chrono() {
        let mut t = -2_208_988_800_000_000i64; // 1900
        while t < 4_102_444_800_000_000 {
            // 2100
            let text = format_micros(t);
            let slow = DateTime::parse_from_rfc3339(&text)
                .unwrap()
                .timestamp_micros();
            assert_eq!(parse_utc_fast(text.as_bytes()), Some(slow), "{text}");
            t += 86_399_999_937;
        }
    }

    #[test]
    fn the_remembered_second_gives_the_same_answers() {
        let chrono = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_micros())
        };
        // The same second with every kind of fraction, then cases the memo must not take.
        for text in [
            "2026-01-01T00:00:00.015245Z",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.5Z",
            "2026-01-01T00:00:00.123456789Z",
            "2026-01-01T00:00:00.9999999Z",
            "1969-12-31T23:59:59.25Z",
            "1969-12-31T23:59:59Z",
            "1969-12-31T23:59:59.75Z",
        ] {
            assert_eq!(parse_time_micros(text), chrono(text), "{text}");
        }
        for bad in [
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00.12x4Z",
            "2026-01-01T00:00:00.12345678901Z",
            "2026-01-01T00:00:00,5Z",
        ] {
            assert_eq!(
                parse_time_micros("2026-01-01T00:00:00.1Z"),
                chrono("2026-01-01T00:00:00.1Z")
            );
            assert_eq!(parse_time_micros(bad), chrono(bad), "{bad}");
        }
        // Before anything is remembered, nothing that merely looks alike passes.
        std::thread::spawn(|| {
            let zeros = format!("{}Z", "\0".repeat(19));
            assert_eq!(parse_time_micros(&zeros), None);
        })
        .join()
        .unwrap();
    }
}
