//! A small deterministic PRNG (SplitMix64) and the distributions the model draws from.
//! Output must not depend on a crate's version, so no external RNG.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for one entity (a pod, a node): planning one pod never
    /// shifts the draws of another.
    pub fn derive(seed: u64, stream: u64, index: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.0 ^= index.wrapping_mul(0xd1b5_4a32_d192_ed03);
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi) µs.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }

    /// Log-normal with the given median (ms) and shape: the heavy tail of real stage
    /// latencies, in µs.
    pub fn lognormal_us(&mut self, median_ms: f64, sigma: f64) -> i64 {
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (median_ms * 1000.0 * (sigma * z).exp()).round() as i64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn uuid(&mut self) -> String {
        let id = self.uuid_bytes();
        std::str::from_utf8(&id)
            .expect("hex digits are ASCII")
            .to_owned()
    }

    /// [`Rng::uuid`]'s text without a string of its own (one per audit event).
    pub fn uuid_bytes(&mut self) -> [u8; 36] {
        let (a, b) = (self.next_u64(), self.next_u64());
        // `{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}`, written directly: one per audit event,
        // where `format!` cost more than the rest of the event's envelope.
        let mut out = *b"00000000-0000-4000-0000-000000000000";
        let mut hex = |at: usize, width: usize, value: u64| {
            for i in 0..width {
                let nibble = (value >> (4 * (width - 1 - i))) & 0xf;
                out[at + i] = b"0123456789abcdef"[nibble as usize];
            }
        };
        hex(0, 8, a >> 32);
        hex(9, 4, (a >> 16) & 0xffff);
        hex(15, 3, a & 0x0fff);
        hex(19, 4, 0x8000 | ((b >> 48) & 0x3fff));
        hex(24, 12, b & 0xffff_ffff_ffff);
        out
    }

    /// A Kubernetes generateName suffix: 5 characters of the apimachinery alphabet.
    pub fn name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_independent() {
        let a: Vec<u64> = (0..4).map(|_| Rng::derive(1, 2, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::derive(1, 2, 3).next_u64(),
            Rng::derive(1, 2, 4).next_u64()
        );
        let mut r = Rng::new(9);
        let mut samples: Vec<i64> = (0..2001).map(|_| r.lognormal_us(100.0, 0.5)).collect();
        samples.sort_unstable();
        let median = samples[1000] as f64 / 1000.0;
        assert!((80.0..125.0).contains(&median), "median {median} ms");
        assert!(samples.iter().all(|s| *s > 0));
        let id = r.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn uuids_are_the_version_4_format() {
        let mut r = Rng::new(3);
        for _ in 0..1000 {
            let mut copy = Rng(r.0);
            let (a, b) = (copy.next_u64(), copy.next_u64());
            let want = format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0x0fff,
                0x8000 | ((b >> 48) & 0x3fff),
                b & 0xffff_ffff_ffff
            );
            assert_eq!(r.uuid(), want);
        }
    }
}
