//! Unit tests of the pickle reader. Every byte string is either crafted by hand (the comment
//! says what it holds) or was produced with CPython 3.11.7 (`pickle.dumps`, joblib 1.6.0) and
//! pasted; the comment gives the Python that made it.

use super::machine::{Arg, Machine, Tracer};
use super::opcodes::{OPCODES, OpInfo};
use super::*;

fn opts() -> Options {
    Options::default()
}

fn one(data: &[u8]) -> PickleReport {
    analyze_one(data, 0, ReadMode::InMemory, &opts())
}

fn one_in(data: &[u8], mode: ReadMode) -> PickleReport {
    analyze_one(data, 0, mode, &opts())
}

fn names(r: &PickleReport) -> Vec<String> {
    r.globals
        .iter()
        .map(|g| format!("{}.{}", g.module, g.name))
        .collect()
}

fn has(r: &PickleReport, f: impl Fn(&AnomalyKind) -> bool) -> bool {
    r.anomalies.iter().any(|a| f(&a.kind))
}

fn loader_error(r: &PickleReport) -> Option<String> {
    r.anomalies.iter().find_map(|a| match &a.kind {
        AnomalyKind::LoaderError { detail } => Some(detail.clone()),
        _ => None,
    })
}

// `pickle.dumps(OBJ, protocol=p)` for p in 0..=5, with
// OBJ = {'a': [1, 2.5, 'x', b'y', (1, 2), {3}, frozenset([4]), None, True, False, 10**30,
//              -70000, 300, bytearray(b'z'), (5,), (6, 7, 8), ()]}
const P0: &[u8] = b"(dp0\nVa\np1\n(lp2\nI1\naF2.5\naVx\np3\nac_codecs\nencode\np4\n(Vy\np5\nVlatin1\np6\ntp7\nRp8\na(I1\nI2\ntp9\nac__builtin__\nset\np10\n((lp11\nI3\natp12\nRp13\nac__builtin__\nfrozenset\np14\n((lp15\nI4\natp16\nRp17\naNaI01\naI00\naL1000000000000000000000000000000L\naI-70000\naI300\nac__builtin__\nbytearray\np18\n(g4\n(Vz\np19\ng6\ntp20\nRp21\ntp22\nRp23\na(I5\ntp24\na(I6\nI7\nI8\ntp25\na(tas.";
const P1: &[u8] = b"}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03c_codecs\nencode\nq\x04(X\x01\x00\x00\x00yq\x05X\x06\x00\x00\x00latin1q\x06tq\x07Rq\x08(K\x01K\x02tq\x09c__builtin__\nset\nq\n(]q\x0bK\x03atq\x0cRq\x0dc__builtin__\nfrozenset\nq\x0e(]q\x0fK\x04atq\x10Rq\x11NI01\nI00\nL1000000000000000000000000000000L\nJ\x90\xee\xfe\xffM,\x01c__builtin__\nbytearray\nq\x12(h\x04(X\x01\x00\x00\x00zq\x13h\x06tq\x14Rq\x15tq\x16Rq\x17(K\x05tq\x18(K\x06K\x07K\x08tq\x19)es.";
const P2: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03c_codecs\nencode\nq\x04X\x01\x00\x00\x00yq\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07Rq\x08K\x01K\x02\x86q\x09c__builtin__\nset\nq\n]q\x0bK\x03a\x85q\x0cRq\x0dc__builtin__\nfrozenset\nq\x0e]q\x0fK\x04a\x85q\x10Rq\x11N\x88\x89\x8a\x0d\x00\x00\x00@\xea\xedtF\xd0\x9c,\x9f\x0cJ\x90\xee\xfe\xffM,\x01c__builtin__\nbytearray\nq\x12h\x04X\x01\x00\x00\x00zq\x13h\x06\x86q\x14Rq\x15\x85q\x16Rq\x17K\x05\x85q\x18K\x06K\x07K\x08\x87q\x19)es.";
const P3: &[u8] = b"\x80\x03}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03C\x01yq\x04K\x01K\x02\x86q\x05cbuiltins\nset\nq\x06]q\x07K\x03a\x85q\x08Rq\x09cbuiltins\nfrozenset\nq\n]q\x0bK\x04a\x85q\x0cRq\x0dN\x88\x89\x8a\x0d\x00\x00\x00@\xea\xedtF\xd0\x9c,\x9f\x0cJ\x90\xee\xfe\xffM,\x01cbuiltins\nbytearray\nq\x0eC\x01zq\x0f\x85q\x10Rq\x11K\x05\x85q\x12K\x06K\x07K\x08\x87q\x13)es.";
const P4: &[u8] = b"\x80\x04\x95x\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00\x8c\x01x\x94C\x01y\x94K\x01K\x02\x86\x94\x8f\x94(K\x03\x90(K\x04\x91\x94N\x88\x89\x8a\x0d\x00\x00\x00@\xea\xedtF\xd0\x9c,\x9f\x0cJ\x90\xee\xfe\xffM,\x01\x8c\x08builtins\x94\x8c\x09bytearray\x94\x93\x94C\x01z\x94\x85\x94R\x94K\x05\x85\x94K\x06K\x07K\x08\x87\x94)es.";
const P5: &[u8] = b"\x80\x05\x95b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00\x8c\x01x\x94C\x01y\x94K\x01K\x02\x86\x94\x8f\x94(K\x03\x90(K\x04\x91\x94N\x88\x89\x8a\x0d\x00\x00\x00@\xea\xedtF\xd0\x9c,\x9f\x0cJ\x90\xee\xfe\xffM,\x01\x96\x01\x00\x00\x00\x00\x00\x00\x00z\x94K\x05\x85\x94K\x06K\x07K\x08\x87\x94)es.";

/// The FRAME straddle of §1.2 / cpython#154848, crafted by hand and checked with CPython 3.11.7:
/// `pickle.loads(b)` returns None and prints nothing; `pickle.Unpickler(io.BytesIO(b)).load()`
/// prints "hi" (then returns None); `pickle._Unpickler(...)` raises "pickle exhausted before end
/// of frame". PROTO 4; FRAME 4 holding `8c 0a 'AA'`: a SHORT_BINUNICODE of 10 whose frame ends
/// after 2 bytes. In memory the string is 'AA'+'BBBBBBBB' and `C 0x19` swallows the 25-byte
/// payload as bytes; from BytesIO the 2 bytes are dropped, the string is 'BBBBBBBB'+`C 0x19`,
/// and the payload runs: `builtins.print('hi')`, POP. Both end with `N.`.
const STRADDLE: &[u8] = b"\x80\x04\x95\x04\x00\x00\x00\x00\x00\x00\x00\x8c\nAABBBBBBBBC\x19\x8c\x08builtins\x8c\x05print\x93\x8c\x02hi\x85R0N.";

/// `joblib.dump({'a': np.arange(5, dtype='f4'), 'o': np.array([1, 'x'], dtype=object)}, f)`
/// with joblib 1.6.0 / numpy 2.4 (501 bytes): a raw f4 array after padding `0c` + 12×`ff`, and an
/// object array as a nested protocol-5 pickle.
const JOBLIB: &[u8] = b"\x80\x04\x95\xd8\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94\x8c\x13joblib.numpy_pickle\x94\x8c\x11NumpyArrayWrapper\x94\x93\x94)\x81\x94}\x94(\x8c\x08subclass\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94\x8c\x05shape\x94K\x05\x85\x94\x8c\x05order\x94\x8c\x01C\x94\x8c\x05dtype\x94h\x08\x8c\x05dtype\x94\x93\x94\x8c\x02f4\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x8c\nallow_mmap\x94\x88\x8c\x1bnumpy_array_alignment_bytes\x94K\x10ub\x0c\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@\x95K\x00\x00\x00\x00\x00\x00\x00\x8c\x01o\x94h\x04)\x81\x94}\x94(h\x07h\nh\x0bK\x02\x85\x94h\x0dh\x0eh\x0fh\x11\x8c\x02O8\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\x94bh\x17\x89h\x18K\x10ub\x80\x05\x95\x90\x00\x00\x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01K\x02\x85\x94h\x03\x8c\x05dtype\x94\x93\x94\x8c\x02O8\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\x94b\x89]\x94(K\x01\x8c\x01x\x94et\x94b.u.";

/// `data.pkl` of a real torch checkpoint (see tests/data/README.md).
const TORCH: &[u8] = include_bytes!("../../tests/data/akiki-vad-data.pkl");

// Hand-crafted pickles that, with the ones above, exercise every opcode.
const HAND: &[&[u8]] = &[
    b"N(0.",                                             // POP removes a MARK
    b"K\x01(.",                                          // STOP with a MARK on top
    b"(K\x01.",                                          // MARK below the top is fine
    b"K\x012\x86.",                                      // DUP, TUPLE2
    b"(K\x01K\x021K\x03.",                               // POP_MARK
    b"\x80\x03B\x02\x00\x00\x00hiJ\xff\xff\xff\xffM\x01\x02\x87.", // BINBYTES BININT BININT2 TUPLE3
    b"Pstorage0\n.",                                     // PERSID
    b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ.", // BINPERSID
    b"U\x02osT\x06\x00\x00\x00system\x93S'id'\n\x85R.",  // SHORT_BINSTRING BINSTRING STACK_GLOBAL TUPLE1
    b"(S'id'\nios\nsystem\n.",                           // INST
    b"(cos\nsystem\nS'id'\no.",                          // OBJ
    b"K\x07r\x00\x01\x00\x00j\x00\x01\x00\x00.",         // LONG_BINPUT / LONG_BINGET
    b"\x80\x02\x82\xc8.",                                // EXT1
    b"\x80\x02\x83\x01\x01.",                            // EXT2
    b"\x80\x02\x84\x01\x00\x00\x00.",                    // EXT4
    b"\x89\x8b\x02\x00\x00\x00\x00\x01.",                // NEWFALSE LONG4
    b"\x80\x04\x8d\x02\x00\x00\x00\x00\x00\x00\x00os\x8e\x01\x00\x00\x00\x00\x00\x00\x00x\x86.", // BINUNICODE8 BINBYTES8
    b"\x80\x02cbuiltins\nobject\n)\x81.",                // NEWOBJ
    b"\x80\x04cbuiltins\nobject\n)}\x92.",               // NEWOBJ_EX
    b"\x80\x05\x97.",                                    // NEXT_BUFFER (no buffers: error)
    b"\x80\x05C\x01x\x98.",                              // READONLY_BUFFER
    b"\x80\x02cos\n_wrap_close\n)\x81}b.",               // BUILD
];

struct OpLog(Vec<u8>);
impl Tracer for OpLog {
    fn op(&mut self, _off: u64, info: &'static OpInfo, _arg: &Arg, _data: &[u8], _depth: usize) {
        self.0.push(info.code);
    }
    fn note(&mut self, _note: &str) {}
    fn error(&mut self, _off: u64, _what: &str) {}
}

#[test]
fn every_opcode_is_exercised() {
    let o = opts();
    let mut log = OpLog(Vec::new());
    let all: Vec<&[u8]> = [P0, P1, P2, P3, P4, P5, STRADDLE, JOBLIB, TORCH]
        .into_iter()
        .chain(HAND.iter().copied())
        .collect();
    for data in all {
        let _ = Machine::new(data, 0, ReadMode::InMemory, &o)
            .with_tracer(&mut log)
            .run();
    }
    let missing: Vec<&str> = OPCODES
        .iter()
        .filter(|op| !log.0.contains(&op.code))
        .map(|op| op.name)
        .collect();
    assert!(missing.is_empty(), "opcodes never executed: {missing:?}");
}

#[test]
fn protocols_zero_to_five_load_the_same_object() {
    for (p, data) in [P0, P1, P2, P3, P4, P5].into_iter().enumerate() {
        let r = one(data);
        assert_eq!(
            r.end,
            Some(data.len() as u64),
            "protocol {p}: {:?}",
            r.anomalies
        );
        assert_eq!(r.proto as usize, if p < 2 { 0 } else { p });
        assert!(r.anomalies.is_empty(), "protocol {p}: {:?}", r.anomalies);
        let res = r.result.expect("result");
        let entries = res.entries().expect("a dict");
        assert_eq!(entries[0].0.as_str(), Some("a"));
        let Value::List { items, len } = &entries[0].1 else {
            panic!("list expected: {:?}", entries[0].1)
        };
        assert_eq!(*len, 17);
        assert_eq!(items[0], Value::Int(1));
        assert_eq!(items[1], Value::Float(2.5));
        assert_eq!(items[2].as_str(), Some("x"));
        assert_eq!(items[7], Value::None);
        assert_eq!(items[8], Value::Bool(true));
        assert_eq!(items[9], Value::Bool(false));
        assert_eq!(
            items[10],
            Value::BigInt("1000000000000000000000000000000".into())
        );
        assert_eq!(items[11], Value::Int(-70000));
        assert_eq!(items[12], Value::Int(300));
        assert_eq!(items[16], Value::Tuple(vec![]));
    }
    // Sets under protocol < 4 are REDUCE(builtins.set, ...); mapped from __builtin__ under 0–2.
    let r = one(P2);
    assert!(names(&r).contains(&"builtins.set".to_string()));
    assert!(
        r.globals
            .iter()
            .any(|g| g.raw_module == "__builtin__" && g.module == "builtins")
    );
    // Protocol 5's bytearray is BYTEARRAY8, no import at all.
    assert!(one(P5).globals.is_empty());
}

#[test]
fn global_compat_mapping() {
    // Hand-made protocol 0: __builtin__.eval('1+1').
    let r = one(b"c__builtin__\neval\n(S'1+1'\ntR.");
    assert_eq!(r.globals[0].module, "builtins");
    assert_eq!(r.globals[0].name, "eval");
    assert_eq!(r.globals[0].raw_module, "__builtin__");
    assert_eq!(r.calls[0].kind, CallKind::Reduce);
    assert_eq!(
        r.calls[0].callable.as_ref().map(|g| g.name.as_str()),
        Some("eval")
    );
    assert_eq!(r.calls[0].summary, "builtins.eval('1+1')");
    // commands.getoutput → subprocess.getoutput under PROTO 2, but not under PROTO 3.
    let r = one(b"\x80\x02ccommands\ngetoutput\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.");
    assert_eq!(names(&r), ["subprocess.getoutput"]);
    assert_eq!(r.calls[0].summary, "subprocess.getoutput('id')");
    let r = one(b"\x80\x03ccommands\ngetoutput\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.");
    assert_eq!(names(&r), ["commands.getoutput"]);
    // NAME_MAPPING wins over IMPORT_MAPPING: __builtin__.reduce → functools.reduce.
    assert_eq!(
        names(&one(b"c__builtin__\nreduce\n.")),
        ["functools.reduce"]
    );
}

#[test]
fn stack_global_operands_from_memo_and_protocol0_string() {
    // PROTO 4; 'os' MEMOIZE; 'system' MEMOIZE; BINGET 0; BINGET 1; STACK_GLOBAL; 'id'; TUPLE1; REDUCE.
    let r = one(b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x02id\x85R.");
    assert_eq!(names(&r), ["os.system"]);
    assert_eq!(r.calls[0].summary, "os.system('id')");
    assert!(!r.calls[0].computed_callable);
    // Protocol-0 STRING operands decode to str.
    let r = one(b"S'os'\nS'system'\n\x93S'id'\n\x85R.");
    assert_eq!(names(&r), ["os.system"]);
    assert_eq!(r.calls.len(), 1);
    // Bytes operands: "STACK_GLOBAL requires str".
    let r = one(b"\x80\x04C\x02osC\x06system\x93.");
    assert!(r.globals.is_empty());
    assert_eq!(
        loader_error(&r).as_deref(),
        Some("STACK_GLOBAL requires str")
    );
}

#[test]
fn dotted_names_are_kept_whole() {
    let r = one(b"\x80\x04\x8c\x07pathlib\x8c\tos.system\x93\x8c\x02id\x85R.");
    assert_eq!(r.globals[0].module, "pathlib");
    assert_eq!(r.globals[0].name, "os.system");
    assert_eq!(r.calls[0].summary, "pathlib.os.system('id')");
}

#[test]
fn inst_and_obj_are_calls() {
    let r = one(b"(S'id'\nios\nsystem\n.");
    assert_eq!(r.globals[0].opcode, "INST");
    assert_eq!(r.calls[0].kind, CallKind::Inst);
    assert_eq!(r.calls[0].summary, "os.system('id')");
    let r = one(b"(cos\nsystem\nS'id'\no.");
    assert_eq!(r.calls[0].kind, CallKind::Obj);
    assert_eq!(
        r.calls[0].callable.as_ref().map(|g| g.module.as_str()),
        Some("os")
    );
    // INST without a MARK fails before the import happens.
    let r = one(b"ios\nsystem\n.");
    assert!(r.globals.is_empty());
    assert_eq!(loader_error(&r).as_deref(), Some("could not find MARK"));
}

#[test]
fn ext_codes_are_reported_and_break() {
    let r = one(b"\x80\x02\x82\xc8.");
    assert!(has(&r, |k| *k == AnomalyKind::ExtCode { code: 200 }));
    assert_eq!(
        loader_error(&r).as_deref(),
        Some("unregistered extension code 200")
    );
    assert_eq!(r.end, None);
    // EXT4 is signed: a negative code is "EXT specifies code <= 0".
    let r = one(b"\x80\x02\x84\xff\xff\xff\xff.");
    assert_eq!(loader_error(&r).as_deref(), Some("EXT specifies code <= 0"));
}

#[test]
fn memoize_stores_at_count_and_may_overwrite() {
    // BINPUT 5 then MEMOIZE stores at slot 1 (one slot occupied), not 6.
    let r = one(b"\x80\x04K\x05q\x05K\x07\x94h\x01.");
    assert_eq!(r.result, Some(Value::Int(7)));
    // BINPUT 1 then MEMOIZE overwrites slot 1.
    let r = one(b"\x80\x04\x8c\x01aq\x01\x8c\x01b\x94h\x01.");
    assert_eq!(r.result.as_ref().and_then(Value::as_str), Some("b"));
    // Text memo indexes parse like int(s, 10): `p 1_0` then `g10`.
    let r = one(b"K\x09p 1_0\nNg10\n.");
    assert_eq!(r.result, Some(Value::Int(9)));
    // GET of a missing slot.
    let r = one(b"h\x03.");
    assert!(has(&r, |k| *k == AnomalyKind::MemoMissing { index: 3 }));
    // PUT with an empty stack or right after a MARK is an underflow.
    assert_eq!(
        loader_error(&one(b"(q\x00.")).as_deref(),
        Some("unexpected MARK found")
    );
}

#[test]
fn marks_pop_and_stop() {
    let r = one(b"N(0.");
    assert_eq!(r.result, Some(Value::None));
    let r = one(b"K\x01(.");
    assert_eq!(r.end, None);
    assert_eq!(loader_error(&r).as_deref(), Some("unexpected MARK found"));
    assert_eq!(r.anomalies[0].offset, 3);
    assert_eq!(one(b"(K\x01.").result, Some(Value::Int(1)));
    assert_eq!(one(b"N\x88.").result, Some(Value::Bool(true)));
    assert_eq!(
        loader_error(&one(b".")).as_deref(),
        Some("unpickling stack underflow")
    );
    assert_eq!(
        loader_error(&one(b"1.")).as_deref(),
        Some("could not find MARK")
    );
}

#[test]
fn text_numbers_follow_c() {
    // INT: strtol base 0, so "010" is 8; "01" is True; NUL ends the number.
    assert_eq!(one(b"I010\n.").result, Some(Value::Int(8)));
    assert_eq!(one(b"I01\n.").result, Some(Value::Bool(true)));
    let r = one(b"I1\x00junk\n.");
    assert_eq!(r.result, Some(Value::Int(1)));
    assert!(has(&r, |k| *k == AnomalyKind::NulInNumber));
    assert_eq!(one(b"L12L\n.").result, Some(Value::Int(12)));
    assert_eq!(one(b"F-1.5\n.").result, Some(Value::Float(-1.5)));
    assert!(has(&one(b"Ixyz\n."), |k| matches!(
        k,
        AnomalyKind::BadArgument { .. }
    )));
}

#[test]
fn proto_values_and_resets() {
    assert_eq!(
        one(b"\x80\x06N.").anomalies[0].kind,
        AnomalyKind::UnsupportedProtocol { proto: 6 }
    );
    // PROTO 5 ... PROTO 0: the last PROTO decides the mapping (proto 0 maps __builtin__).
    let r = one(b"\x80\x05\x80\x00c__builtin__\nexec\n.");
    assert_eq!(r.proto, 5);
    assert_eq!(names(&r), ["builtins.exec"]);
    assert_eq!(r.globals[0].proto, 0);
}

#[test]
fn frame_straddle_readers_disagree() {
    // In memory (and pickletools): no import, no call, returns None.
    let mem = one_in(STRADDLE, ReadMode::InMemory);
    assert_eq!(mem.end, Some(STRADDLE.len() as u64));
    assert!(mem.globals.is_empty() && mem.calls.is_empty());
    assert!(has(&mem, |k| *k == AnomalyKind::FrameStraddle));
    assert_eq!(mem.result, Some(Value::None));
    // From BytesIO: the hidden builtins.print('hi') runs.
    let file = one_in(STRADDLE, ReadMode::FileNoPeek);
    assert_eq!(names(&file), ["builtins.print"]);
    assert_eq!(file.calls[0].summary, "builtins.print('hi')");
    assert_eq!(file.end, Some(STRADDLE.len() as u64));
    let straddle_at = file
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::FrameStraddle)
        .map(|a| a.offset);
    assert_eq!(straddle_at, Some(13)); // the 2 dropped bytes 'AA' start at 13
    // Pure Python raises at the straddle.
    let py = one_in(STRADDLE, ReadMode::PurePython);
    assert_eq!(py.end, None);
    assert_eq!(
        loader_error(&py).as_deref(),
        Some("pickle exhausted before end of frame")
    );
    // The stream analysis reports every reading.
    let s = analyze_stream(STRADDLE, &opts(), ReadMode::InMemory);
    let modes: Vec<ReadMode> = s.pickles.iter().map(|p| p.mode).collect();
    assert!(modes.contains(&ReadMode::FileNoPeek) && modes.contains(&ReadMode::PurePython));
    assert!(
        s.pickles
            .iter()
            .any(|p| p.mode == ReadMode::FileNoPeek && !p.calls.is_empty())
    );
}

#[test]
fn frame_overrun_and_early_frame() {
    // FRAME 100 with 2 bytes left: C raises up front; pure Python reads what is there.
    let data = b"\x80\x04\x95\x64\x00\x00\x00\x00\x00\x00\x00N.";
    let c = one_in(data, ReadMode::InMemory);
    assert!(has(&c, |k| *k == AnomalyKind::FrameOverrun));
    assert_eq!(c.end, None);
    let py = one_in(data, ReadMode::PurePython);
    assert_eq!(py.result, Some(Value::None));
    // A FRAME inside a frame: pure Python raises, C in memory reads on.
    let data =
        b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x95\x01\x00\x00\x00\x00\x00\x00\x00N.";
    assert!(has(&one_in(data, ReadMode::PurePython), |k| *k
        == AnomalyKind::FrameEarly));
    assert_eq!(one_in(data, ReadMode::PurePython).end, None);
    let mem = one_in(data, ReadMode::InMemory);
    assert!(has(&mem, |k| *k == AnomalyKind::FrameEarly));
    assert_eq!(mem.result, Some(Value::None));
}

#[test]
fn stacked_pickles_and_trailing_data() {
    let s = analyze_stream(b"\x80\x02K\x01.\x80\x02K\x02.", &opts(), ReadMode::InMemory);
    assert_eq!(s.pickles.len(), 2);
    assert_eq!(s.pickles[0].result, Some(Value::Int(1)));
    assert_eq!(s.pickles[1].result, Some(Value::Int(2)));
    assert_eq!(s.pickles[1].start, 5);
    // Garbage after STOP is trailing data on the last pickle.
    let s = analyze_stream(b"K\x01.\xff\xfe", &opts(), ReadMode::InMemory);
    assert_eq!(s.pickles.len(), 1);
    assert!(has(&s.pickles[0], |k| *k
        == AnomalyKind::TrailingData { bytes: 2 }));
}

#[test]
fn payload_before_garbage_is_reported_with_the_break() {
    // nullifAI-style: os.system('id') runs, then an invalid opcode instead of STOP.
    let data = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R\xff\xff";
    let s = analyze_stream(data, &opts(), ReadMode::InMemory);
    let p = &s.pickles[0];
    assert_eq!(p.calls[0].summary, "os.system('id')");
    assert_eq!(p.end, None);
    assert!(
        p.anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::InvalidOpcode { byte: 0xff } && a.offset == 22)
    );
}

#[test]
fn resynchronises_after_a_break() {
    // A broken pickle, junk, then a second pickle importing os.system.
    let mut data = b"\x80\x02K\x01\xff junk junk ".to_vec();
    let second = data.len();
    data.extend_from_slice(b"\x80\x02cos\nsystem\n.");
    let s = analyze_stream(&data, &opts(), ReadMode::InMemory);
    assert_eq!(s.pickles.len(), 2);
    assert_eq!(s.pickles[1].start, second as u64);
    assert!(has(&s.pickles[1], |k| *k == AnomalyKind::Resynchronised));
    assert_eq!(names(&s.pickles[1]), ["os.system"]);
}

#[test]
fn truncated_stream() {
    let r = one(b"\x80\x02cos\nsys");
    assert!(r.globals.is_empty());
    assert_eq!(
        r.anomalies.last().map(|a| &a.kind),
        Some(&AnomalyKind::Truncated)
    );
    assert_eq!(one(b"").anomalies[0].kind, AnomalyKind::Truncated);
}

#[test]
fn huge_memo_index_and_huge_length_allocate_nothing() {
    let r = one(b"\x80\x02K\x01r\xff\xff\xff\xffj\xff\xff\xff\xff.");
    assert!(has(&r, |k| *k == AnomalyKind::MemoHuge { index: 0xFFFF_FFFF }));
    assert_eq!(r.result, Some(Value::Int(1)));
    let mut data = b"\x80\x04\x8e".to_vec();
    data.extend_from_slice(&(1u64 << 60).to_le_bytes());
    data.extend_from_slice(b"xx.");
    let r = one(&data);
    assert!(has(&r, |k| *k == AnomalyKind::HugeLength { declared: 1 << 60 }));
    assert_eq!(
        r.anomalies.last().map(|a| &a.kind),
        Some(&AnomalyKind::Truncated)
    );
}

#[test]
fn limits_stop_the_pickle() {
    let mut o = opts();
    o.limits.max_opcodes = 3;
    let r = analyze_one(b"NNNNN.", 0, ReadMode::InMemory, &o);
    assert!(has(
        &r,
        |k| matches!(k, AnomalyKind::LimitExceeded { limit } if limit == "max_opcodes")
    ));
    let mut o = opts();
    o.limits.max_value_depth = 3;
    // ((((1,),),),) is deeper than 3: the outer tuple becomes Unknown.
    let r = analyze_one(b"K\x01\x85\x85\x85\x85.", 0, ReadMode::InMemory, &o);
    assert_eq!(r.result, Some(Value::Unknown));
    // Deep nesting through mutation cannot overflow the native stack when dropped.
    let mut deep = b"]q\x00".to_vec();
    for _ in 0..200_000 {
        deep.extend_from_slice(b"]q\x01h\x00h\x01ah\x01q\x000");
    }
    deep.push(b'.');
    let _ = one(&deep);
}

#[test]
fn laundering_is_a_computed_callable() {
    // getattr(os, 'system')('id') in protocol 2: the second REDUCE calls a call result.
    let data = b"\x80\x02cbuiltins\ngetattr\ncos\nsystem\nX\x06\x00\x00\x00system\x86RX\x02\x00\x00\x00id\x85R.";
    let r = one(data);
    assert_eq!(r.calls.len(), 2);
    assert!(!r.calls[0].computed_callable);
    assert!(r.calls[1].computed_callable);
    assert!(r.calls[1].callable.is_none());
    assert!(
        r.calls[1]
            .summary
            .starts_with("builtins.getattr(os.system, 'system')('id')"),
        "{}",
        r.calls[1].summary
    );
}

#[test]
fn mutations_of_objects_are_calls() {
    // BUILD on an object records its class; SETITEMS on an OrderedDict is a SetItem call;
    // APPENDS on a plain list is not a call.
    let r = one(b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00kK\x01u]K\x01ab.");
    assert!(r.calls.iter().any(|c| c.kind == CallKind::SetItem));
    assert!(!r.calls.iter().any(|c| c.kind == CallKind::Append));
    let r = one(b"\x80\x02cos\n_wrap_close\n)\x81}b.");
    let build = r
        .calls
        .iter()
        .find(|c| c.kind == CallKind::Build)
        .expect("BUILD call");
    assert_eq!(
        build.callable.as_ref().map(|g| g.name.as_str()),
        Some("_wrap_close")
    );
    // STACK_GLOBAL with a computed module name is a dynamic import.
    let r = one(b"\x80\x04cbuiltins\nstr\n)R\x8c\x06system\x93.");
    assert!(has(&r, |k| matches!(k, AnomalyKind::DynamicImport { .. })));
    assert!(r.globals.iter().any(|g| g.module == DYNAMIC_MODULE));
}

#[test]
fn joblib_raw_arrays_are_skipped() {
    let mut o = opts();
    o.joblib_arrays = true;
    let r = analyze_one(JOBLIB, 0, ReadMode::PurePython, &o);
    assert_eq!(r.end, Some(JOBLIB.len() as u64), "{:?}", r.anomalies);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.raw_regions.len(), 2);
    // 0c + 12 x ff + 5 * 4 bytes of f4 data, right after the first BUILD at offset 226.
    assert_eq!((r.raw_regions[0].offset, r.raw_regions[0].len), (227, 33));
    let n = names(&r);
    assert!(n.contains(&"joblib.numpy_pickle.NumpyArrayWrapper".to_string()));
    // The nested object-array pickle's imports count.
    assert!(n.contains(&"numpy._core.multiarray._reconstruct".to_string()));
    // Without the option the raw bytes break the pickle.
    let r = analyze_one(JOBLIB, 0, ReadMode::PurePython, &opts());
    assert_eq!(r.end, None);
    assert!(has(&r, |k| *k == AnomalyKind::InvalidOpcode { byte: 0x0c }));
}

#[test]
fn torch_data_pkl_yields_tensor_table() {
    let s = analyze_stream(TORCH, &opts(), ReadMode::FileNoPeek);
    assert_eq!(s.pickles.len(), 1);
    let r = &s.pickles[0];
    assert_eq!(r.end, Some(TORCH.len() as u64));
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    let mut n = names(r);
    n.sort();
    n.dedup();
    assert_eq!(
        n,
        [
            "collections.OrderedDict",
            "torch.FloatStorage",
            "torch._utils._rebuild_tensor_v2"
        ]
    );
    assert_eq!(r.persistent_ids.len(), 15);
    assert_eq!(
        r.persistent_ids[0].summary,
        "('storage', torch.FloatStorage, '0', 'cpu', 66048)"
    );
    // Walk the result: {'state_dict': {'basis': _rebuild_tensor_v2(persistent_load(pid), ...)}}.
    let res = r.result.as_ref().expect("result");
    let top = res.entries().expect("a dict at the top");
    let sd = top
        .iter()
        .find(|(k, _)| k.as_str() == Some("state_dict"))
        .map(|(_, v)| v)
        .expect("state_dict");
    let entries = sd.entries().expect("state_dict entries");
    let (name, t) = &entries[0];
    assert_eq!(name.as_str(), Some("basis"));
    assert_eq!(
        t.callee().map(|g| g.name.as_str()),
        Some("_rebuild_tensor_v2")
    );
    let args = t.as_call().and_then(|c| c.args.as_seq()).expect("args");
    let Value::Persistent(pid) = &args[0] else {
        panic!("storage expected: {:?}", args[0])
    };
    assert_eq!(pid.as_seq().and_then(|p| p[2].as_str()), Some("0"));
    assert_eq!(
        args[2],
        Value::Tuple(vec![Value::Int(258), Value::Int(1), Value::Int(256)])
    );
    // Every tensor in the file hangs off the result somewhere.
    let tensors = count_calls(res, "_rebuild_tensor_v2");
    assert_eq!(tensors, 15);
}

fn count_calls(v: &Value, name: &str) -> usize {
    let own = usize::from(v.callee().is_some_and(|g| g.name == name));
    let kids: usize = match v {
        Value::Tuple(items) | Value::List { items, .. } | Value::Set { items, .. } => {
            items.iter().map(|i| count_calls(i, name)).sum()
        }
        Value::Dict { items, .. } => items
            .iter()
            .map(|(k, x)| count_calls(k, name) + count_calls(x, name))
            .sum(),
        Value::Call(c) => {
            count_calls(&c.args, name)
                + c.pairs
                    .iter()
                    .map(|(k, x)| count_calls(k, name) + count_calls(x, name))
                    .sum::<usize>()
                + c.items.iter().map(|i| count_calls(i, name)).sum::<usize>()
        }
        _ => 0,
    };
    own + kids
}

#[test]
fn disasm_lists_imports_frames_and_breaks() {
    let mut out = String::new();
    disasm(STRADDLE, 0, ReadMode::FileNoPeek, &mut out, 1000).unwrap();
    assert!(out.contains("FRAME"), "{out}");
    assert!(out.contains("→ builtins.print"), "{out}");
    assert!(out.contains("CALL builtins.print('hi')"), "{out}");
    let mut out = String::new();
    disasm(
        b"\x80\x02cos\nsystem\nq\x00\xff",
        0,
        ReadMode::InMemory,
        &mut out,
        1000,
    )
    .unwrap();
    assert!(out.contains("→ os.system"), "{out}");
    assert!(out.contains("memo[0]"), "{out}");
    assert!(out.contains("invalid load key"), "{out}");
    let mut out = String::new();
    disasm(P0, 0, ReadMode::InMemory, &mut out, 5).unwrap();
    assert!(out.contains("more lines not shown"), "{out}");
}

/// xorshift64*: a fixed-seed generator for the no-panic test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut o = opts();
    o.joblib_arrays = true;
    o.limits.max_opcodes = 100_000;
    let seeds: Vec<&[u8]> = [P0, P1, P2, P3, P4, P5, STRADDLE, JOBLIB, TORCH]
        .into_iter()
        .chain(HAND.iter().copied())
        .collect();
    let mut sink = String::new();
    for i in 0..4000 {
        let data: Vec<u8> = if i % 2 == 0 {
            let len = (rng.next() % 256) as usize;
            // Bias towards opcode bytes so that the machine gets past the first byte.
            (0..len)
                .map(|_| {
                    let r = rng.next();
                    if r % 3 == 0 {
                        OPCODES[(r >> 8) as usize % OPCODES.len()].code
                    } else {
                        (r >> 16) as u8
                    }
                })
                .collect()
        } else {
            let mut d = seeds[(rng.next() as usize) % seeds.len()].to_vec();
            for _ in 0..1 + rng.next() % 4 {
                if d.is_empty() {
                    break;
                }
                let at = (rng.next() as usize) % d.len();
                match rng.next() % 3 {
                    0 => d[at] = rng.next() as u8,
                    1 => {
                        d.remove(at);
                    }
                    _ => d.insert(at, OPCODES[(rng.next() as usize) % OPCODES.len()].code),
                }
            }
            d
        };
        for mode in [
            ReadMode::InMemory,
            ReadMode::FileNoPeek,
            ReadMode::PurePython,
        ] {
            let s = analyze_stream(&data, &o, mode);
            assert!(s.pickles.len() <= 3 * o.limits.max_pickles);
        }
        sink.clear();
        disasm(&data, 0, ReadMode::FileNoPeek, &mut sink, 200).unwrap();
    }
}

/// Local throughput check (not a timed test): `PEDIGREE_BENCH_PICKLE=path cargo test --release
/// -p pedigree-formats bench_pickle_file -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_pickle_file() {
    let Ok(path) = std::env::var("PEDIGREE_BENCH_PICKLE") else {
        return;
    };
    let data = std::fs::read(path).expect("read");
    let mut o = opts();
    o.limits.max_memo_entries = 10_000_000;
    for mode in [
        ReadMode::InMemory,
        ReadMode::FileNoPeek,
        ReadMode::PurePython,
    ] {
        let t = std::time::Instant::now();
        let s = analyze_stream(&data, &o, mode);
        let dt = t.elapsed().as_secs_f64();
        let p = &s.pickles[0];
        eprintln!(
            "{mode:?}: {} bytes, {} opcodes, {} pickles, end {:?}, {} anomalies: {:.3}s = {:.0} MB/s",
            data.len(),
            p.opcodes,
            s.pickles.len(),
            p.end,
            p.anomalies.len(),
            dt,
            data.len() as f64 / dt / 1e6
        );
    }
}

/// `PROTO 4`, a list of `n` one-element tuples each MEMOIZEd (as protocol 4 does with every
/// tuple), in APPENDS batches of 1000; the list itself is memo 0.
fn memoized_tuples(n: usize) -> Vec<u8> {
    let mut d = b"\x80\x04]\x94".to_vec();
    let mut i = 0;
    while i < n {
        d.push(b'(');
        for _ in 0..1000.min(n - i) {
            d.extend_from_slice(b"K\x07\x85\x94");
            i += 1;
        }
        d.push(b'e');
    }
    d
}

#[test]
fn more_than_a_million_memo_entries_is_not_a_limit() {
    // Ordinary large pickles memoize millions of objects; the default limits must not report
    // them as resource exhaustion.
    let mut d = memoized_tuples(1_200_000);
    d.push(b'.');
    let r = one(&d);
    assert_eq!(r.end, Some(d.len() as u64), "{:?}", r.anomalies);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    let Some(Value::List { items, len }) = &r.result else {
        panic!("list expected")
    };
    assert_eq!(*len, 1_200_000);
    assert_eq!(items[0], Value::Tuple(vec![Value::Int(7)]));
}

#[test]
fn memo_past_its_exact_budget_keeps_names_and_types() {
    // 9000 memoized tuples spend the memo's exact budget; then 'os' and 'system' are memoized
    // and an import reads them back through LONG_BINGET: still a plain import of os.system,
    // not a dynamic one. A list GET back from the memo still takes APPENDs without a call.
    let n = 9000usize;
    let mut d = memoized_tuples(n);
    d.extend_from_slice(b"\x8c\x02os\x94\x8c\x06system\x94\x93");
    d.push(b'j');
    d.extend_from_slice(&(n as u32 + 1).to_le_bytes());
    d.push(b'j');
    d.extend_from_slice(&(n as u32 + 2).to_le_bytes());
    d.extend_from_slice(b"\x93\x8c\x02id\x85R0");
    // GET the list (memo 0) and a late tuple (kept as type and size only), append it.
    d.extend_from_slice(b"h\x00j");
    d.extend_from_slice(&8500u32.to_le_bytes());
    d.extend_from_slice(b"a0");
    // A late tuple as the arguments of a call.
    d.extend_from_slice(b"cbuiltins\nprint\nj");
    d.extend_from_slice(&8600u32.to_le_bytes());
    d.extend_from_slice(b"R.");
    let r = one(&d);
    assert_eq!(r.end, Some(d.len() as u64), "{:?}", r.anomalies);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(
        names(&r),
        ["os.system", "os.system", "builtins.print"].map(String::from)
    );
    assert_eq!(r.calls[0].summary, "os.system('id')");
    assert!(!r.calls.iter().any(|c| c.kind == CallKind::Append));
    assert_eq!(r.calls.len(), 2);
    assert!(
        r.calls[1].summary.starts_with("builtins.print("),
        "{}",
        r.calls[1].summary
    );
}

#[test]
fn repeated_calls_of_a_global_are_counted() {
    // [_codecs.encode('x', 'latin1')] * 100 in protocol 2 style: every call is a REDUCE of the
    // same memoized global; the first few are recorded, the rest counted.
    let mut d =
        b"\x80\x02]q\x00(c_codecs\nencode\nq\x01X\x01\x00\x00\x00xX\x06\x00\x00\x00latin1\x86R"
            .to_vec();
    for _ in 1..100 {
        d.extend_from_slice(b"h\x01X\x01\x00\x00\x00xX\x06\x00\x00\x00latin1\x86R");
    }
    d.extend_from_slice(b"e.");
    let r = one(&d);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.calls.len() as u64 + r.calls_repeated, 100);
    assert!(r.calls.len() < 100);
    assert_eq!(r.calls[0].summary, "_codecs.encode('x', 'latin1')");
}

/// A protocol 4 pickle shaped like the benchmark's dense input (a list of
/// `(i, 'tok<i>', int32, float)` tuples, every string and tuple MEMOIZEd, APPENDS batches of
/// `batch`), cut into FRAMEs of about `frame` bytes at opcode boundaries, as the pickler does.
fn dense_like(n: usize, batch: usize, frame: usize) -> Vec<u8> {
    let mut body: Vec<Vec<u8>> = vec![b"]\x94".to_vec()];
    let mut i = 0;
    while i < n {
        body.push(b"(".to_vec());
        for _ in 0..batch.min(n - i) {
            let mut t = vec![b'('];
            t.extend_from_slice(b"J");
            t.extend_from_slice(&(i as i32).to_le_bytes());
            let s = format!("tok{}", i % 50);
            t.push(0x8c);
            t.push(s.len() as u8);
            t.extend_from_slice(s.as_bytes());
            t.push(0x94);
            t.push(b'J');
            t.extend_from_slice(&(i as i32).wrapping_mul(-7919).to_le_bytes());
            t.push(b'G');
            t.extend_from_slice(&(i as f64 / 7.0).to_be_bytes());
            t.extend_from_slice(b"t\x94");
            body.push(t);
            i += 1;
        }
        body.push(b"e".to_vec());
    }
    body.push(b".".to_vec());
    let mut d = b"\x80\x04".to_vec();
    let mut cur: Vec<u8> = Vec::new();
    for op in body {
        if cur.len() + op.len() > frame && !cur.is_empty() {
            d.push(0x95);
            d.extend_from_slice(&(cur.len() as u64).to_le_bytes());
            d.append(&mut cur);
        }
        cur.extend_from_slice(&op);
    }
    d.push(0x95);
    d.extend_from_slice(&(cur.len() as u64).to_le_bytes());
    d.append(&mut cur);
    d
}

/// Runs `data` through the general path only (a tracer turns the fast path off).
fn general_path(data: &[u8], mode: ReadMode, o: &Options) -> PickleReport {
    let mut log = OpLog(Vec::new());
    Machine::new(data, 0, mode, o).with_tracer(&mut log).run()
}

/// Everything a report says, for comparing two runs.
fn report_key(r: &PickleReport) -> String {
    format!(
        "{}\nresult={:?}",
        serde_json::to_string(r).unwrap_or_default(),
        r.result
    )
}

#[test]
fn fast_path_agrees_with_the_general_path() {
    // The machine runs the opcodes of data pickles in a fast loop and everything else one
    // opcode at a time with every check; both must give the same report, byte for byte, on
    // well-formed, framed, mutated and random inputs, in every read mode.
    // PEDIGREE_DIFF_ITERS / PEDIGREE_DIFF_SEED run more mutations, or others, locally.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let iters = env("PEDIGREE_DIFF_ITERS").unwrap_or(1500);
    let mut rng = Rng(env("PEDIGREE_DIFF_SEED").unwrap_or(0x2545_F491_4F6C_DD1D) | 1);
    let mut o = opts();
    o.joblib_arrays = true;
    o.limits.max_opcodes = 200_000;
    let dense = dense_like(3000, 1000, 4096);
    let mut seeds: Vec<Vec<u8>> = [P0, P1, P2, P3, P4, P5, STRADDLE, JOBLIB, TORCH]
        .into_iter()
        .chain(HAND.iter().copied())
        .map(<[u8]>::to_vec)
        .collect();
    seeds.push(dense_like(40, 7, 64));
    seeds.push(dense.clone());
    let mut inputs = seeds.clone();
    for _ in 0..iters {
        let mut d = seeds[(rng.next() as usize) % seeds.len()].clone();
        for _ in 0..1 + rng.next() % 4 {
            if d.is_empty() {
                break;
            }
            let at = (rng.next() as usize) % d.len();
            match rng.next() % 3 {
                0 => d[at] = rng.next() as u8,
                1 => {
                    d.remove(at);
                }
                _ => d.insert(at, OPCODES[(rng.next() as usize) % OPCODES.len()].code),
            }
        }
        inputs.push(d);
    }
    for data in &inputs {
        for mode in [
            ReadMode::InMemory,
            ReadMode::FileNoPeek,
            ReadMode::PurePython,
        ] {
            let fast = analyze_one(data, 0, mode, &o);
            let slow = general_path(data, mode, &o);
            assert_eq!(
                report_key(&fast),
                report_key(&slow),
                "{mode:?} on {:?}",
                String::from_utf8_lossy(&data[..data.len().min(200)])
            );
        }
    }
    // The dense input itself loads whole, with the list's length and kept items right.
    let r = one(&dense);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    let Some(Value::List { items, len }) = &r.result else {
        panic!("list expected")
    };
    assert_eq!((*len, items.len()), (3000, 1024));
    let t = |i: i64| {
        Value::Tuple(vec![
            Value::Int(i),
            Value::Str {
                text: format!("tok{}", i % 50),
                len: format!("tok{}", i % 50).len() as u64,
            },
            Value::Int((i as i32).wrapping_mul(-7919) as i64),
            Value::Float(i as f64 / 7.0),
        ])
    };
    assert_eq!(items[0], t(0));
    assert_eq!(items[1023], t(1023));
}

#[test]
fn a_memoized_tuple_outlives_the_list_that_dropped_it() {
    // A list that keeps all it may (1024 items) drops what is appended next; the nodes of
    // dropped tuples are reused at once. A tuple the memo refers to must not be: here (5, 6)
    // is memoized, appended to the full list, then 2000 more tuples are made and dropped, and
    // GET of the memo still gives (5, 6) as the arguments of a call.
    let mut d = b"\x80\x02]q\x00(".to_vec();
    for _ in 0..1100 {
        d.extend_from_slice(b"K\x07\x85");
    }
    d.extend_from_slice(b"e(K\x05K\x06\x86q\x01e(");
    for _ in 0..2000 {
        d.extend_from_slice(b"K\x09\x85");
    }
    d.extend_from_slice(b"e0cbuiltins\nprint\nh\x01R.");
    let r = one(&d);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.calls.len(), 1);
    assert_eq!(r.calls[0].summary, "builtins.print(5, 6)");
    // The same with DUP instead of the memo: the copy left on the stack stays (5, 6).
    let mut d = b"\x80\x02cbuiltins\nprint\n]q\x00(".to_vec();
    for _ in 0..1100 {
        d.extend_from_slice(b"K\x07\x85");
    }
    d.extend_from_slice(b"e(K\x05K\x06\x862e(");
    for _ in 0..2000 {
        d.extend_from_slice(b"K\x09\x85");
    }
    d.extend_from_slice(b"e.");
    let r = general_path(&d, ReadMode::InMemory, &opts());
    let f = one(&d);
    assert_eq!(report_key(&r), report_key(&f));
}

#[test]
fn nodes_kept_inside_containers_survive_collections() {
    // 3000 inner lists each holding a tuple go into an outer list, with 20 dropped tuples
    // made between them (60000 allocations: several collections of the node arena). Every
    // kept inner list still holds its own tuple.
    let mut d = b"\x80\x02]".to_vec();
    for i in 0..3000u32 {
        d.extend_from_slice(b"]M");
        d.extend_from_slice(&(i as u16).to_le_bytes());
        d.extend_from_slice(b"\x85a");
        for _ in 0..20 {
            d.extend_from_slice(b"K\x01\x850");
        }
        d.push(b'a');
    }
    d.push(b'.');
    for r in [one(&d), general_path(&d, ReadMode::InMemory, &opts())] {
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
        let Some(Value::List { items, len }) = &r.result else {
            panic!("list expected")
        };
        assert_eq!((*len, items.len()), (3000, 1024));
        for (i, it) in items.iter().enumerate() {
            let want = Value::List {
                items: vec![Value::Tuple(vec![Value::Int(i as i64)])],
                len: 1,
            };
            assert_eq!(*it, want, "item {i}");
        }
    }
}
