//! Deterministic input mutation for the in-crate "never panics" tests of the format readers
//! (the cargo-fuzz targets in `fuzz/` explore further; these run in every `cargo test`).
#![doc(hidden)]

/// A tiny xorshift generator: fixed seed, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Calls `f` on `n` inputs: random bytes, and mutations of `base` (byte flips, interesting
/// values, truncation, splices, duplications).
pub fn mutate_many(base: &[u8], n: usize, seed: u64, mut f: impl FnMut(&[u8])) {
    let mut rng = Rng::new(seed);
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, b'{', b'"'];
    for i in 0..n {
        let mut d = base.to_vec();
        match i % 6 {
            0 => {
                let len = rng.below(256);
                d = (0..len).map(|_| rng.next() as u8).collect();
            }
            1 if !d.is_empty() => {
                for _ in 0..1 + rng.below(8) {
                    let p = rng.below(d.len());
                    d[p] ^= 1 << rng.below(8);
                }
            }
            2 if !d.is_empty() => {
                for _ in 0..1 + rng.below(4) {
                    let p = rng.below(d.len());
                    d[p] = INTERESTING[rng.below(INTERESTING.len())];
                }
            }
            3 => {
                let cut = rng.below(d.len() + 1);
                d.truncate(cut);
            }
            4 if d.len() > 8 => {
                // overwrite 8 bytes with an extreme little-endian integer
                let p = rng.below(d.len() - 8);
                let v: u64 = [u64::MAX, u32::MAX as u64, 1 << 40, 0, 0x7fff_ffff][rng.below(5)];
                d[p..p + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ if !d.is_empty() => {
                let a = rng.below(d.len());
                let b = a + rng.below(d.len() - a);
                let chunk = d[a..b].to_vec();
                let at = rng.below(d.len());
                d.splice(at..at, chunk);
            }
            _ => {}
        }
        f(&d);
    }
}
