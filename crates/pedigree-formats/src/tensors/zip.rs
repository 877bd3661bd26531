//! The little ZIP reading the tensor readers need: central directory, member data (stored or
//! deflated). Written separately from `container::zip` (private to that module, and built to
//! report oddities rather than to hand out member bytes); every offset is checked.

use std::io::Read;

pub(crate) struct Member {
    pub name: String,
    /// Compression method (0 stored, 8 deflate).
    pub method: u16,
    pub data_start: usize,
    pub csize: usize,
    pub usize_: u64,
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Members from the central directory (ZIP64 aware), at most `max`.
pub(crate) fn members(d: &[u8], max: usize) -> Result<Vec<Member>, String> {
    if d.len() < 22 {
        return Err("zip: too short".into());
    }
    let lowest = d.len().saturating_sub(22 + 65535);
    let mut pos = d.len() - 22;
    let eocd = loop {
        if d.get(pos..pos + 4) == Some(b"PK\x05\x06") {
            break pos;
        }
        if pos == lowest {
            return Err("zip: no end-of-central-directory record".into());
        }
        pos -= 1;
    };
    let mut count = u16_at(d, eocd + 10).ok_or("zip: short EOCD")? as u64;
    let mut cd_off = u32_at(d, eocd + 16).ok_or("zip: short EOCD")? as u64;
    if eocd >= 76
        && d.get(eocd - 20..eocd - 16) == Some(b"PK\x06\x07")
        && d.get(eocd - 76..eocd - 72) == Some(b"PK\x06\x06")
    {
        let r = eocd - 76;
        count = u64_at(d, r + 32).ok_or("zip: short ZIP64 record")?;
        cd_off = u64_at(d, r + 48).ok_or("zip: short ZIP64 record")?;
    }
    let mut out = Vec::new();
    let mut p = usize::try_from(cd_off).map_err(|_| "zip: offset overflow")?;
    // Offsets are the file's word: one past the end would overflow the sums below (each step
    // adds at most 46 + 3 * 65535 to an offset inside the file, so checking here is enough).
    if p > d.len() {
        return Err(format!(
            "zip: central directory at {p} lies past the end of the file ({} bytes)",
            d.len()
        ));
    }
    for _ in 0..count.min(max as u64) {
        if d.get(p..p + 4) != Some(b"PK\x01\x02") {
            return Err(format!("zip: bad central-directory entry at {p}"));
        }
        let method = u16_at(d, p + 10).ok_or("zip: short entry")?;
        let mut csize = u32_at(d, p + 20).ok_or("zip: short entry")? as u64;
        let mut usz = u32_at(d, p + 24).ok_or("zip: short entry")? as u64;
        let nlen = u16_at(d, p + 28).ok_or("zip: short entry")? as usize;
        let xlen = u16_at(d, p + 30).ok_or("zip: short entry")? as usize;
        let clen = u16_at(d, p + 32).ok_or("zip: short entry")? as usize;
        let mut lho = u32_at(d, p + 42).ok_or("zip: short entry")? as u64;
        let name_b = d
            .get(p + 46..p + 46 + nlen)
            .ok_or("zip: name outside the file")?;
        let name = String::from_utf8_lossy(name_b).into_owned();
        // ZIP64 extra: fields present only for the values that are 0xFFFFFFFF, in this order.
        let extra = d
            .get(p + 46 + nlen..p + 46 + nlen + xlen)
            .ok_or("zip: extra outside the file")?;
        let mut x = 0;
        while x + 4 <= extra.len() {
            let id = u16::from_le_bytes([extra[x], extra[x + 1]]);
            let len = u16::from_le_bytes([extra[x + 2], extra[x + 3]]) as usize;
            if id == 1 {
                let mut q = x + 4;
                let end = (x + 4 + len).min(extra.len());
                for v in [&mut usz, &mut csize, &mut lho] {
                    if *v == 0xFFFF_FFFF && q + 8 <= end {
                        *v = u64_at(extra, q).unwrap_or(*v);
                        q += 8;
                    }
                }
            }
            x += 4 + len;
        }
        let lh = usize::try_from(lho).map_err(|_| "zip: offset overflow")?;
        if lh > d.len() {
            return Err(format!(
                "zip: member {name:?} has its local header at {lh}, past the end of the file"
            ));
        }
        if d.get(lh..lh + 4) != Some(b"PK\x03\x04") {
            return Err(format!("zip: member {name:?} has no local header"));
        }
        let ln = u16_at(d, lh + 26).ok_or("zip: short local header")? as usize;
        let lx = u16_at(d, lh + 28).ok_or("zip: short local header")? as usize;
        let data_start = lh + 30 + ln + lx;
        let csize = usize::try_from(csize).map_err(|_| "zip: size overflow")?;
        if data_start.checked_add(csize).is_none_or(|e| e > d.len()) {
            return Err(format!("zip: member {name:?} data runs past the file"));
        }
        out.push(Member {
            name,
            method,
            data_start,
            csize,
            usize_: usz,
        });
        p += 46 + nlen + xlen + clen;
    }
    Ok(out)
}

/// Member bytes: borrowed when stored, inflated (bounded) when deflated.
pub(crate) enum Data<'a> {
    Borrowed(&'a [u8], usize),
    Inflated(Vec<u8>),
}

/// Deflate's largest expansion: a 258-byte match in about two bits.
const MAX_DEFLATE_RATIO: usize = 1032;

pub(crate) fn data<'a>(d: &'a [u8], m: &Member, max: usize) -> Result<Data<'a>, String> {
    let raw = &d[m.data_start..m.data_start + m.csize];
    match m.method {
        0 => Ok(Data::Borrowed(raw, m.data_start)),
        8 => {
            if m.usize_ > max as u64 {
                return Err(format!(
                    "zip: member {:?} inflates to {} bytes, over the limit",
                    m.name, m.usize_
                ));
            }
            // The declared size is the file's word: reserve no more than the compressed bytes can
            // inflate to (deflate's ratio is at most 1032:1), so a header cannot make us allocate.
            let cap = m
                .usize_
                .min(m.csize.saturating_mul(MAX_DEFLATE_RATIO) as u64);
            let mut out = Vec::with_capacity(cap as usize);
            flate2::read::DeflateDecoder::new(raw)
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("zip: member {:?}: {e}", m.name))?;
            if out.len() > max {
                return Err(format!("zip: member {:?} inflates past the limit", m.name));
            }
            Ok(Data::Inflated(out))
        }
        other => Err(format!(
            "zip: member {:?} uses unsupported method {other}",
            m.name
        )),
    }
}

/// A torch checkpoint has a `<prefix>/data.pkl` member.
pub(crate) fn looks_like_torch(d: &[u8]) -> bool {
    members(d, 10_000).is_ok_and(|ms| {
        ms.iter()
            .any(|m| m.name.ends_with("/data.pkl") || m.name == "data.pkl")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ZIP64 end records (record, locator, then the classic EOCD) saying `count` members
    /// from central-directory offset `cd_off`, after `prefix`.
    fn zip64_tail(prefix: &[u8], count: u64, cd_off: u64) -> Vec<u8> {
        let mut d = prefix.to_vec();
        let mut rec = b"PK\x06\x06".to_vec();
        rec.resize(56, 0);
        rec[32..40].copy_from_slice(&count.to_le_bytes());
        rec[48..56].copy_from_slice(&cd_off.to_le_bytes());
        d.extend_from_slice(&rec);
        let mut loc = b"PK\x06\x07".to_vec();
        loc.resize(20, 0);
        d.extend_from_slice(&loc);
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.resize(22, 0);
        d.extend_from_slice(&eocd);
        d
    }

    /// Fuzz find (`fuzz/` target `tensors_torch`): a ZIP64 central-directory offset near
    /// `usize::MAX` overflowed `p + 4`.
    #[test]
    fn central_directory_offset_past_the_end_is_an_error() {
        let d = zip64_tail(&[], 1, u64::MAX - 1);
        let err = members(&d, 10).err().expect("an error");
        assert!(
            err.contains("central directory") && err.contains("past the end"),
            "{err}"
        );
        assert!(!looks_like_torch(&d));
    }

    /// The same through a member's local-header offset given in its ZIP64 extra field.
    #[test]
    fn local_header_offset_past_the_end_is_an_error() {
        let mut cd = b"PK\x01\x02".to_vec();
        cd.resize(46, 0);
        cd[28..30].copy_from_slice(&1u16.to_le_bytes()); // name length
        cd[30..32].copy_from_slice(&12u16.to_le_bytes()); // extra length
        cd[42..46].copy_from_slice(&u32::MAX.to_le_bytes()); // local header: see ZIP64 extra
        cd.push(b'a');
        cd.extend_from_slice(&[1, 0, 8, 0]);
        cd.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
        // The central directory sits at 0, the end records right after it.
        let d = zip64_tail(&cd, 1, 0);
        let err = members(&d, 10).err().expect("an error");
        assert!(
            err.contains("local header") && err.contains("past the end"),
            "{err}"
        );
    }

    /// Fuzz find (`fuzz/` target `tensors_npy`, out of memory): a deflated member declaring
    /// ~4 GB uncompressed (under `max_inflated`) made us reserve that much before inflating
    /// two bytes.
    #[test]
    fn declared_size_does_not_drive_the_allocation() {
        let d = [0x03, 0x00]; // an empty final fixed-Huffman deflate block
        let m = Member {
            name: "a.npy".into(),
            method: 8,
            data_start: 0,
            csize: d.len(),
            usize_: 0xFFFF_FFF0,
        };
        match data(&d, &m, 4 << 30).unwrap() {
            Data::Inflated(v) => {
                assert!(v.is_empty());
                assert!(
                    v.capacity() <= d.len() * MAX_DEFLATE_RATIO,
                    "{}",
                    v.capacity()
                );
            }
            Data::Borrowed(..) => panic!("deflated member borrowed"),
        }
    }
}
