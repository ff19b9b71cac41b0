use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the Unix epoch, UTC. Audit `MicroTime` has exactly this precision.
pub type Micros = i64;

/// Parses an RFC 3339 timestamp (`2024-01-01T01:00:00.123456Z`, any offset) into [`Micros`].
pub fn parse_time_micros(s: &str) -> Option<Micros> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Formats [`Micros`] the way the apiserver writes `MicroTime`.
pub fn format_micros(us: Micros) -> String {
    match DateTime::<Utc>::from_timestamp_micros(us) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => us.to_string(),
    }
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
    }
}
