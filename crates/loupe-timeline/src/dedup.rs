use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// A set of keys that are already hashes (of audit IDs, UIDs, names): hashing them again
/// with SipHash was 1 % of a replay.
pub(crate) type HashedSet = HashSet<u64, BuildHasherDefault<IdentityHasher>>;

/// Remembers `(auditID, stage)` pairs seen within a horizon of event time, in bounded memory.
#[derive(Debug)]
pub struct Dedup {
    seen: HashedSet,
    order: VecDeque<(i64, u64)>,
    horizon_us: i64,
    capacity: usize,
}

impl Dedup {
    pub fn new(horizon_us: i64, capacity: usize) -> Dedup {
        Dedup {
            seen: HashSet::default(),
            order: VecDeque::new(),
            horizon_us,
            capacity,
        }
    }

    pub fn key(audit_id: &str, stage: &str) -> u64 {
        let mut h = std::hash::BuildHasherDefault::<Fnv>::default().build_hasher();
        h.write(audit_id.as_bytes());
        h.write_u8(0xff);
        h.write(stage.as_bytes());
        h.finish()
    }

    /// Records the key; false if it was already there (a duplicate).
    pub fn insert(&mut self, key: u64, ts: i64) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back((ts, key));
        while self.order.len() > self.capacity {
            if let Some((_, k)) = self.order.pop_front() {
                self.seen.remove(&k);
            }
        }
        true
    }

    /// Forgets keys older than the horizon behind `now` (the audit clock).
    pub fn expire(&mut self, now: i64) {
        let limit = now.saturating_sub(self.horizon_us);
        while let Some(&(ts, k)) = self.order.front() {
            if ts >= limit {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&k);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// FNV-1a: stable across runs, so keys seeded from the store match.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The keys are already hashes.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_duplicates_and_forgets_old_keys() {
        let mut d = Dedup::new(100, 10);
        let a = Dedup::key("a", "ResponseComplete");
        assert_ne!(a, Dedup::key("a", "RequestReceived"));
        assert!(d.insert(a, 0));
        assert!(!d.insert(a, 50));
        d.expire(200);
        assert!(d.insert(a, 200));
    }

    #[test]
    fn stays_within_capacity() {
        let mut d = Dedup::new(i64::MAX, 3);
        for i in 0..10 {
            d.insert(Dedup::key(&i.to_string(), "x"), i);
        }
        assert_eq!(d.len(), 3);
    }
}
