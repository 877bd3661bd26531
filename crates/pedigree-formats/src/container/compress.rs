//! Compressed streams (joblib's compressors, FORMATS-FACTS §3.3, and any gzip/bz2/xz/... wrapper):
//! decompressed with every limit enforced while streaming, then sniffed again as a child, so a
//! gzip-compressed joblib, a compressed tar, or a zlib-wrapped pickle are all read.
//!
//! xz and lzma-alone go through `lzma-rust2` rather than `lzma-rs`: `lzma-rs` fills a whole
//! dictionary (up to 4 GiB, as declared by the file) before it emits a byte, so an output limit
//! cannot bound its memory; `lzma-rust2` streams and refuses dictionaries over a memory limit.

use super::sniff::Codec;
use super::walk::{End, Reader, malformed};
use super::{Artifact, Format};

/// Largest LZMA dictionary we accept (KiB). xz -9 uses 64 MiB; joblib's lzma/xz default 8 MiB.
const LZMA_MEM_LIMIT_KIB: u32 = 256 * 1024;

/// joblib compat header: "ZF" + 19 characters of hex length (FORMATS-FACTS §3.3).
const ZF_HEADER: usize = 2 + 19;

pub(super) fn read_compressed(
    r: &mut Reader<'_>,
    loc: Vec<String>,
    d: &[u8],
    depth: usize,
    c: Codec,
) -> Artifact {
    let mut a = Artifact::new(loc, Format::Compressed, d.len() as u64);
    let label = format!("<{}>", c.name());
    if !r.may_descend(&mut a, depth, &label) {
        return a;
    }
    let n = d.len() as u64;
    let (out, end) = match c {
        Codec::Zlib => r.decompress(&mut a, &label, flate2::read::ZlibDecoder::new(d), n),
        Codec::ZlibCompat => {
            // Python 2 era writers put one more space after the length; zlib data never starts
            // with a space (RFC 6713), which is how joblib tells.
            let mut at = ZF_HEADER;
            if d.get(at) == Some(&b' ') {
                at += 1;
            }
            let body = d.get(at..).unwrap_or(&[]);
            r.decompress(&mut a, &label, flate2::read::ZlibDecoder::new(body), n)
        }
        Codec::Gzip => r.decompress(&mut a, &label, flate2::read::MultiGzDecoder::new(d), n),
        Codec::Bzip2 => r.decompress(&mut a, &label, bzip2::read::MultiBzDecoder::new(d), n),
        Codec::Xz => {
            let dec = lzma_rust2::XzReader::new_mem_limit(d, true, LZMA_MEM_LIMIT_KIB);
            r.decompress(&mut a, &label, dec, n)
        }
        Codec::LzmaAlone => {
            match lzma_rust2::LzmaReader::new_mem_limit(d, LZMA_MEM_LIMIT_KIB, None) {
                Ok(dec) => r.decompress(&mut a, &label, dec, n),
                Err(e) => (Vec::new(), End::Error(format!("lzma header refused: {e}"))),
            }
        }
        Codec::Lz4Frame => r.decompress(&mut a, &label, lz4_flex::frame::FrameDecoder::new(d), n),
    };
    if let End::Error(e) = &end {
        a.notes.push(malformed(format!(
            "{} stream is corrupt or truncated ({e}); {} bytes before the error were scanned",
            c.name(),
            out.len()
        )));
    }
    if out.is_empty() && end != End::Eof {
        return a;
    }
    let mut child_loc = a.location.clone();
    child_loc.push(label);
    let child = r.node(child_loc, &out, depth + 1);
    a.children.push(child);
    a
}
