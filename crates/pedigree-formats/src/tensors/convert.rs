//! Element conversions to canonical `f32` and ggml block dequantization.
//!
//! The ggml block layouts follow `ggml-quants.c` (published format; constants carried over):
//! each block starts with its fp16 scale(s), then packed integer levels.

use super::DType;

/// IEEE half -> f32, exact (every f16 is representable in f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // subnormal: normalise
            let mut e = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// bfloat16 -> f32, exact.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 -> bfloat16 bits, round to nearest even (what torch's `.to(bfloat16)` does).
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// f32 -> IEEE half bits, round to nearest even (numpy / torch semantics).
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut r = m >> shift;
        if rest > half || (rest == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && (r & 1) == 1) {
        r += 1; // may carry into the exponent, which is the correct rounding
    }
    sign | r as u16
}

/// `x` rounded to the nearest f16 value (as f32).
pub fn round_to_f16(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

/// `x` rounded to the nearest bf16 value (as f32).
pub fn round_to_bf16(x: f32) -> f32 {
    bf16_to_f32(f32_to_bf16(x))
}

fn f8e4m3(b: u8) -> f32 {
    let s = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((b >> 3) & 0xf) as i32;
    let m = (b & 7) as f32;
    if e == 15 && (b & 7) == 7 {
        return f32::NAN;
    }
    if e == 0 {
        s * m / 8.0 * 2f32.powi(-6)
    } else {
        s * (1.0 + m / 8.0) * 2f32.powi(e - 7)
    }
}

fn f8e5m2(b: u8) -> f32 {
    f16_to_f32((b as u16) << 8)
}

/// Decodes plain elements; `d.len()` must be `out.len() * size`.
pub(crate) fn decode_plain(dt: DType, be: bool, d: &[u8], out: &mut [f32]) {
    macro_rules! each {
        ($n:expr, $conv:expr) => {
            for (o, c) in out.iter_mut().zip(d.chunks_exact($n)) {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                if be {
                    a.reverse();
                }
                *o = $conv(a);
            }
        };
    }
    match dt {
        DType::F32 => each!(4, |a| f32::from_le_bytes(a)),
        DType::F64 => each!(8, |a| f64::from_le_bytes(a) as f32),
        DType::F16 => each!(2, |a| f16_to_f32(u16::from_le_bytes(a))),
        DType::BF16 => each!(2, |a| bf16_to_f32(u16::from_le_bytes(a))),
        DType::I64 => each!(8, |a| i64::from_le_bytes(a) as f32),
        DType::I32 => each!(4, |a| i32::from_le_bytes(a) as f32),
        DType::I16 => each!(2, |a| i16::from_le_bytes(a) as f32),
        DType::U64 => each!(8, |a| u64::from_le_bytes(a) as f32),
        DType::U32 => each!(4, |a| u32::from_le_bytes(a) as f32),
        DType::U16 => each!(2, |a| u16::from_le_bytes(a) as f32),
        DType::I8 => each!(1, |a: [u8; 1]| a[0] as i8 as f32),
        DType::U8 | DType::Bool => each!(1, |a: [u8; 1]| a[0] as f32),
        DType::F8E4M3 => each!(1, |a: [u8; 1]| f8e4m3(a[0])),
        DType::F8E5M2 => each!(1, |a: [u8; 1]| f8e5m2(a[0])),
        _ => out.iter_mut().for_each(|o| *o = f32::NAN),
    }
}

/// (elements, bytes) per block of a ggml type.
pub(crate) fn ggml_block(dt: DType) -> Option<(usize, usize)> {
    Some(match dt {
        DType::Q4_0 => (32, 18),
        DType::Q4_1 => (32, 20),
        DType::Q5_0 => (32, 22),
        DType::Q5_1 => (32, 24),
        DType::Q8_0 => (32, 34),
        DType::Q4K => (256, 144),
        DType::Q5K => (256, 176),
        DType::Q6K => (256, 210),
        DType::Q8K => (256, 292),
        _ => return None,
    })
}

fn h(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K / Q5_K block (`get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((q[j] & 63) as f32, (q[j + 4] & 63) as f32)
    } else {
        (
            ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4)) as f32,
            ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as f32,
        )
    }
}

/// Dequantizes one block into `y` (block-size elements); also returns per-element steps into
/// `st` when given.
fn block(dt: DType, b: &[u8], y: &mut [f32], mut st: Option<&mut [f32]>) {
    let mut step = |i: usize, v: f32| {
        if let Some(s) = st.as_deref_mut() {
            s[i] = v.abs();
        }
    };
    match dt {
        DType::Q8_0 => {
            let d = h(b, 0);
            for j in 0..32 {
                y[j] = (b[2 + j] as i8) as f32 * d;
                step(j, d);
            }
        }
        DType::Q4_0 | DType::Q4_1 => {
            let d = h(b, 0);
            let (m, qs, off) = if dt == DType::Q4_1 {
                (h(b, 2), &b[4..20], 0.0)
            } else {
                (0.0, &b[2..18], 8.0)
            };
            for j in 0..16 {
                y[j] = ((qs[j] & 0xf) as f32 - off) * d + m;
                y[j + 16] = ((qs[j] >> 4) as f32 - off) * d + m;
                step(j, d);
                step(j + 16, d);
            }
        }
        DType::Q5_0 | DType::Q5_1 => {
            let d = h(b, 0);
            let (m, hb, off) = if dt == DType::Q5_1 {
                (h(b, 2), 4, 0.0)
            } else {
                (0.0, 2, 16.0)
            };
            let qh = u32::from_le_bytes([b[hb], b[hb + 1], b[hb + 2], b[hb + 3]]);
            let qs = &b[hb + 4..hb + 20];
            for j in 0..16 {
                let x0 = (qs[j] & 0xf) as u32 | (((qh >> j) << 4) & 0x10);
                let x1 = (qs[j] >> 4) as u32 | ((qh >> (j + 12)) & 0x10);
                y[j] = (x0 as f32 - off) * d + m;
                y[j + 16] = (x1 as f32 - off) * d + m;
                step(j, d);
                step(j + 16, d);
            }
        }
        DType::Q4K | DType::Q5K => {
            let d = h(b, 0);
            let dmin = h(b, 2);
            let sc = &b[4..16];
            let (qh, mut ql) = if dt == DType::Q5K {
                (&b[16..48], &b[48..176])
            } else {
                (&b[0..0], &b[16..144])
            };
            let (mut u1, mut u2) = (1u8, 2u8);
            let mut is = 0;
            for j in (0..256).step_by(64) {
                let (s1, m1) = scale_min_k4(is, sc);
                let (s2, m2) = scale_min_k4(is + 1, sc);
                let (d1, m1, d2, m2) = (d * s1, dmin * m1, d * s2, dmin * m2);
                for l in 0..32 {
                    let hi1 = if dt == DType::Q5K && qh[l] & u1 != 0 {
                        16.0
                    } else {
                        0.0
                    };
                    let hi2 = if dt == DType::Q5K && qh[l] & u2 != 0 {
                        16.0
                    } else {
                        0.0
                    };
                    y[j + l] = d1 * ((ql[l] & 0xf) as f32 + hi1) - m1;
                    y[j + 32 + l] = d2 * ((ql[l] >> 4) as f32 + hi2) - m2;
                    step(j + l, d1);
                    step(j + 32 + l, d2);
                }
                ql = &ql[32..];
                is += 2;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
        DType::Q6K => {
            let d = h(b, 208);
            let (mut ql, mut qh, mut sc) = (&b[0..128], &b[128..192], &b[192..208]);
            for n in (0..256).step_by(128) {
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    for (k, q) in [q1, q2, q3, q4].into_iter().enumerate() {
                        let s = d * (sc[is + 2 * k] as i8) as f32;
                        y[n + l + 32 * k] = s * q as f32;
                        step(n + l + 32 * k, s);
                    }
                }
                if n == 0 {
                    ql = &ql[64..];
                    qh = &qh[32..];
                    sc = &sc[8..];
                }
            }
        }
        DType::Q8K => {
            let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            for j in 0..256 {
                y[j] = (b[4 + j] as i8) as f32 * d;
                step(j, d);
            }
        }
        _ => {}
    }
}

fn blocks(
    dt: DType,
    d: &[u8],
    out: &mut [f32],
    mut steps: Option<&mut [f32]>,
) -> Result<(), String> {
    let (be, bb) = ggml_block(dt).ok_or("not a ggml block type")?;
    if out.len() % be != 0 {
        return Err(format!(
            "{} elements are not a multiple of the block size {be}",
            out.len()
        ));
    }
    let nb = out.len() / be;
    let need = nb.checked_mul(bb).ok_or("size overflow")?;
    let d = d.get(..need).ok_or("quantized data runs past the file")?;
    for (i, (y, b)) in out.chunks_exact_mut(be).zip(d.chunks_exact(bb)).enumerate() {
        let st = steps.as_deref_mut().map(|s| &mut s[i * be..(i + 1) * be]);
        block(dt, b, y, st);
    }
    Ok(())
}

pub(crate) fn dequantize(dt: DType, d: &[u8], out: &mut [f32]) -> Result<(), String> {
    blocks(dt, d, out, None)
}

pub(crate) fn ggml_steps(dt: DType, d: &[u8], steps: &mut [f32]) -> Result<(), String> {
    let mut tmp = vec![0f32; steps.len()];
    blocks(dt, d, &mut tmp, Some(steps))
}

#[cfg(test)]
mod t {
    use super::*;

    #[test]
    fn half_round_trip() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                continue;
            }
            assert_eq!(f32_to_f16(f), h, "{h:#x}");
        }
        assert_eq!(f32_to_f16(1.0 + 1.0 / 4096.0), 0x3c00); // tie rounds to even
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(round_to_bf16(1.00390625), 1.0); // tie to even
    }
}
