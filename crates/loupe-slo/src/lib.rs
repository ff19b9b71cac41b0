//! `loupe-slo`: the delivery SLO. A delivery's platform time is its wall time minus the
//! user-owned and excluded time no platform work overlaps, by interval arithmetic over
//! the trace's spans, in two profiles (SIG Scalability's SLI and Ready-based delivery);
//! each pod gets a deadline from its spec ([`Slo::deadline`]), each delivery a verdict
//! ([`judge`]), and verdicts roll up into success rates and percentiles per window
//! ([`summarize`]). Pure: timelines in, verdicts out.

pub mod alerts;
pub mod deadline;
pub mod interval;
pub mod platform;
pub mod verdict;
pub mod window;

pub use alerts::prometheus_rules;
pub use deadline::{Deadline, PodShape, Slo, SloConfig, DEFAULT_CONFIG};
pub use interval::IntervalSet;
pub use platform::{platform_time, PlatformTime, Profile};
pub use verdict::{judge, undecided_until, Outcome, Verdict};
pub use window::{summarize, violations, Dimension, Judged, Summary, Violations};
