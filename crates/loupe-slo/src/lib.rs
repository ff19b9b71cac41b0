//! `loupe-slo`: the delivery SLO. A delivery's platform time is its wall time minus the
//! user-owned and excluded time no platform work overlaps, by interval arithmetic over
//! the trace's spans, in two profiles (SIG Scalability's SLI and Ready-based delivery).
//! Pure: traces in, times out.

pub mod interval;
pub mod platform;

pub use interval::IntervalSet;
pub use platform::{platform_time, PlatformTime, Profile};
