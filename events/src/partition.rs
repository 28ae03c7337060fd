//! Which partition a world belongs to: FNV-1a (32 bits) of the world id's
//! bytes, modulo the cluster's partition count. It is the function NATS
//! server 2.10+ applies in a stream subject transform
//! (`{{partition(N,1)}}`), so the server files a world's ticks under the
//! partition the engines compute here; a test checks the two agree.

use crate::ids::WorldId;

/// How many partitions a cluster has: set once, when it first starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partitions(u32);

/// The most partitions a cluster may have.
pub const MAX_PARTITIONS: u32 = 1024;

impl Partitions {
    /// 1 to [`MAX_PARTITIONS`].
    pub fn new(count: u32) -> Result<Self, String> {
        if (1..=MAX_PARTITIONS).contains(&count) {
            Ok(Partitions(count))
        } else {
            Err(format!(
                "a cluster has 1 to {MAX_PARTITIONS} partitions, not {count}"
            ))
        }
    }

    pub fn count(self) -> u32 {
        self.0
    }

    /// The partition of `world`: 0 to count - 1.
    pub fn of(self, world: &WorldId) -> u32 {
        fnv1a_32(world.as_str().as_bytes()) % self.0
    }

    /// Every partition, in order.
    pub fn all(self) -> impl Iterator<Item = u32> {
        0..self.0
    }
}

/// FNV-1a, 32 bits.
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn partitions_are_bounded_and_cover_every_world() {
        assert!(Partitions::new(0).is_err());
        assert!(Partitions::new(MAX_PARTITIONS + 1).is_err());
        let p = Partitions::new(4).unwrap();
        let mut seen = [false; 4];
        for i in 0..100 {
            let w = WorldId::new(format!("w{i}")).unwrap();
            let k = p.of(&w);
            assert!(k < 4);
            seen[k as usize] = true;
        }
        assert_eq!(seen, [true; 4]);
        assert_eq!(
            Partitions::new(1).unwrap().of(&WorldId::new("x").unwrap()),
            0
        );
    }
}
