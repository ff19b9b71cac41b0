//! Platform time: the part of a delivery's wall time the platform owns.
//!
//! `platform = wall − |(U ∪ Ex) \ P|` over `[start, end)`, where U are the user-owned
//! spans (image pulls, init containers, hooks, probes…), Ex the excluded intervals
//! (waiting for capacity, preemption) and P the platform-owned spans: user time only
//! stops the clock where no platform work runs beside it (reference §5.2).

use loupe_trace::{Action, Owner, Span, Trace};
use serde::{Deserialize, Serialize};

use crate::interval::IntervalSet;

/// Which SLI a delivery is measured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// SIG Scalability's pod startup SLI: creation to every container started (the
    /// status patch with phase Running), minus image pulls (the whole session, queueing
    /// included) and init containers.
    Sig,
    /// Lunettes-style: creation to Ready (or Succeeded), minus every user-owned and
    /// external span (image transfer, init, postStart, readiness, gates).
    Delivery,
}

/// The spans the SIG profile takes out, whoever owns them.
const SIG_EXCLUDED: &[&str] = &["image", "image_transfer", "image_queue", "init_run"];

/// One delivery's time, split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlatformTime {
    pub profile: Profile,
    pub start: i64,
    /// The profile's end point; `None` while it is not reached (measured to the clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    pub wall_us: i64,
    /// User-owned time not overlapped by platform work.
    pub user_us: i64,
    /// Excluded time (capacity, preemption…) not overlapped by platform work.
    pub excluded_us: i64,
    pub platform_us: i64,
}

fn interval(s: &Span, limit: i64) -> (i64, i64) {
    (s.start, s.end.unwrap_or(limit).min(limit))
}

/// The platform time of a trace by `profile`; `excluded` are intervals the diagnosis
/// excludes; `now` ends open deliveries. Deletes and upgrades have one profile: their
/// user-owned and external spans (grace periods, hooks, finalizers, pulls) are taken out.
pub fn platform_time(
    trace: &Trace,
    profile: Profile,
    excluded: &IntervalSet,
    now: i64,
) -> PlatformTime {
    let profile = if trace.action == Action::Create {
        profile
    } else {
        Profile::Delivery
    };
    let start = trace.start;
    // As of `now`: an end or abort after it has not happened yet.
    let end = match profile {
        Profile::Delivery => trace.end,
        Profile::Sig => trace
            .spans
            .iter()
            .find(|s| s.name == "readiness" && s.depth == 1)
            .map(|s| s.start)
            .or(trace.end),
    };
    let end = end.filter(|e| *e <= now);
    let aborted = trace.aborted.filter(|a| *a <= now);
    let limit = end.or(aborted).unwrap_or(now).max(start);
    // A user stage broken into parts counts by its parts: the gaps between them (status
    // reports, the kubelet starting the next container) are the platform's. Spans come
    // depth first, so a span's parts follow it, one level deeper.
    let spans = &trace.spans;
    let has_parts = |i: usize| spans.get(i + 1).is_some_and(|n| n.depth > spans[i].depth);
    let children = spans
        .iter()
        .enumerate()
        .filter(|(i, s)| s.depth > 0 && !(s.owner != Owner::Platform && has_parts(*i)))
        .map(|(_, s)| s);
    let (mut user, mut platform) = (Vec::new(), Vec::new());
    for s in children {
        let taken_out = profile == Profile::Sig && SIG_EXCLUDED.contains(&s.name.as_str());
        match (s.owner, taken_out) {
            (_, true) => user.push(interval(s, limit)),
            (Owner::Platform, _) => platform.push(interval(s, limit)),
            // The SIG SLI counts postStart, probes and gates as they fall before its end.
            (Owner::User | Owner::External, _) if profile == Profile::Delivery => {
                user.push(interval(s, limit))
            }
            _ => {}
        }
    }
    let platform = IntervalSet::from_intervals(platform);
    let user = IntervalSet::from_intervals(user)
        .clip(start, limit)
        .minus(&platform);
    let excluded = excluded.clip(start, limit).minus(&platform).minus(&user);
    let wall = limit - start;
    let (user_us, excluded_us) = (user.measure(), excluded.measure());
    PlatformTime {
        profile,
        start,
        end,
        wall_us: wall,
        user_us,
        excluded_us,
        platform_us: wall - user_us - excluded_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn span(name: &str, depth: usize, owner: Owner, start: f64, end: Option<f64>) -> Span {
        let (start, end) = (
            (start * S as f64) as i64,
            end.map(|e| (e * S as f64) as i64),
        );
        Span {
            name: name.into(),
            path: name.into(),
            depth,
            instance: None,
            owner,
            start,
            end,
            duration_us: end.unwrap_or(start) - start,
            open: end.is_none(),
            error: None,
            start_audit_id: "a".into(),
            end_audit_id: None,
        }
    }

    /// Created at 0, an init container 1–2 s, a pull 2–6 s of which 1 s queued, Running
    /// at 8 s, Ready at 10 s.
    fn delivered() -> Trace {
        Trace {
            action: Action::Create,
            start: 0,
            end: Some(10 * S),
            aborted: None,
            spans: vec![
                span("delivery", 0, Owner::Display, 0.0, Some(10.0)),
                span("schedule", 1, Owner::Platform, 0.0, Some(0.1)),
                span("pod_setup", 1, Owner::Platform, 0.2, Some(1.0)),
                span("init_containers", 1, Owner::User, 0.9, Some(2.0)),
                span("init_run", 2, Owner::User, 1.0, Some(1.95)),
                span("image", 1, Owner::User, 2.0, Some(6.0)),
                span("image_transfer", 2, Owner::User, 3.0, Some(6.0)),
                span("image_queue", 2, Owner::Platform, 2.0, Some(3.0)),
                span("container_start", 1, Owner::Platform, 6.0, Some(6.5)),
                span("readiness", 1, Owner::User, 8.0, Some(10.0)),
            ],
        }
    }

    #[test]
    fn delivery_subtracts_user_time_not_overlapped_by_platform_work() {
        let t = platform_time(
            &delivered(),
            Profile::Delivery,
            &IntervalSet::default(),
            20 * S,
        );
        // User: the init container's run 1–1.95 (not the phase's report gaps), the
        // transfer 3–6 (its queue 2–3 is the node's), readiness 8–10 = 5.95 s.
        assert_eq!(
            (t.wall_us, t.user_us, t.platform_us),
            (10 * S, 5_950_000, 4_050_000)
        );
        assert_eq!(t.end, Some(10 * S));
    }

    #[test]
    fn sig_ends_when_every_container_started_and_takes_out_the_whole_pull() {
        let t = platform_time(&delivered(), Profile::Sig, &IntervalSet::default(), 20 * S);
        // To Running at 8 s, less the init container's run 1–1.95 and the whole pull
        // session 2–6, as the kubelet's SLI does.
        assert_eq!(
            (t.wall_us, t.user_us, t.platform_us),
            (8 * S, 4_950_000, 3_050_000)
        );
    }

    #[test]
    fn excluded_intervals_and_open_deliveries() {
        let mut trace = delivered();
        trace.end = None;
        // Pulling since 2 s: neither its transfer nor its queue is known before Pulled.
        trace.spans.retain(|s| s.start < 2 * S || s.name == "image");
        for s in trace
            .spans
            .iter_mut()
            .filter(|s| s.name == "delivery" || s.name == "image")
        {
            s.end = None;
            s.open = true;
        }
        // Waiting for capacity 0–0.5 s, half of it under the scheduler's own span.
        let waiting = IntervalSet::from_intervals([(0, S / 2)]);
        let t = platform_time(&trace, Profile::Delivery, &waiting, 5 * S);
        assert_eq!(t.end, None);
        assert_eq!(t.wall_us, 5 * S);
        // User: the init container's run 1–1.95 and the open pull 2–5; excluded 0.1–0.2.
        assert_eq!((t.user_us, t.excluded_us), (3_950_000, S / 10));
        assert_eq!(t.platform_us, 5 * S - 3_950_000 - S / 10);
    }
}
