//! The 68 pickle opcodes of protocols 0–5 (FORMATS-FACTS §1.10): byte, name, argument encoding
//! and the protocol that introduced them.

/// How an opcode's argument is encoded in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// No argument.
    None,
    /// One unsigned byte.
    U1,
    /// Two-byte little-endian unsigned.
    U2,
    /// Four-byte little-endian signed.
    I4,
    /// Four-byte little-endian unsigned (memo indexes of LONG_BINGET/LONG_BINPUT).
    U4,
    /// Eight-byte little-endian unsigned (FRAME).
    U8,
    /// Eight-byte big-endian IEEE double (BINFLOAT).
    F8,
    /// A newline-terminated decimal line (INT, LONG, GET, PUT, FLOAT ...).
    DecimalNl,
    /// A newline-terminated float line.
    FloatNl,
    /// A newline-terminated quoted, escaped string (STRING).
    StringNl,
    /// A newline-terminated raw-unicode-escape line (UNICODE).
    UnicodeNl,
    /// A newline-terminated ASCII line (PERSID).
    AsciiNl,
    /// Two newline-terminated lines: module and name (GLOBAL, INST).
    TwoLines,
    /// One-byte length, then that many bytes.
    Counted1,
    /// Four-byte unsigned length, then bytes.
    Counted4,
    /// Four-byte *signed* length, then bytes (LONG4: a negative count is an error).
    Counted4Signed,
    /// Eight-byte unsigned length, then bytes.
    Counted8,
}

/// One row of the opcode table.
#[derive(Debug, Clone, Copy)]
pub struct OpInfo {
    pub code: u8,
    pub name: &'static str,
    pub arg: ArgKind,
    /// Protocol that introduced the opcode (CPython accepts every opcode under any protocol, §1.1).
    pub proto: u8,
}

macro_rules! opcodes {
    ($($konst:ident = $code:literal, $arg:ident, $proto:literal;)*) => {
        $(pub const $konst: u8 = $code;)*
        /// Every opcode, in byte order of the table in FORMATS-FACTS §1.10.
        pub const OPCODES: &[OpInfo] = &[
            $(OpInfo { code: $code, name: stringify!($konst), arg: ArgKind::$arg, proto: $proto },)*
        ];
    };
}

opcodes! {
    MARK = 0x28, None, 0;
    EMPTY_TUPLE = 0x29, None, 1;
    STOP = 0x2e, None, 0;
    POP = 0x30, None, 0;
    POP_MARK = 0x31, None, 1;
    DUP = 0x32, None, 0;
    BINBYTES = 0x42, Counted4, 3;
    SHORT_BINBYTES = 0x43, Counted1, 3;
    FLOAT = 0x46, FloatNl, 0;
    BINFLOAT = 0x47, F8, 1;
    INT = 0x49, DecimalNl, 0;
    BININT = 0x4a, I4, 1;
    BININT1 = 0x4b, U1, 1;
    LONG = 0x4c, DecimalNl, 0;
    BININT2 = 0x4d, U2, 1;
    NONE = 0x4e, None, 0;
    PERSID = 0x50, AsciiNl, 0;
    BINPERSID = 0x51, None, 1;
    REDUCE = 0x52, None, 0;
    STRING = 0x53, StringNl, 0;
    BINSTRING = 0x54, Counted4, 1;
    SHORT_BINSTRING = 0x55, Counted1, 1;
    UNICODE = 0x56, UnicodeNl, 0;
    BINUNICODE = 0x58, Counted4, 1;
    EMPTY_LIST = 0x5d, None, 1;
    APPEND = 0x61, None, 0;
    BUILD = 0x62, None, 0;
    GLOBAL = 0x63, TwoLines, 0;
    DICT = 0x64, None, 0;
    APPENDS = 0x65, None, 1;
    GET = 0x67, DecimalNl, 0;
    BINGET = 0x68, U1, 1;
    INST = 0x69, TwoLines, 0;
    LONG_BINGET = 0x6a, U4, 1;
    LIST = 0x6c, None, 0;
    OBJ = 0x6f, None, 1;
    PUT = 0x70, DecimalNl, 0;
    BINPUT = 0x71, U1, 1;
    LONG_BINPUT = 0x72, U4, 1;
    SETITEM = 0x73, None, 0;
    TUPLE = 0x74, None, 0;
    SETITEMS = 0x75, None, 1;
    EMPTY_DICT = 0x7d, None, 1;
    PROTO = 0x80, U1, 2;
    NEWOBJ = 0x81, None, 2;
    EXT1 = 0x82, U1, 2;
    EXT2 = 0x83, U2, 2;
    EXT4 = 0x84, I4, 2;
    TUPLE1 = 0x85, None, 2;
    TUPLE2 = 0x86, None, 2;
    TUPLE3 = 0x87, None, 2;
    NEWTRUE = 0x88, None, 2;
    NEWFALSE = 0x89, None, 2;
    LONG1 = 0x8a, Counted1, 2;
    LONG4 = 0x8b, Counted4Signed, 2;
    SHORT_BINUNICODE = 0x8c, Counted1, 4;
    BINUNICODE8 = 0x8d, Counted8, 4;
    BINBYTES8 = 0x8e, Counted8, 4;
    EMPTY_SET = 0x8f, None, 4;
    ADDITEMS = 0x90, None, 4;
    FROZENSET = 0x91, None, 4;
    NEWOBJ_EX = 0x92, None, 4;
    STACK_GLOBAL = 0x93, None, 4;
    MEMOIZE = 0x94, None, 4;
    FRAME = 0x95, U8, 4;
    BYTEARRAY8 = 0x96, Counted8, 5;
    NEXT_BUFFER = 0x97, None, 5;
    READONLY_BUFFER = 0x98, None, 5;
}

/// Byte → index into [`OPCODES`] (255 = not an opcode), built at compile time so that the hot
/// loop pays one array load per opcode.
static INDEX: [u8; 256] = {
    let mut idx = [255u8; 256];
    let mut i = 0;
    while i < OPCODES.len() {
        idx[OPCODES[i].code as usize] = i as u8;
        i += 1;
    }
    idx
};

/// The table row for `byte`, or `None` when the byte is not an opcode ("invalid load key").
#[inline]
pub fn lookup(byte: u8) -> Option<&'static OpInfo> {
    let i = INDEX[byte as usize];
    OPCODES.get(i as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_eight_distinct_opcodes() {
        assert_eq!(OPCODES.len(), 68);
        let mut seen = [false; 256];
        for op in OPCODES {
            assert!(!seen[op.code as usize], "duplicate {}", op.name);
            seen[op.code as usize] = true;
            assert_eq!(lookup(op.code).map(|o| o.name), Some(op.name));
        }
        assert!(lookup(0xff).is_none());
        assert!(lookup(b'A').is_none());
        assert_eq!(lookup(0x93).map(|o| o.proto), Some(4));
    }
}
