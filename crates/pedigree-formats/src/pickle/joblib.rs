//! joblib's raw arrays (FORMATS-FACTS §3.3): after the BUILD of a
//! `joblib.numpy_pickle.NumpyArrayWrapper`, `NumpyArrayWrapper.read_array` reads the array
//! straight from the file: a padding-length byte and that many padding bytes (only when the
//! state has `numpy_array_alignment_bytes`), then `prod(shape) * itemsize` bytes; or, for
//! object dtypes, a whole nested pickle.

use super::value::{Arena, NodeKind, Val};

/// Where the array's bytes are, as far as the wrapper's state says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// A padding-length byte (and padding) comes first.
    pub aligned: bool,
    /// Raw data bytes; `None` for an object dtype (a nested pickle follows instead).
    pub bytes: Option<u64>,
}

/// `None` when `inst` is not a wrapper; `Some(Err)` when it is but the size is unknown.
pub(crate) fn wrapper_layout(
    a: &Arena,
    inst: &Val,
    state: &Val,
    data: &[u8],
) -> Option<Result<Layout, String>> {
    let call = a.as_call(inst)?;
    let g = a.as_global(&call.callable)?;
    if g.name != "NumpyArrayWrapper" || !g.module.ends_with("numpy_pickle") {
        return None;
    }
    Some(layout(a, state, data))
}

fn layout(a: &Arena, state: &Val, data: &[u8]) -> Result<Layout, String> {
    let Some(NodeKind::Dict(d)) = a.kind(state) else {
        return Err("state is not a dict".into());
    };
    let get = |key: &str| {
        d.pairs
            .iter()
            .find(|(k, _)| a.as_str(k, data) == Some(key))
            .map(|(_, v)| *v)
    };
    let shape = get("shape").ok_or("no 'shape' in the state")?;
    let dtype = get("dtype").ok_or("no 'dtype' in the state")?;
    let aligned = get("numpy_array_alignment_bytes").is_some_and(|v| !matches!(v, Val::None));
    let (itemsize, object) = dtype_itemsize(a, &dtype, data)?;
    if object {
        return Ok(Layout {
            aligned: false,
            bytes: None,
        });
    }
    let dims = a.seq_items(&shape).ok_or("shape is not a tuple")?;
    let mut count: u64 = 1;
    for d in &dims {
        let n = d.as_int().ok_or("shape holds a non-integer")?;
        let n = u64::try_from(n).map_err(|_| "negative dimension")?;
        count = count.checked_mul(n).ok_or("array size overflows")?;
    }
    let bytes = count.checked_mul(itemsize).ok_or("array size overflows")?;
    Ok(Layout {
        aligned,
        bytes: Some(bytes),
    })
}

/// Item size of a `numpy.dtype(typestr, align, copy)` REDUCE, with its BUILD state
/// `(version, endian, subdescr, names, fields, elsize, alignment, flags)`.
fn dtype_itemsize(a: &Arena, dtype: &Val, data: &[u8]) -> Result<(u64, bool), String> {
    let call = a
        .as_call(dtype)
        .ok_or("dtype is not a numpy.dtype(...) call")?;
    let args = a
        .seq_items(&call.args)
        .ok_or("dtype arguments are not a tuple")?;
    let typestr = args
        .first()
        .and_then(|v| a.as_str(v, data))
        .ok_or("dtype has no type string")?
        .to_owned();
    let state = call.state.as_ref().and_then(|s| a.seq_items(s));
    if let Some(st) = &state {
        // NPY_ITEM_HASOBJECT (bit 0 of the flags) marks object arrays, structured ones too.
        if st.get(7).and_then(Val::as_int).is_some_and(|f| f & 1 == 1) {
            return Ok((0, true));
        }
        if let Some(e) = st.get(5).and_then(Val::as_int).filter(|e| *e > 0) {
            return Ok((e as u64, false));
        }
    }
    typestr_itemsize(&typestr).ok_or_else(|| format!("unknown dtype {typestr:?}"))
}

fn typestr_itemsize(t: &str) -> Option<(u64, bool)> {
    let t = t.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = t.chars();
    let kind = chars.next()?;
    let digits: &str = chars.as_str();
    let n: Option<u64> = if digits.is_empty() {
        None
    } else {
        digits.parse().ok()
    };
    match kind {
        'O' => Some((0, true)),
        '?' => Some((1, false)),
        'b' | 'i' | 'u' | 'f' | 'c' | 'm' | 'M' | 'S' | 'a' | 'V' => n.map(|n| (n, false)),
        'U' => n.and_then(|n| n.checked_mul(4)).map(|n| (n, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typestrs() {
        assert_eq!(typestr_itemsize("f8"), Some((8, false)));
        assert_eq!(typestr_itemsize("<i4"), Some((4, false)));
        assert_eq!(typestr_itemsize("U3"), Some((12, false)));
        assert_eq!(typestr_itemsize("O8"), Some((0, true)));
        assert_eq!(typestr_itemsize("b1"), Some((1, false)));
        assert_eq!(typestr_itemsize("zz"), None);
    }
}
