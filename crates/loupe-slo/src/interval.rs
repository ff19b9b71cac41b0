//! Sets of time intervals (µs, half-open `[start, end)`): union, difference, measure.

/// A normalised set: sorted, disjoint, non-empty intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalSet(Vec<(i64, i64)>);

impl IntervalSet {
    /// From any intervals: empty ones are dropped, overlapping and touching ones merged.
    pub fn from_intervals(items: impl IntoIterator<Item = (i64, i64)>) -> IntervalSet {
        let mut v: Vec<(i64, i64)> = items.into_iter().filter(|(a, b)| b > a).collect();
        v.sort_unstable();
        let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        IntervalSet(out)
    }

    pub fn intervals(&self) -> &[(i64, i64)] {
        &self.0
    }

    /// Total length, µs.
    pub fn measure(&self) -> i64 {
        self.0.iter().map(|(a, b)| b - a).sum()
    }

    pub fn union(&self, other: &IntervalSet) -> IntervalSet {
        IntervalSet::from_intervals(self.0.iter().chain(&other.0).copied())
    }

    /// The parts of `self` that `other` does not cover.
    pub fn minus(&self, other: &IntervalSet) -> IntervalSet {
        let mut out = Vec::new();
        let mut cut = other.0.iter().peekable();
        for &(mut a, b) in &self.0 {
            while let Some(&&(c, d)) = cut.peek() {
                if d <= a {
                    cut.next();
                    continue;
                }
                if c >= b {
                    break;
                }
                if c > a {
                    out.push((a, c));
                }
                a = a.max(d);
                if d >= b {
                    break;
                }
                cut.next();
            }
            if a < b {
                out.push((a, b));
            }
        }
        IntervalSet(out)
    }

    /// The parts of `self` inside `[start, end)`.
    pub fn clip(&self, start: i64, end: i64) -> IntervalSet {
        IntervalSet::from_intervals(self.0.iter().map(|&(a, b)| (a.max(start), b.min(end))))
    }
}

#[cfg(test)]
mod tests {
    use super::IntervalSet;

    fn set(v: &[(i64, i64)]) -> IntervalSet {
        IntervalSet::from_intervals(v.iter().copied())
    }

    #[test]
    fn overlapping_and_touching_intervals_merge() {
        let s = set(&[(5, 7), (0, 2), (1, 3), (3, 4), (9, 9), (8, 6)]);
        assert_eq!(s.intervals(), &[(0, 4), (5, 7)]);
        assert_eq!(s.measure(), 6);
    }

    #[test]
    fn difference_cuts_every_way() {
        let a = set(&[(0, 10), (20, 30), (40, 50)]);
        let b = set(&[(-5, 2), (4, 6), (8, 22), (25, 26), (29, 45), (60, 70)]);
        assert_eq!(
            a.minus(&b).intervals(),
            &[(2, 4), (6, 8), (22, 25), (26, 29), (45, 50)]
        );
        assert_eq!(a.minus(&IntervalSet::default()), a);
        assert_eq!(a.minus(&set(&[(-100, 100)])).measure(), 0);
        assert_eq!(a.union(&b).intervals(), &[(-5, 50), (60, 70)]);
        assert_eq!(a.clip(5, 45).intervals(), &[(5, 10), (20, 30), (40, 45)]);
    }
}
