//! SHA-256 whose running state can be saved to the database and resumed in another process.
//!
//! A resumable upload's chunks may reach different API processes, so the hash of the bytes
//! received so far cannot live in one process's memory. Two ways out: re-hash the assembled
//! object at completion (for S3 that is a full download of what was just uploaded, doubling the
//! transfer and the completion latency of a multi-gigabyte model), or carry the hash state
//! itself. We carry it: SHA-256's state after any prefix is eight words, the byte count and
//! the fewer than 64 bytes not yet compressed, about a hundred bytes to store per chunk. The
//! compression function is `sha2::compress256` (SHA-NI on CPUs that have it), so this is as
//! fast as `Sha256`; only the buffering and the final padding are done here.

// sha2 0.10's compress256 takes generic-array 0.14 blocks, deprecated upstream in favour of
// 1.x; the type is dictated by that signature.
#![allow(deprecated)]

use sha2::digest::generic_array::GenericArray;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far, the tail included.
    len: u64,
    /// Bytes not yet compressed (fewer than 64).
    tail: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl ResumableSha256 {
    pub fn new() -> ResumableSha256 {
        ResumableSha256 {
            state: H0,
            len: 0,
            tail: Vec::with_capacity(64),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < 64 {
                return;
            }
            let block = GenericArray::clone_from_slice(&self.tail);
            sha2::compress256(&mut self.state, &[block]);
            self.tail.clear();
        }
        let whole = data.len() / 64 * 64;
        if whole > 0 {
            // Compress in batches straight from the input: no copy of the bulk of the data.
            for batch in data[..whole].chunks(64 * 1024) {
                let (blocks, _) = batch.as_chunks::<64>();
                // SAFETY: GenericArray<u8, U64> has exactly the layout of [u8; 64] (sha2's own
                // compress256 casts the other way on the same ground).
                let ga: &[GenericArray<u8, sha2::digest::typenum::U64>] =
                    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast(), blocks.len()) };
                sha2::compress256(&mut self.state, ga);
            }
        }
        self.tail.extend_from_slice(&data[whole..]);
    }

    pub fn finalize(&self) -> [u8; 32] {
        let mut st = self.state;
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % 64 != 56 {
            last.push(0);
        }
        last.extend_from_slice(&(self.len.wrapping_mul(8)).to_be_bytes());
        for b in last.chunks(64) {
            sha2::compress256(&mut st, &[GenericArray::clone_from_slice(b)]);
        }
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_mut(4).zip(st) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// `sha256:<hex>` of the bytes so far.
    pub fn digest_string(&self) -> String {
        format!("sha256:{}", hex::encode(self.finalize()))
    }

    /// Hex text for a database column: state words, length, tail.
    pub fn to_hex(&self) -> String {
        let mut b = Vec::with_capacity(32 + 8 + self.tail.len());
        for w in self.state {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(&self.len.to_be_bytes());
        b.extend_from_slice(&self.tail);
        hex::encode(b)
    }

    /// The inverse of [`Self::to_hex`]; `None` for anything it could not have written.
    pub fn from_hex(s: &str) -> Option<ResumableSha256> {
        let b = hex::decode(s).ok()?;
        if b.len() < 40 || b.len() >= 40 + 64 {
            return None;
        }
        let mut state = [0u32; 8];
        for (w, c) in state.iter_mut().zip(b[..32].chunks(4)) {
            *w = u32::from_be_bytes(c.try_into().ok()?);
        }
        let len = u64::from_be_bytes(b[32..40].try_into().ok()?);
        let tail = b[40..].to_vec();
        if len % 64 != tail.len() as u64 {
            return None;
        }
        Some(ResumableSha256 { state, len, tail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn matches_sha256_across_splits_and_a_save_restore() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for cuts in [
            vec![],
            vec![0],
            vec![1],
            vec![63],
            vec![64],
            vec![65, 130, 131],
            vec![55, 56, 57, 119, 120],
            vec![100_000, 200_001],
            vec![299_999],
        ] {
            let mut h = ResumableSha256::new();
            let mut at = 0;
            for c in cuts.iter().chain([&data.len()]) {
                h.update(&data[at..*c]);
                at = *c;
                // Every step goes through the database form.
                h = ResumableSha256::from_hex(&h.to_hex()).unwrap();
            }
            assert_eq!(
                h.finalize(),
                <[u8; 32]>::from(Sha256::digest(&data)),
                "{cuts:?}"
            );
        }
        for n in [0usize, 1, 55, 56, 63, 64, 65, 119, 128] {
            let mut h = ResumableSha256::new();
            h.update(&data[..n]);
            assert_eq!(
                h.finalize(),
                <[u8; 32]>::from(Sha256::digest(&data[..n])),
                "{n}"
            );
        }
    }

    #[test]
    fn refuses_malformed_state() {
        assert!(ResumableSha256::from_hex("zz").is_none());
        assert!(ResumableSha256::from_hex("00").is_none());
        let mut h = ResumableSha256::new();
        h.update(b"abc");
        let s = h.to_hex();
        // Length 3 with a 2-byte tail is inconsistent.
        assert!(ResumableSha256::from_hex(&s[..s.len() - 2]).is_none());
    }
}
