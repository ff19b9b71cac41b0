//! Durations the way people read them in a one-line answer.

/// `850ms`, `4.2s`, `2m13s`, `1h05m`, `3d4h`.
pub fn human(us: i64) -> String {
    let us = us.max(0);
    let ms = us / 1000;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = us as f64 / 1e6;
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let secs = us / 1_000_000;
    let (d, h, m, sec) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h) {
        (0, 0) => format!("{m}m{sec:02}s"),
        (0, h) => format!("{h}h{m:02}m"),
        (d, h) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(850_000), "850ms");
        assert_eq!(human(4_240_000), "4.2s");
        assert_eq!(human(133_400_000), "2m13s");
        assert_eq!(human(3_900_000_000), "1h05m");
        assert_eq!(human(273_600_000_000), "3d4h");
        assert_eq!(human(-5), "0ms");
    }
}
