//! Just enough HDF5 to read the string attributes of the root group (legacy Keras `.h5` keeps
//! its model in the root attribute `model_config`, FORMATS-FACTS §8.2).
//!
//! Why hand-written: the HDF5 crates (`hdf5`, `hdf5-metno`) bind the C library, which would make
//! the scanner depend on a native library and on its parser's robustness against hostile files,
//! and no pure-Rust HDF5 crate reads attributes. What we need is small and well specified
//! (HDF5 File Format Specification 3.0): the superblock (versions 0–3), the root group's object
//! header (versions 1 and 2, with continuation blocks), attribute messages (versions 1–3) with
//! fixed-length or variable-length string data, and global heap collections for the latter.
//! Attributes kept in dense storage (a fractal heap, used for very many or very large
//! attributes) are reported as not read. Every offset is bounds-checked; every loop is bounded.

use serde::Serialize;

pub const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
const MAX_MESSAGES: usize = 65_536;
const MAX_CONTINUATIONS: usize = 1024;
const MAX_ATTR_STRING: u64 = 64 << 20;

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    Str(String),
    /// Not a string (numbers, arrays ...): only its datatype class is kept.
    Other {
        class: u8,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RootAttributes {
    pub superblock_version: u8,
    pub attributes: Vec<(String, AttrValue)>,
    /// Attributes stored densely (fractal heap): present but not read.
    pub dense_attributes: bool,
}

pub fn looks_like(data: &[u8]) -> bool {
    find_superblock(data).is_some()
}

/// The superblock sits at 0, 512, 1024, 2048 ... (a user block may precede it).
fn find_superblock(data: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    while at + 8 <= data.len() {
        if &data[at..at + 8] == SIGNATURE {
            return Some(at);
        }
        at = if at == 0 { 512 } else { at.checked_mul(2)? };
    }
    None
}

struct F<'a> {
    d: &'a [u8],
    so: usize,
    sl: usize,
    base: u64,
}

type Res<T> = Result<T, String>;

fn uint(b: &[u8]) -> u64 {
    let mut v = 0u64;
    for (i, x) in b.iter().take(8).enumerate() {
        v |= (*x as u64) << (8 * i);
    }
    v
}

impl<'a> F<'a> {
    fn slice(&self, at: u64, n: u64) -> Res<&'a [u8]> {
        let end = at.checked_add(n).ok_or("offset overflow")?;
        if end > self.d.len() as u64 {
            return Err(format!("{n} bytes at {at} lie past the end of the file"));
        }
        Ok(&self.d[at as usize..end as usize])
    }
    fn addr(&self, rel: u64) -> Res<u64> {
        rel.checked_add(self.base)
            .ok_or_else(|| "address overflow".to_string())
    }
}

/// Reads the root group's attributes.
pub fn read_root_attributes(data: &[u8]) -> Result<RootAttributes, String> {
    let sb = find_superblock(data).ok_or("no HDF5 signature")?;
    let d = data;
    let ver = *d.get(sb + 8).ok_or("truncated superblock")?;
    let mut out = RootAttributes {
        superblock_version: ver,
        ..Default::default()
    };
    let (f, root) = match ver {
        0 | 1 => {
            let h = d.get(sb..sb + 24).ok_or("truncated superblock")?;
            let (so, sl) = (h[13] as usize, h[14] as usize);
            check_sizes(so, sl)?;
            let mut p = sb + if ver == 0 { 24 } else { 28 };
            let f0 = F { d, so, sl, base: 0 };
            let base = uint(f0.slice(p as u64, so as u64)?);
            // base, free-space (ext), EOF, driver info; then the root symbol table entry:
            // link name offset, object header address.
            p += 4 * so + so;
            let f = F { d, so, sl, base };
            let root = uint(f.slice(p as u64, so as u64)?);
            (f, root)
        }
        2 | 3 => {
            let h = d.get(sb..sb + 12).ok_or("truncated superblock")?;
            let (so, sl) = (h[9] as usize, h[10] as usize);
            check_sizes(so, sl)?;
            let p = sb + 12;
            let f0 = F { d, so, sl, base: 0 };
            let base = uint(f0.slice(p as u64, so as u64)?);
            let f = F { d, so, sl, base };
            let root = uint(f.slice((p + 3 * so) as u64, so as u64)?);
            (f, root)
        }
        v => return Err(format!("superblock version {v} is not known")),
    };
    let root = f.addr(root)?;
    let msgs = object_header(&f, root)?;
    for (t, body) in msgs {
        match t {
            0x000C => {
                if out.attributes.len() < 4096 {
                    if let Ok(a) = attribute(&f, body) {
                        out.attributes.push(a);
                    }
                }
            }
            0x0015 => {
                // Attribute Info: a fractal heap address that is not "undefined" means dense storage.
                if body.len() >= 2 + f.so {
                    let flags = body[1];
                    let p = 2 + if flags & 1 != 0 { 2 } else { 0 };
                    if let Some(a) = body.get(p..p + f.so) {
                        if a.iter().any(|&b| b != 0xff) {
                            out.dense_attributes = true;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn check_sizes(so: usize, sl: usize) -> Res<()> {
    if ![2, 4, 8].contains(&so) || ![2, 4, 8].contains(&sl) {
        return Err(format!("unsupported sizes of offsets/lengths {so}/{sl}"));
    }
    Ok(())
}

/// All messages of an object header (with its continuation blocks) as (type, body).
fn object_header<'a>(f: &F<'a>, at: u64) -> Res<Vec<(u16, &'a [u8])>> {
    let mut out = Vec::new();
    let head = f.slice(at, 16)?;
    if &head[..4] == b"OHDR" {
        let flags = head[5];
        let mut p = at + 6;
        if flags & 0x20 != 0 {
            p += 16;
        }
        if flags & 0x10 != 0 {
            p += 4;
        }
        let size_len = 1u64 << (flags & 3);
        let chunk = uint(f.slice(p, size_len)?);
        p += size_len;
        let mut blocks = vec![(p, chunk, false)];
        let mut i = 0;
        while i < blocks.len() && i < MAX_CONTINUATIONS {
            let (start, len, is_cont) = blocks[i];
            i += 1;
            let (start, len) = if is_cont {
                let sig = f.slice(start, 4)?;
                if sig != b"OCHK" {
                    return Err("continuation block without OCHK".into());
                }
                (start + 4, len.saturating_sub(8))
            } else {
                (start, len)
            };
            let block = f.slice(start, len)?;
            let mut q = 0usize;
            let hdr = 4 + if flags & 0x04 != 0 { 2 } else { 0 };
            while q + hdr <= block.len() && out.len() < MAX_MESSAGES {
                let t = block[q] as u16;
                let sz = uint(&block[q + 1..q + 3]) as usize;
                q += hdr;
                let body = block.get(q..q + sz).ok_or("message runs past its block")?;
                q += sz;
                if t == 0x10 && body.len() >= f.so + f.sl {
                    let a = f.addr(uint(&body[..f.so]))?;
                    let l = uint(&body[f.so..f.so + f.sl]);
                    blocks.push((a, l, true));
                }
                out.push((t, body));
            }
        }
    } else if head[0] == 1 {
        let n = uint(&head[2..4]) as usize;
        let size = uint(&head[8..12]);
        let mut blocks = vec![(at + 16, size)];
        let mut i = 0;
        while i < blocks.len() && i < MAX_CONTINUATIONS && out.len() < n.min(MAX_MESSAGES) {
            let (start, len) = blocks[i];
            i += 1;
            let block = f.slice(start, len)?;
            let mut q = 0usize;
            while q + 8 <= block.len() && out.len() < n.min(MAX_MESSAGES) {
                let t = uint(&block[q..q + 2]) as u16;
                let sz = uint(&block[q + 2..q + 4]) as usize;
                q += 8;
                let body = block.get(q..q + sz).ok_or("message runs past its block")?;
                q += sz;
                if t == 0x10 && body.len() >= f.so + f.sl {
                    let a = f.addr(uint(&body[..f.so]))?;
                    let l = uint(&body[f.so..f.so + f.sl]);
                    blocks.push((a, l));
                }
                out.push((t, body));
            }
        }
    } else {
        return Err(format!("object header at {at} has an unknown version"));
    }
    Ok(out)
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn attribute(f: &F, b: &[u8]) -> Res<(String, AttrValue)> {
    let g = |r: std::ops::Range<usize>| {
        b.get(r)
            .ok_or_else(|| "attribute message truncated".to_string())
    };
    let ver = *b.first().ok_or("empty attribute")?;
    let name_len = uint(g(2..4)?) as usize;
    let dt_len = uint(g(4..6)?) as usize;
    let ds_len = uint(g(6..8)?) as usize;
    let (mut p, padded) = match ver {
        1 => (8, true),
        2 => (8, false),
        3 => (9, false),
        v => return Err(format!("attribute message version {v}")),
    };
    let step = |n: usize| if padded { pad8(n) } else { n };
    let name_b = g(p..p + name_len)?;
    let name =
        String::from_utf8_lossy(name_b.split(|&c| c == 0).next().unwrap_or(b"")).into_owned();
    p += step(name_len);
    let dt = g(p..p + dt_len)?;
    p += step(dt_len);
    let ds = g(p..p + ds_len)?;
    p += step(ds_len);
    let data = b.get(p..).unwrap_or(&[]);
    let class = dt.first().map(|c| c & 0x0f).ok_or("empty datatype")?;
    let elems = dataspace_elems(ds)?;
    let value = match class {
        3 => {
            let size = uint(dt.get(4..8).ok_or("datatype truncated")?) as usize;
            let n = size.saturating_mul(elems as usize).min(data.len());
            let s = &data[..n];
            let s = s.split(|&c| c == 0).next().unwrap_or(s);
            AttrValue::Str(String::from_utf8_lossy(s).into_owned())
        }
        9 if dt.get(1).map(|x| x & 0x0f) == Some(1) => {
            // variable-length string: length u32, then global heap id (collection address, index)
            let mut s = String::new();
            let rec = 4 + f.so + 4;
            for i in 0..(elems as usize).min(1) {
                let r = data
                    .get(i * rec..(i + 1) * rec)
                    .ok_or("vlen data truncated")?;
                let len = uint(&r[..4]);
                let coll = f.addr(uint(&r[4..4 + f.so]))?;
                let idx = uint(&r[4 + f.so..]);
                s = global_heap_object(f, coll, idx, len)?;
            }
            AttrValue::Str(s)
        }
        c => AttrValue::Other { class: c },
    };
    Ok((name, value))
}

fn dataspace_elems(ds: &[u8]) -> Res<u64> {
    let ver = *ds.first().ok_or("empty dataspace")?;
    let rank = *ds.get(1).ok_or("dataspace truncated")? as usize;
    if ver == 2 && ds.get(3) == Some(&2) {
        return Ok(0); // null dataspace
    }
    let start = if ver == 1 { 8 } else { 4 };
    let mut n = 1u64;
    for i in 0..rank.min(32) {
        // sizes of lengths: assume 8 (h5py and the library always write 8-byte lengths)
        let d = uint(
            ds.get(start + 8 * i..start + 8 * i + 8)
                .ok_or("dataspace truncated")?,
        );
        n = n.saturating_mul(d);
    }
    Ok(n)
}

fn global_heap_object(f: &F, coll: u64, idx: u64, len: u64) -> Res<String> {
    if len > MAX_ATTR_STRING {
        return Err(format!("string of {len} bytes"));
    }
    let head = f.slice(coll, 8 + f.sl as u64)?;
    if &head[..4] != b"GCOL" {
        return Err(format!("no global heap collection at {coll}"));
    }
    let csize = uint(&head[8..8 + f.sl]);
    let end = coll.saturating_add(csize).min(f.d.len() as u64);
    let mut p = coll + 8 + f.sl as u64;
    for _ in 0..MAX_MESSAGES {
        if p.saturating_add(8 + f.sl as u64) > end {
            break;
        }
        let h = f.slice(p, 8 + f.sl as u64)?;
        let i = uint(&h[..2]);
        let size = uint(&h[8..8 + f.sl]);
        if i == 0 {
            break;
        }
        let data_at = p + 8 + f.sl as u64;
        if i == idx {
            let s = f.slice(data_at, len.min(size))?;
            return Ok(String::from_utf8_lossy(s).into_owned());
        }
        // The size is the file's word: padding it to 8 must not overflow, and an object that
        // claims to run past the collection ends the walk (the check at the top of the loop).
        p = size
            .checked_next_multiple_of(8)
            .and_then(|padded| data_at.checked_add(padded))
            .ok_or_else(|| {
                format!("global heap object {i} at {p} has size {size}, past the end of any file")
            })?;
    }
    Err(format!(
        "object {idx} not in the global heap collection at {coll}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz find (`fuzz/` target `hdf5`): a global heap object whose 8-byte size is near
    /// `u64::MAX` overflowed when padded to 8 (`pad8`) while walking the collection.
    #[test]
    fn global_heap_object_with_huge_size_is_an_error() {
        // GCOL, version 1, 3 reserved, collection size 64; then object 1 of size u64::MAX - 2.
        let mut d = b"GCOL\x01\0\0\0".to_vec();
        d.extend_from_slice(&64u64.to_le_bytes());
        d.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // index 1, refcount, reserved
        d.extend_from_slice(&(u64::MAX - 2).to_le_bytes());
        d.resize(64, 0);
        let f = F {
            d: &d,
            so: 8,
            sl: 8,
            base: 0,
        };
        let err = global_heap_object(&f, 0, 2, 4).unwrap_err();
        assert!(
            err.contains("global heap object 1") && err.contains("size"),
            "{err}"
        );
        // The object asked for is still read when it comes first (its first 4 bytes).
        assert_eq!(global_heap_object(&f, 0, 1, 4).unwrap(), "\0\0\0\0");
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut base = SIGNATURE.to_vec();
        base.extend_from_slice(&[0, 0, 0, 0, 0, 8, 8, 0, 4, 0, 16, 0, 0, 0, 0, 0]);
        base.extend(std::iter::repeat_n(0u8, 200));
        crate::fuzz_util::mutate_many(&base, 3000, 0x4d, |d| {
            let _ = read_root_attributes(d);
        });
    }
}
