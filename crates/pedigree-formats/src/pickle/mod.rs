//! Pickle streams: opcodes, disassembly and a symbolic machine that mirrors CPython's unpickler.
//!
//! CONTRACT (other modules and crates code against these names; extend, do not rename):
//! * [`analyze_one`] runs ONE pickle (from `start` to its STOP, or to the break) and returns a
//!   [`PickleReport`]; `report.end` is the offset just past STOP, so callers that know a format
//!   (legacy torch, npy) can continue after it.
//! * [`analyze_stream`] runs every pickle in a byte stream the way repeated `pickle.load(f)`
//!   calls would, resynchronises after a break, and also runs the other [`ReadMode`]s when a
//!   FRAME makes them disagree.
//! * [`disasm`] renders a readable disassembly.

use serde::Serialize;

mod compat;
mod disasm;
mod joblib;
mod machine;
mod memo;
pub mod opcodes;
mod reader;
mod stream;
mod text;
mod value;

#[cfg(test)]
mod tests;

pub use disasm::disasm;
pub use machine::DYNAMIC_MODULE;
pub use stream::{analyze_one, analyze_stream};
pub use value::{CallValue, Value};

/// How the host program feeds bytes to the unpickler (FORMATS-FACTS §1.2). FRAME straddles make
/// these disagree; that disagreement is itself reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// `pickle.loads(bytes)` in C, and `pickletools`: frames are checked for length, then ignored.
    InMemory,
    /// C unpickler over a file object without `peek` (`torch.load` of a zip record via `BytesIO`,
    /// `np.load`): a read that straddles the end of a frame drops the frame's remaining bytes.
    FileNoPeek,
    /// The pure-Python `pickle._Unpickler` (joblib): a straddling read or an early FRAME raises.
    PurePython,
}

/// Limits that hold whatever the input. Exceeding one stops that pickle with an anomaly.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Opcodes executed per pickle.
    pub max_opcodes: u64,
    /// Memo slots actually stored (the index itself may be large; see `Anomaly::MemoHuge`).
    pub max_memo_entries: usize,
    /// Depth of the object stack.
    pub max_stack: usize,
    /// Depth of the mark stack.
    pub max_marks: usize,
    /// Nesting depth of symbolic values (tuples in tuples ...).
    pub max_value_depth: usize,
    /// Bytes of a string/bytes argument kept in symbolic values (the rest is counted, not kept).
    pub max_kept_bytes: usize,
    /// Globals recorded per pickle.
    pub max_globals: usize,
    /// Pickles per stream (stacked pickles and resynchronised segments).
    pub max_pickles: usize,
    /// Call sites recorded per pickle. Past it the machine keeps going and records only call
    /// sites whose (kind, callable) was not seen yet, with a `LimitExceeded` anomaly.
    pub max_calls: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_opcodes: 1 << 32,
            max_memo_entries: 64 << 20,
            max_stack: 1_000_000,
            max_marks: 100_000,
            max_value_depth: 64,
            max_kept_bytes: 4096,
            max_globals: 100_000,
            max_pickles: 64,
            max_calls: 100_000,
        }
    }
}

/// Options for an analysis.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Options {
    pub limits: Limits,
    /// joblib streams carry raw array bytes right after the BUILD of each
    /// `joblib.numpy_pickle.NumpyArrayWrapper` (FORMATS-FACTS §3.3); skip them as joblib does.
    pub joblib_arrays: bool,
}

/// A global the stream imports (GLOBAL, STACK_GLOBAL, INST, OBJ's class, EXT through copyreg).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobalRef {
    /// Module after `_compat_pickle` mapping (when proto < 3) -- what `find_class` imports.
    pub module: String,
    /// Attribute name after mapping; may be dotted (walked by getattr under proto >= 4).
    pub name: String,
    /// The module as written in the stream, before mapping.
    pub raw_module: String,
    /// The name as written in the stream, before mapping.
    pub raw_name: String,
    /// Byte offset of the opcode that imported it (absolute in the analysed buffer).
    pub offset: u64,
    /// Opcode name, e.g. "STACK_GLOBAL".
    pub opcode: &'static str,
    /// The protocol in force (set by the last PROTO) when it was imported.
    pub proto: u8,
}

/// What kind of operation may call into Python code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallKind {
    Reduce,
    Build,
    NewObj,
    NewObjEx,
    Inst,
    Obj,
    /// APPEND/APPENDS on something that is not a plain list (calls `.extend`/`.append`).
    Append,
    /// SETITEM/SETITEMS on something that is not a plain dict (calls `__setitem__`).
    SetItem,
    /// ADDITEMS on something that is not a plain set (calls `.add`).
    AddItems,
    /// PERSID/BINPERSID: the host's `persistent_load` hook.
    PersistentLoad,
}

/// One call site.
#[derive(Debug, Clone, Serialize)]
pub struct CallSite {
    pub kind: CallKind,
    pub offset: u64,
    /// The global being called, when the callable is (directly or through the memo) a global.
    pub callable: Option<GlobalRef>,
    /// True when the callable is itself the result of a call or attribute lookup (laundering).
    pub computed_callable: bool,
    /// A short human description, e.g. `os.system('id')`.
    pub summary: String,
}

/// A persistent id passed to `persistent_load` (torch storages use this).
#[derive(Debug, Clone, Serialize)]
pub struct PersistentId {
    pub offset: u64,
    /// The id rendered as text, e.g. `('storage', torch.FloatStorage, '0', 'cpu', 6)`.
    pub summary: String,
}

/// Something unusual or malformed about the stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// The stream ended before STOP.
    Truncated,
    /// A byte that is not an opcode.
    InvalidOpcode { byte: u8 },
    /// An argument that the loader rejects (bad length, bad text number, bad UTF-8 ...).
    BadArgument { detail: String },
    /// The machine would raise here (stack underflow, missing MARK, wrong types ...).
    LoaderError { detail: String },
    /// `PROTO n` with n > 5.
    UnsupportedProtocol { proto: u8 },
    /// A read straddles the end of a FRAME: readers disagree about the following bytes.
    FrameStraddle,
    /// A FRAME begins while the previous one still holds bytes.
    FrameEarly,
    /// A FRAME is longer than the data that remains.
    FrameOverrun,
    /// A memo index large enough to exhaust memory in CPython (dense memo of 2*index slots).
    MemoHuge { index: u64 },
    /// GET of an index that was never PUT.
    MemoMissing { index: u64 },
    /// EXT1/2/4 (resolves only through a host-registered copyreg code).
    ExtCode { code: i64 },
    /// A length argument far larger than the data (a memory bomb for some readers).
    HugeLength { declared: u64 },
    /// Bytes remain after the last STOP.
    TrailingData { bytes: u64 },
    /// A NUL inside a text number (C stops there, pickletools rejects the line).
    NulInNumber,
    /// A limit from [`Limits`] was hit; analysis of this pickle stopped.
    LimitExceeded { limit: String },
    /// This pickle was found by resynchronising after a break, not where a loader would start.
    Resynchronised,
    /// STOP came while the last FRAME still held `bytes` bytes: a following `pickle.load` on an
    /// unpeekable file starts after the frame, not after STOP (FORMATS-FACTS §1.2, §10.2).
    FrameRunsPastStop { bytes: u64 },
    /// STACK_GLOBAL whose module or name is computed (a call result ...), not a literal string.
    /// A [`GlobalRef`] with module [`DYNAMIC_MODULE`] is recorded too.
    DynamicImport { detail: String },
    /// A joblib `NumpyArrayWrapper` whose raw data could not be located.
    JoblibArray { detail: String },
}

/// One anomaly with its position.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    pub offset: u64,
    #[serde(flatten)]
    pub kind: AnomalyKind,
    pub message: String,
}

/// The analysis of one pickle.
#[derive(Debug, Clone, Serialize)]
pub struct PickleReport {
    pub mode: ReadMode,
    pub start: u64,
    /// Offset just past STOP; `None` when the pickle broke before STOP.
    pub end: Option<u64>,
    /// Highest protocol number declared by PROTO (0 when none).
    pub proto: u8,
    pub opcodes: u64,
    pub globals: Vec<GlobalRef>,
    pub calls: Vec<CallSite>,
    pub persistent_ids: Vec<PersistentId>,
    pub anomalies: Vec<Anomaly>,
    /// Where a following `pickle.load` on the same stream would start reading: `end` in memory,
    /// but after a FRAME that runs past STOP on unpeekable files (§1.2). After a break, where
    /// reading stopped.
    pub next: u64,
    /// Bytes that are not pickle opcodes but were skipped as the host does (joblib arrays).
    pub raw_regions: Vec<RawRegion>,
    /// Call sites not recorded in `calls` because the same kind of call of the same named
    /// callable (or `persistent_load`) was already recorded several times; they add nothing a
    /// reader acts on, and a large benign pickle has hundreds of thousands of them.
    pub calls_repeated: u64,
    /// The object STOP returned, as far as it can be known (torch tensor tables are read from it).
    #[serde(skip)]
    pub result: Option<Value>,
}

/// A byte range inside a pickle stream that the host reads itself (not as opcodes).
#[derive(Debug, Clone, Serialize)]
pub struct RawRegion {
    pub offset: u64,
    pub len: u64,
    pub what: String,
}

/// The analysis of a whole stream: every pickle in it, in every read mode that differs.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub pickles: Vec<PickleReport>,
}
