//! The only randomness plugins get: seeded, so that a replay draws the same.

use uuid::Uuid;

/// splitmix64: small and seeded.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The generator for one plugin call: seeded from the tick id, the plugin
    /// and the call's index within the tick.
    pub fn for_call(tick_id: &Uuid, plugin: &str, call: u64) -> Self {
        // FNV-1a over the plugin id, then splitmix rounds over everything:
        // cheap, and the same on every platform and every run.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in plugin.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let (hi, lo) = tick_id.as_u64_pair();
        let mut r = Rng(h);
        for word in [hi, lo, call] {
            r.0 ^= word;
            r.next_u64();
        }
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_call_draws_the_same_numbers() {
        let tick = Uuid::now_v7();
        let a: Vec<u64> = {
            let mut r = Rng::for_call(&tick, "p", 3);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::for_call(&tick, "p", 3);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut other = Rng::for_call(&tick, "p", 4);
        assert_ne!(a[0], other.next_u64());
    }
}
