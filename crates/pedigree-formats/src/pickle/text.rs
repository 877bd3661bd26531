//! Decoding of the text-form arguments (protocol 0) and of LONG1/LONG4, the way CPython's C
//! unpickler does it (FORMATS-FACTS §1.4, §1.11).

/// An integer that may not fit in i64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntVal {
    Small(i64),
    /// Decimal (or as-written) text of a big integer.
    Big(String),
}

/// C strings stop at NUL: `_Unpickler_CopyLine` makes a NUL-terminated copy and `strtol`,
/// `PyLong_FromString` and `PyOS_string_to_double` stop there (§1.11, cpython#126996).
/// Returns the part before the first NUL and whether one was found.
pub(crate) fn cut_nul(line: &[u8]) -> (&[u8], bool) {
    match line.iter().position(|&b| b == 0) {
        Some(i) => (&line[..i], true),
        None => (line, false),
    }
}

fn is_py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `PyLong_FromString(s, NULL, base)` for base 10 or 0: surrounding whitespace, a sign,
/// single underscores between digits, and (base 0) the 0x/0o/0b prefixes; with base 0 a
/// decimal literal may not have leading zeros.
pub(crate) fn py_int(s: &[u8], base: u32) -> Option<IntVal> {
    let mut s = s;
    while let [b, rest @ ..] = s {
        if is_py_space(*b) { s = rest } else { break }
    }
    while let [rest @ .., b] = s {
        if is_py_space(*b) { s = rest } else { break }
    }
    let neg = matches!(s.first(), Some(b'-'));
    if matches!(s.first(), Some(b'-' | b'+')) {
        s = &s[1..];
    }
    let mut radix = base;
    if base == 0 {
        radix = 10;
        if s.len() >= 2 && s[0] == b'0' {
            match s[1] {
                b'x' | b'X' => radix = 16,
                b'o' | b'O' => radix = 8,
                b'b' | b'B' => radix = 2,
                _ => {}
            }
            if radix != 10 {
                s = &s[2..];
                // An underscore may follow the prefix: 0x_1f.
                if let [b'_', rest @ ..] = s {
                    s = rest;
                }
            }
        }
    }
    if s.is_empty() {
        return None;
    }
    let mut digits = String::with_capacity(s.len());
    let mut prev_us = true;
    for &b in s {
        if b == b'_' {
            if prev_us {
                return None;
            }
            prev_us = true;
            continue;
        }
        let d = (b as char).to_digit(radix)?;
        let _ = d;
        digits.push(b as char);
        prev_us = false;
    }
    if prev_us {
        return None;
    }
    if base == 0
        && radix == 10
        && digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().any(|b| b != b'0')
    {
        return None;
    }
    Some(from_digits(&digits, radix, neg))
}

fn from_digits(digits: &str, radix: u32, neg: bool) -> IntVal {
    match i128::from_str_radix(digits, radix) {
        Ok(v) => {
            let v = if neg { -v } else { v };
            match i64::try_from(v) {
                Ok(x) => IntVal::Small(x),
                Err(_) => IntVal::Big(v.to_string()),
            }
        }
        Err(_) => {
            let prefix = match radix {
                16 => "0x",
                8 => "0o",
                2 => "0b",
                _ => "",
            };
            IntVal::Big(format!("{}{prefix}{digits}", if neg { "-" } else { "" }))
        }
    }
}

/// The INT opcode (C `load_int`): `strtol(s, &end, 0)` first; if it stops before the end of
/// the line (or overflows), `PyLong_FromString(s, NULL, 0)`. `strtol` base 0 reads a leading
/// `0` as octal. Returns the value and whether the `"00"`/`"01"` bool special case applies.
pub(crate) fn c_int(line: &[u8]) -> Option<(IntVal, bool)> {
    if let Some(x) = strtol0(line) {
        let is_bool = line.len() == 2 && (x == 0 || x == 1);
        return Some((IntVal::Small(x), is_bool));
    }
    py_int(line, 0).map(|v| (v, false))
}

/// `strtol(s, &end, 0)` that must consume the whole string (the caller already cut at NUL and
/// removed the newline); `None` on overflow or junk.
fn strtol0(s: &[u8]) -> Option<i64> {
    let mut i = 0;
    while i < s.len() && is_py_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut radix = 10;
    if i + 1 < s.len() && s[i] == b'0' && (s[i + 1] | 0x20) == b'x' {
        radix = 16;
        i += 2;
    } else if i < s.len() && s[i] == b'0' {
        radix = 8;
    }
    let digits = s.get(i..)?;
    if digits.is_empty() {
        return None;
    }
    let v = i64::from_str_radix(std::str::from_utf8(digits).ok()?, radix).ok()?;
    if digits.first().is_some_and(|b| *b == b'+' || *b == b'-') {
        return None;
    }
    Some(if neg { v.checked_neg()? } else { v })
}

/// The LONG opcode (C `load_long`): an optional trailing `L` is removed, then base-0 parsing.
pub(crate) fn c_long(line: &[u8]) -> Option<IntVal> {
    let line = line.strip_suffix(b"L").unwrap_or(line);
    py_int(line, 0)
}

/// FLOAT: `PyOS_string_to_double`, which must end at the newline or NUL.
pub(crate) fn c_float(line: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(line).ok()?;
    let t = s.trim_start();
    match t.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        _ => {}
    }
    if t.contains('_') {
        return None;
    }
    t.parse::<f64>().ok()
}

/// LONG1/LONG4 payload: little-endian two's complement.
pub(crate) fn le_twos_complement(b: &[u8]) -> IntVal {
    if b.is_empty() {
        return IntVal::Small(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
        buf[..b.len()].copy_from_slice(b);
        return IntVal::Small(i64::from_le_bytes(buf));
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    // Magnitude as little-endian bytes.
    let mut mag: Vec<u8> = b.to_vec();
    if neg {
        // two's complement negate: invert and add one
        let mut carry = 1u16;
        for x in mag.iter_mut() {
            let v = (!*x) as u16 + carry;
            *x = v as u8;
            carry = v >> 8;
        }
    }
    if mag.len() > 256 {
        return IntVal::Big(format!(
            "<{}int of {} bytes>",
            if neg { "-" } else { "" },
            b.len()
        ));
    }
    IntVal::Big(format!(
        "{}{}",
        if neg { "-" } else { "" },
        le_to_decimal(&mag)
    ))
}

/// Little-endian magnitude to decimal, by repeated division (inputs are at most 256 bytes).
fn le_to_decimal(le: &[u8]) -> String {
    let mut limbs: Vec<u32> = le
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    let mut out = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem = 0u64;
        for l in limbs.iter_mut().rev() {
            let cur = (rem << 32) | *l as u64;
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        out.push(rem as u32);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    if out.is_empty() {
        return "0".into();
    }
    let mut s = out.pop().map(|x| x.to_string()).unwrap_or_default();
    for x in out.iter().rev() {
        s.push_str(&format!("{x:09}"));
    }
    s
}

/// Python bytes-literal escapes (`PyBytes_DecodeEscape`, used by STRING after the quotes are
/// removed). `None` for a bad `\x` escape ("invalid \x escape").
pub(crate) fn decode_escape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = s.get(i) else {
            // "Trailing \ in string"
            return None;
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(11),
            b'a' => out.push(7),
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match s.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let h = s.get(i..i + 2)?;
                let v = u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
                out.push(v);
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// `raw-unicode-escape` (UNICODE): bytes are Latin-1, except `\uXXXX` / `\UXXXXXXXX` after an
/// odd run of backslashes. `None` on a truncated or out-of-range escape.
pub(crate) fn decode_raw_unicode_escape(s: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c != b'\\' {
            out.push(c as char);
            i += 1;
            continue;
        }
        // Count the run of backslashes.
        let mut j = i;
        while j < s.len() && s[j] == b'\\' {
            j += 1;
        }
        let run = j - i;
        let escapes = run % 2 == 1 && matches!(s.get(j), Some(b'u' | b'U'));
        let literal = if escapes { run - 1 } else { run };
        (0..literal).for_each(|_| out.push('\\'));
        i = j;
        if escapes {
            let n = if s[j] == b'u' { 4 } else { 8 };
            let hex = s.get(j + 1..j + 1 + n)?;
            let v = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            i = j + 1 + n;
        }
    }
    Some(out)
}

/// UTF-8 with `surrogatepass` (BINUNICODE & co.): valid UTF-8, or UTF-8 whose only problems
/// are encoded surrogates (`ED A0..BF xx`), which are replaced by U+FFFD here.
pub(crate) fn utf8_surrogatepass(b: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Some(s.into());
    }
    let mut fixed = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0xed
            && matches!(b.get(i + 1), Some(0xa0..=0xbf))
            && matches!(b.get(i + 2), Some(0x80..=0xbf))
        {
            fixed.extend_from_slice("\u{fffd}".as_bytes());
            i += 3;
        } else {
            fixed.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(fixed).ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_rules() {
        assert_eq!(py_int(b" 1_0\n", 10), Some(IntVal::Small(10)));
        assert_eq!(py_int(b"1__0", 10), None);
        assert_eq!(py_int(b"010", 10), Some(IntVal::Small(10)));
        assert_eq!(py_int(b"010", 0), None);
        assert_eq!(py_int(b"0x1f", 0), Some(IntVal::Small(31)));
        assert_eq!(py_int(b"-5", 10), Some(IntVal::Small(-5)));
        assert!(matches!(
            py_int(b"123456789012345678901234567890", 10),
            Some(IntVal::Big(_))
        ));
    }

    #[test]
    fn c_int_octal_and_bool() {
        assert_eq!(c_int(b"010"), Some((IntVal::Small(8), false)));
        assert_eq!(c_int(b"01"), Some((IntVal::Small(1), true)));
        assert_eq!(c_int(b"00"), Some((IntVal::Small(0), true)));
        assert_eq!(c_int(b"1"), Some((IntVal::Small(1), false)));
        assert_eq!(c_int(b"1_000"), Some((IntVal::Small(1000), false)));
        assert_eq!(c_int(b"junk"), None);
    }

    #[test]
    fn long1_magic_number() {
        // torch legacy magic 0x1950A86A20F9469CFC6C as LONG1 payload (§2.3).
        let b = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
        assert_eq!(
            le_twos_complement(&b),
            IntVal::Big("119547037146038801333356".into())
        );
        assert_eq!(le_twos_complement(&[0xff]), IntVal::Small(-1));
        assert_eq!(le_twos_complement(&[0x00, 0x80]), IntVal::Small(-32768));
    }

    #[test]
    fn escapes() {
        assert_eq!(decode_escape(br"a\x41\n\101\q").unwrap(), b"aA\nA\\q");
        assert!(decode_escape(br"\x4").is_none());
        assert_eq!(
            decode_raw_unicode_escape(br"os\u0041\\u0041").unwrap(),
            "osA\\\\u0041"
        );
        assert_eq!(decode_raw_unicode_escape(b"\xe9").unwrap(), "\u{e9}");
    }
}
