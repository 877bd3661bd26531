//! Unit tests for the container readers. Every fixture is built here, by hand or with the
//! compression crates' encoders, except `tests/data/akiki-vad.pt` (a real torch checkpoint).

use std::io::Write;

use super::*;
use crate::pickle::ReadMode;

// ---------------------------------------------------------------- helpers

/// `cos\nsystem\n` + `('id',)` + REDUCE, protocol 2.
const EVIL: &[u8] = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
/// Protocol 0 text pickle with the same call.
const EVIL0: &[u8] = b"cos\nsystem\n(S'id'\ntR.";
/// A benign dict pickle.
const BENIGN: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s.";

fn opts() -> ReadOptions {
    ReadOptions::default()
}

fn read(data: &[u8]) -> Artifact {
    read_bytes("t", data, &opts())
}

fn has_global(a: &Artifact, module: &str, name: &str) -> bool {
    a.walk()
        .iter()
        .flat_map(|x| &x.pickles)
        .flat_map(|p| &p.globals)
        .any(|g| g.module == module && g.name == name)
}

fn all_notes(a: &Artifact) -> Vec<NoteKind> {
    a.walk()
        .iter()
        .flat_map(|x| x.notes.iter().map(|n| n.kind.clone()))
        .collect()
}

#[derive(Clone)]
struct Z {
    name: String,
    data: Vec<u8>,
    method: u16,
    cd_flags: u16,
    lh_flags: u16,
    lh_name: Option<String>,
    crc: Option<u32>,
    ext_attr: u32,
    lh_extra: Vec<u8>,
}

fn z(name: &str, data: &[u8]) -> Z {
    Z {
        name: name.into(),
        data: data.to_vec(),
        method: 0,
        cd_flags: 0,
        lh_flags: 0,
        lh_name: None,
        crc: None,
        ext_attr: 0,
        lh_extra: Vec::new(),
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Writes a zip by hand (so that every oddity can be made): local headers with an optional extra
/// field, central directory, optional ZIP64 records, EOCD; `prepend` goes before it all.
fn zip_bytes(entries: &[Z], prepend: &[u8], zip64: bool) -> Vec<u8> {
    let mut body = Vec::new();
    let mut cd = Vec::new();
    for e in entries {
        let offset = body.len() as u64;
        let comp = if e.method == 8 {
            deflate(&e.data)
        } else {
            e.data.clone()
        };
        let crc = e.crc.unwrap_or_else(|| crc32fast::hash(&e.data));
        let lh_name = e.lh_name.clone().unwrap_or_else(|| e.name.clone());
        body.extend_from_slice(b"PK\x03\x04");
        body.extend_from_slice(&20u16.to_le_bytes());
        body.extend_from_slice(&e.lh_flags.to_le_bytes());
        body.extend_from_slice(&e.method.to_le_bytes());
        body.extend_from_slice(&[0; 4]);
        body.extend_from_slice(&crc.to_le_bytes());
        body.extend_from_slice(&(comp.len() as u32).to_le_bytes());
        body.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        body.extend_from_slice(&(lh_name.len() as u16).to_le_bytes());
        body.extend_from_slice(&(e.lh_extra.len() as u16).to_le_bytes());
        body.extend_from_slice(lh_name.as_bytes());
        body.extend_from_slice(&e.lh_extra);
        body.extend_from_slice(&comp);

        let mut extra = Vec::new();
        let (cs, us, off) = if zip64 {
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&24u16.to_le_bytes());
            extra.extend_from_slice(&(e.data.len() as u64).to_le_bytes());
            extra.extend_from_slice(&(comp.len() as u64).to_le_bytes());
            extra.extend_from_slice(&offset.to_le_bytes());
            (u32::MAX, u32::MAX, u32::MAX)
        } else {
            (comp.len() as u32, e.data.len() as u32, offset as u32)
        };
        cd.extend_from_slice(b"PK\x01\x02");
        cd.extend_from_slice(&(3u16 << 8 | 45).to_le_bytes());
        cd.extend_from_slice(&45u16.to_le_bytes());
        cd.extend_from_slice(&e.cd_flags.to_le_bytes());
        cd.extend_from_slice(&e.method.to_le_bytes());
        cd.extend_from_slice(&[0; 4]);
        cd.extend_from_slice(&crc.to_le_bytes());
        cd.extend_from_slice(&cs.to_le_bytes());
        cd.extend_from_slice(&us.to_le_bytes());
        cd.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes());
        cd.extend_from_slice(&e.ext_attr.to_le_bytes());
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(e.name.as_bytes());
        cd.extend_from_slice(&extra);
    }
    let cd_offset = body.len() as u64;
    body.extend_from_slice(&cd);
    let n = entries.len() as u64;
    if zip64 {
        let rec = body.len() as u64;
        body.extend_from_slice(b"PK\x06\x06");
        body.extend_from_slice(&44u64.to_le_bytes());
        body.extend_from_slice(&45u16.to_le_bytes());
        body.extend_from_slice(&45u16.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&n.to_le_bytes());
        body.extend_from_slice(&n.to_le_bytes());
        body.extend_from_slice(&(cd.len() as u64).to_le_bytes());
        body.extend_from_slice(&cd_offset.to_le_bytes());
        body.extend_from_slice(b"PK\x06\x07");
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&rec.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
    }
    body.extend_from_slice(b"PK\x05\x06");
    body.extend_from_slice(&[0; 4]);
    let n16 = if zip64 { u16::MAX } else { n as u16 };
    body.extend_from_slice(&n16.to_le_bytes());
    body.extend_from_slice(&n16.to_le_bytes());
    let (cs, co) = if zip64 {
        (u32::MAX, u32::MAX)
    } else {
        (cd.len() as u32, cd_offset as u32)
    };
    body.extend_from_slice(&cs.to_le_bytes());
    body.extend_from_slice(&co.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    let mut out = prepend.to_vec();
    out.extend_from_slice(&body);
    out
}

fn torch_zip(pkl: &[u8]) -> Vec<u8> {
    zip_bytes(
        &[
            z("archive/data.pkl", pkl),
            z("archive/.format_version", b"1"),
            z("archive/byteorder", b"little"),
            z("archive/data/0", &[0u8; 64]),
            z("archive/version", b"3\n"),
        ],
        b"",
        false,
    )
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

fn tar_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

// ---------------------------------------------------------------- sniffing

#[test]
fn sniff_by_content() {
    use sniff::{Codec, Sniffed, sniff};
    assert_eq!(
        sniff(&zip_bytes(&[z("a", b"x")], b"", false)),
        Sniffed::Zip { start: 0 }
    );
    assert_eq!(
        sniff(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
        Sniffed::Zip { start: 0 }
    );
    assert_eq!(sniff(b"7z\xBC\xAF\x27\x1C\0\x04"), Sniffed::SevenZip);
    assert_eq!(sniff(&npy("<f4", "(1,)", &[0; 4])), Sniffed::Npy);
    assert_eq!(sniff(&tar_bytes(&[("x", b"y")])), Sniffed::Tar);
    let mut legacy = sniff::TORCH_LEGACY_MAGIC.to_vec();
    legacy.push(b'.');
    assert_eq!(sniff(&legacy), Sniffed::TorchLegacy);
    assert_eq!(sniff(EVIL), Sniffed::Pickle);
    assert_eq!(sniff(EVIL0), Sniffed::Pickle);
    assert_eq!(sniff(b"(lp0\nI1\naI2\na."), Sniffed::Pickle);
    assert_eq!(sniff(&gzip(EVIL)), Sniffed::Compressed(Codec::Gzip));
    assert_eq!(sniff(&bz2(EVIL)), Sniffed::Compressed(Codec::Bzip2));
    assert_eq!(sniff(&xz(EVIL)), Sniffed::Compressed(Codec::Xz));
    assert_eq!(
        sniff(&lzma_alone(EVIL)),
        Sniffed::Compressed(Codec::LzmaAlone)
    );
    assert_eq!(sniff(&lz4(EVIL)), Sniffed::Compressed(Codec::Lz4Frame));
    assert_eq!(sniff(&zlib(EVIL)), Sniffed::Compressed(Codec::Zlib));
    assert_eq!(sniff(&zf(EVIL)), Sniffed::Compressed(Codec::ZlibCompat));
    // Not pickles, not compressed.
    for text in [
        &b"{\"a\": 1}"[..],
        b"[1, 2, 3]",
        b"Note: this is a README file.\n",
        b"x = 1\nprint(x)\n",
        b"hello world",
        b"",
        b"\x80\x09junk",
        b"safetensors-like \x00\x00",
        b"GGUF\x03\x00\x00\x00",
    ] {
        assert_eq!(
            sniff(text),
            Sniffed::Unknown,
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn legacy_magic_bytes_match_cpython() {
    // pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2).hex() == '80028a0a6cfc9c46f9206aa850192e'
    assert_eq!(
        sniff::TORCH_LEGACY_MAGIC,
        &b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"[..]
    );
}

// ---------------------------------------------------------------- compressors

fn gzip(d: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}
fn zlib(d: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}
fn zf(d: &[u8]) -> Vec<u8> {
    let mut out = b"ZF".to_vec();
    out.extend_from_slice(format!("{:<19}", format!("{:#x}", d.len())).as_bytes());
    out.extend_from_slice(&zlib(d));
    out
}
fn bz2(d: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}
fn xz(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::xz_compress(&mut &d[..], &mut out).unwrap();
    out
}
fn lzma_alone(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::lzma_compress(&mut &d[..], &mut out).unwrap();
    out
}
fn lz4(d: &[u8]) -> Vec<u8> {
    let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}

#[test]
fn compressed_streams_are_opened_and_sniffed_again() {
    for (name, data) in [
        ("gzip", gzip(EVIL)),
        ("bz2", bz2(EVIL)),
        ("xz", xz(EVIL)),
        ("lzma", lzma_alone(EVIL)),
        ("lz4", lz4(EVIL)),
        ("zlib", zlib(EVIL)),
        ("zf", zf(EVIL)),
    ] {
        let a = read(&data);
        assert_eq!(a.format, Format::Compressed, "{name}");
        assert_eq!(a.children.len(), 1, "{name}");
        assert_eq!(a.children[0].format, Format::Pickle, "{name}");
        assert!(has_global(&a, "os", "system"), "{name}");
        assert!(a.notes.is_empty(), "{name}: {:?}", a.notes);
    }
}

#[test]
fn gzip_of_tar_of_pickle() {
    let t = tar_bytes(&[("dir/model.pkl", EVIL), ("dir/readme.txt", b"hello")]);
    let a = read(&gzip(&t));
    assert_eq!(a.format, Format::Compressed);
    let tar = &a.children[0];
    assert_eq!(tar.format, Format::Tar);
    assert_eq!(tar.children.len(), 2);
    assert_eq!(
        tar.children[0].location,
        vec!["t", "<gzip>", "dir/model.pkl"]
    );
    assert_eq!(tar.children[0].format, Format::Pickle);
    assert_eq!(tar.children[1].format, Format::Unknown);
    assert!(has_global(&a, "os", "system"));
}

#[test]
fn decompression_bomb_stops_with_a_note() {
    // A pickle whose BINBYTES8 holds 8 MiB of zeros: ratio far over 200:1.
    let mut p = b"\x80\x04\x8e".to_vec();
    p.extend_from_slice(&(8u64 << 20).to_le_bytes());
    p.resize(p.len() + (8 << 20), 0);
    p.push(b'.');
    let a = read(&gzip(&p));
    assert!(
        all_notes(&a)
            .iter()
            .any(|n| matches!(n, NoteKind::DecompressionBomb { .. })),
        "{:?}",
        a.notes
    );
    // Size cap.
    let mut o = opts();
    o.limits.max_member_size = 1 << 20;
    o.limits.max_ratio = u64::MAX;
    let a = read_bytes("t", &bz2(&p), &o);
    assert!(
        all_notes(&a)
            .iter()
            .any(|n| matches!(n, NoteKind::DecompressionBomb { .. }))
    );
    assert!(a.children[0].size <= 1 << 20);
    // A zip member whose declared sizes make it a bomb: noted even though zeros are never inflated.
    let mut e = z("zeros.bin", &vec![0u8; 4 << 20]);
    e.method = 8;
    let a = read(&zip_bytes(&[e], b"", false));
    assert!(
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::DecompressionBomb { .. })),
        "{:?}",
        a.notes
    );
    assert_eq!(a.children[0].format, Format::Unknown);
}

#[test]
fn corrupt_stream_is_malformed_not_a_panic() {
    let mut g = gzip(EVIL);
    let n = g.len();
    g.truncate(n - 12);
    let a = read(&g);
    assert_eq!(a.format, Format::Compressed);
    assert!(
        all_notes(&a)
            .iter()
            .any(|n| matches!(n, NoteKind::Malformed { .. }))
    );
}

// ---------------------------------------------------------------- zip

#[test]
fn generic_zip_members_are_sniffed() {
    let mut d = z("inner/x.bin", EVIL);
    d.method = 8;
    let data = zip_bytes(&[d, z("readme.md", b"# hello"), z("dir/", b"")], b"", false);
    let a = read(&data);
    assert_eq!(a.format, Format::Zip);
    assert!(a.notes.is_empty(), "{:?}", a.notes);
    assert_eq!(a.children.len(), 2);
    assert_eq!(a.children[0].location, vec!["t", "inner/x.bin"]);
    assert_eq!(a.children[0].format, Format::Pickle);
    assert!(has_global(&a, "os", "system"));
}

#[test]
fn torch_zip_reads_only_pickle_records() {
    let a = read(&torch_zip(EVIL));
    assert_eq!(a.format, Format::TorchZip);
    assert!(a.notes.is_empty(), "{:?}", a.notes);
    assert_eq!(a.children.len(), 1);
    let c = &a.children[0];
    assert_eq!(c.location, vec!["t", "archive/data.pkl"]);
    assert_eq!(c.pickles[0].mode, ReadMode::FileNoPeek);
    assert!(has_global(&a, "os", "system"));
}

#[test]
fn torchscript_reads_every_pkl() {
    let data = zip_bytes(
        &[
            z("m/data.pkl", BENIGN),
            z("m/constants.pkl", EVIL),
            z("m/code/__torch__.py", b"def f(): pass"),
            z("m/code/__torch__.py.debug_pkl", BENIGN),
            z("m/version", b"3\n"),
        ],
        b"",
        false,
    );
    let a = read(&data);
    assert_eq!(a.format, Format::TorchScript);
    let names: Vec<&str> = a.children.iter().map(|c| c.location[1].as_str()).collect();
    assert_eq!(
        names,
        [
            "m/data.pkl",
            "m/constants.pkl",
            "m/code/__torch__.py.debug_pkl"
        ]
    );
    assert!(has_global(&a, "os", "system"));
}

#[test]
fn zip_bad_crc_is_noted_and_still_scanned() {
    let mut e = z("archive/data.pkl", EVIL);
    e.crc = Some(0xDEADBEEF);
    let data = zip_bytes(&[e, z("archive/version", b"3\n")], b"", false);
    let a = read(&data);
    assert_eq!(a.format, Format::TorchZip);
    assert!(
        matches!(
            &a.notes[..],
            [Note {
                kind: NoteKind::ZipBadCrc { .. },
                ..
            }]
        ),
        "{:?}",
        a.notes
    );
    assert!(has_global(&a, "os", "system"));
}

#[test]
fn zip_encryption_flags_where_they_are() {
    for (cd, lh) in [(1u16, 0u16), (0, 1), (0x20, 0x20), (0x40, 0)] {
        let mut e = z("archive/data.pkl", EVIL);
        e.cd_flags = cd;
        e.lh_flags = lh;
        let a = read(&zip_bytes(&[e], b"", false));
        let flag = a.notes.iter().find_map(|n| match &n.kind {
            NoteKind::ZipEncryptionFlag {
                in_central,
                in_local,
                ..
            } => Some((*in_central, *in_local)),
            _ => None,
        });
        assert_eq!(flag, Some((cd != 0, lh != 0)));
        // The data is not really encrypted: it is read and scanned.
        assert!(
            !all_notes(&a)
                .iter()
                .any(|n| matches!(n, NoteKind::EncryptedMember { .. }))
        );
        assert!(has_global(&a, "os", "system"));
    }
}

#[test]
fn really_encrypted_member() {
    let mut e = z(
        "secret.bin",
        &[
            0x5Au8, 0x13, 0xF7, 0x01, 0x99, 0x42, 0x00, 0x7E, 0xEE, 0x10, 0x20, 0x30,
        ],
    );
    e.cd_flags = 1;
    e.lh_flags = 1;
    e.crc = Some(1);
    let a = read(&zip_bytes(&[e], b"", false));
    assert!(
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::EncryptedMember { .. })),
        "{:?}",
        a.notes
    );
    assert!(a.children.is_empty());
    // Deflate flagged member whose bytes do not inflate.
    let mut e = z("secret.pkl", b"");
    e.method = 8;
    e.cd_flags = 1;
    let mut data = zip_bytes(&[e], b"", false);
    // Replace the (empty) deflate body with garbage of the same length.
    let body = 30 + "secret.pkl".len();
    data[body] = 0xFF;
    let a = read(&data);
    assert!(
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::EncryptedMember { .. })),
        "{:?}",
        a.notes
    );
}

#[test]
fn zip_name_mismatch_and_duplicates() {
    let mut e = z("archive/data.pkl", BENIGN);
    e.lh_name = Some("archive/other.pkl".into());
    let a = read(&zip_bytes(&[e], b"", false));
    assert!(a.notes.iter().any(|n| matches!(&n.kind,
        NoteKind::ZipNameMismatch { central, local } if central == "archive/data.pkl" && local == "archive/other.pkl")));

    let data = zip_bytes(
        &[z("archive/data.pkl", BENIGN), z("archive/data.pkl", EVIL)],
        b"",
        false,
    );
    let a = read(&data);
    assert_eq!(a.format, Format::TorchZip);
    assert!(a.notes.iter().any(
        |n| matches!(&n.kind, NoteKind::ZipDuplicateName { member } if member == "archive/data.pkl")
    ));
    assert_eq!(a.children.len(), 2, "both entries are scanned");
    assert!(has_global(&a, "os", "system"));
}

#[test]
fn zip_prepended_data() {
    let data = zip_bytes(&[z("archive/data.pkl", BENIGN)], EVIL, false);
    let a = read(&data);
    assert_eq!(a.format, Format::TorchZip);
    assert!(a.notes.iter().any(
        |n| matches!(n.kind, NoteKind::ZipPrependedData { bytes } if bytes == EVIL.len() as u64)
    ));
    // What torch.load would unpickle instead: the file from byte 0.
    let pre = a
        .children
        .iter()
        .find(|c| c.location[1] == "<bytes before the zip>")
        .unwrap();
    assert_eq!(pre.format, Format::Pickle);
    assert!(has_global(pre, "os", "system"));
    // And the archive is still read.
    assert!(
        a.children
            .iter()
            .any(|c| c.location[1] == "archive/data.pkl")
    );
    // Junk (not a pickle) before a zip: noted, nothing else.
    let data = zip_bytes(&[z("a.txt", b"hi")], b"MZ\x90\x00 junk junk", false);
    let a = read(&data);
    assert_eq!(a.format, Format::Zip);
    assert!(
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::ZipPrependedData { .. }))
    );
}

#[test]
fn zip64_records_and_lh_extra() {
    let mut e = z("archive/data.pkl", EVIL);
    e.lh_extra = b"FB\x06\x00ZZZZZZ".to_vec();
    let data = zip_bytes(&[e, z("archive/version", b"3\n")], b"", true);
    let a = read(&data);
    assert_eq!(a.format, Format::TorchZip);
    assert!(a.notes.is_empty(), "{:?}", a.notes);
    assert!(has_global(&a, "os", "system"));
    // ZIP64 with prepended bytes too.
    let a = read(&zip_bytes(&[z("x.pkl", EVIL)], b"garbage!", true));
    assert!(
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::ZipPrependedData { bytes: 8 }))
    );
    assert!(has_global(&a, "os", "system"));
}

#[test]
fn zip_unsafe_paths_and_member_limit() {
    let mut link = z("link", b"/etc/passwd");
    link.ext_attr = 0o120777 << 16;
    let data = zip_bytes(
        &[z("../evil.pkl", EVIL), z("/abs.txt", b"x"), link],
        b"",
        false,
    );
    let a = read(&data);
    let n = a
        .notes
        .iter()
        .filter(|n| matches!(n.kind, NoteKind::UnsafeMemberPath { .. }))
        .count();
    assert_eq!(n, 3, "{:?}", a.notes);

    let mut o = opts();
    o.limits.max_members = 2;
    let data = zip_bytes(&[z("a", b"1"), z("b", b"2"), z("c", b"3")], b"", false);
    let a = read_bytes("t", &data, &o);
    assert!(
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::TooManyMembers { limit: 2 }))
    );
    assert_eq!(a.children.len(), 2);
}

#[test]
fn nesting_limit() {
    let inner = zip_bytes(&[z("evil.pkl", EVIL)], b"", false);
    let middle = zip_bytes(&[z("inner.zip", &inner)], b"", false);
    let outer = zip_bytes(&[z("middle.zip", &middle)], b"", false);
    let a = read(&outer);
    assert!(has_global(&a, "os", "system"));
    assert_eq!(
        a.children[0].children[0].children[0].location,
        vec!["t", "middle.zip", "inner.zip", "evil.pkl"]
    );
    let mut o = opts();
    o.limits.max_depth = 2;
    let a = read_bytes("t", &outer, &o);
    assert!(!has_global(&a, "os", "system"));
    assert!(
        all_notes(&a)
            .iter()
            .any(|n| matches!(n, NoteKind::NestingTooDeep { member } if member == "evil.pkl"))
    );
}

#[test]
fn truncated_and_garbage_zips() {
    let data = zip_bytes(&[z("archive/data.pkl", EVIL)], b"", false);
    for cut in [10, 40, data.len() / 2, data.len() - 1] {
        let a = read(&data[..cut]);
        assert_eq!(a.format, Format::Zip);
    }
    let a = read(&data[..data.len() - 1]);
    assert!(
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::Malformed { .. }))
    );
}

// ---------------------------------------------------------------- numpy

#[test]
fn npy_raw_and_object() {
    let a = read(&npy("<f4", "(2, 3)", &[0u8; 24]));
    assert_eq!(a.format, Format::Npy);
    assert!(a.pickles.is_empty() && a.notes.is_empty(), "{:?}", a.notes);

    let short = read(&npy("<f4", "(2, 3)", &[0u8; 8]));
    assert!(
        short
            .notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::Malformed { .. }))
    );

    let a = read(&npy("|O", "(1,)", EVIL));
    assert_eq!(a.format, Format::Npy);
    assert_eq!(a.pickles.len(), 1);
    assert_eq!(a.pickles[0].mode, ReadMode::FileNoPeek);
    assert_eq!(a.pickles[0].start, 128);
    assert!(has_global(&a, "os", "system"));

    // Structured dtype with an object field.
    let mut h = "{'descr': [('a', '<i4'), ('b', '|O')], 'fortran_order': False, 'shape': (1,), }"
        .to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut d = b"\x93NUMPY\x01\x00".to_vec();
    d.extend_from_slice(&(h.len() as u16).to_le_bytes());
    d.extend_from_slice(h.as_bytes());
    d.extend_from_slice(EVIL);
    assert!(has_global(&read(&d), "os", "system"));

    let mut bad = npy("<f4", "(1,)", &[0; 4]);
    bad[6] = 9;
    assert!(
        read(&bad)
            .notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::Malformed { .. }))
    );
}

#[test]
fn npz_members_decided_by_magic() {
    let mut big = z("w.npy", &npy("<f8", "(4096,)", &vec![0u8; 4096 * 8]));
    big.method = 8;
    let data = zip_bytes(&[z("a.npy", &npy("<i8", "(1,)", &[0; 8])), big], b"", false);
    let a = read(&data);
    assert_eq!(a.format, Format::Npz);
    assert!(a.children.iter().all(|c| c.format == Format::Npy));
    assert!(all_notes(&a).is_empty(), "{:?}", all_notes(&a));
    // A pickle member inside an npz: numpy returns raw bytes, we still analyse it.
    let data = zip_bytes(
        &[z("a.npy", &npy("<i8", "(1,)", &[0; 8])), z("b.npy", EVIL)],
        b"",
        false,
    );
    let a = read(&data);
    assert_eq!(a.format, Format::Npz);
    assert!(has_global(&a, "os", "system"));
}

// ---------------------------------------------------------------- joblib

#[test]
fn joblib_pickle_detected_and_read_pure_python_too() {
    // PROTO 4, STACK_GLOBAL joblib.numpy_pickle NumpyArrayWrapper, EMPTY_TUPLE, NEWOBJ, STOP.
    let mut p = b"\x80\x04".to_vec();
    for s in ["joblib.numpy_pickle", "NumpyArrayWrapper"] {
        p.push(0x8c);
        p.push(s.len() as u8);
        p.extend_from_slice(s.as_bytes());
    }
    p.extend_from_slice(b"\x93)\x81.");
    let a = read(&p);
    assert_eq!(a.format, Format::Joblib);
    assert!(a.pickles.iter().any(|r| r.mode == ReadMode::PurePython));
    assert!(a.pickles.iter().any(|r| r.mode == ReadMode::InMemory));
    // Compressed joblib.
    let a = read(&zlib(&p));
    assert_eq!(a.children[0].format, Format::Joblib);
}

#[test]
fn plain_pickle_modes_and_text() {
    let a = read(EVIL0);
    assert_eq!(a.format, Format::Pickle);
    assert!(has_global(&a, "os", "system"));
    assert_eq!(a.pickles[0].mode, ReadMode::InMemory);
    assert_eq!(read(b"{\"not\": \"a pickle\"}").format, Format::Unknown);
}

// ---------------------------------------------------------------- legacy torch

fn legacy_stream() -> Vec<u8> {
    let mut d = sniff::TORCH_LEGACY_MAGIC.to_vec();
    d.push(b'.');
    d.extend_from_slice(b"\x80\x02M\xe9\x03.");
    d.extend_from_slice(b"\x80\x02}q\x00X\x0d\x00\x00\x00little_endianq\x01\x88s.");
    d.extend_from_slice(EVIL);
    d.extend_from_slice(b"\x80\x02]q\x00X\x01\x00\x00\x000q\x01a.");
    d.extend_from_slice(&2i64.to_le_bytes());
    d.extend_from_slice(&[0u8; 8]);
    d
}

#[test]
fn legacy_torch_stream_five_pickles() {
    let a = read(&legacy_stream());
    assert_eq!(a.format, Format::TorchLegacy);
    assert_eq!(a.pickles.len(), 5);
    assert!(a.pickles.iter().all(|p| p.end.is_some()));
    assert_eq!(a.pickles[1].start, 15);
    assert!(
        matches!(
            &a.notes[..],
            [Note {
                kind: NoteKind::LegacyTorch,
                ..
            }]
        ),
        "{:?}",
        a.notes
    );
    assert!(has_global(&a, "os", "system"));
    // Broken in the middle: note and stop.
    let d = legacy_stream();
    let a = read(&d[..40]);
    assert!(
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::Malformed { .. }))
    );
}

#[test]
fn legacy_torch_tar() {
    let mut storages = b"\x80\x02K\x01.".to_vec();
    storages.extend_from_slice(
        b"\x80\x02X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\n\x87.",
    );
    storages.extend_from_slice(&2i64.to_le_bytes());
    storages.extend_from_slice(&[0u8; 8]);
    storages.extend_from_slice(b"\x80\x02].");
    let mut tensors = b"\x80\x02K\x01.".to_vec();
    tensors.extend_from_slice(
        b"\x80\x02X\x01\x00\x00\x000X\x01\x00\x00\x000ctorch\nFloatTensor\n\x87.",
    );
    tensors.extend_from_slice(&1i32.to_le_bytes());
    tensors.extend_from_slice(&[0u8; 4]);
    for v in [2i64, 1, 0] {
        tensors.extend_from_slice(&v.to_le_bytes());
    }
    let t = tar_bytes(&[
        ("sys_info", BENIGN),
        ("pickle", EVIL),
        ("storages", &storages),
        ("tensors", &tensors),
    ]);
    let a = read(&t);
    assert_eq!(a.format, Format::TorchLegacyTar);
    assert!(has_global(&a, "os", "system"));
    let st = a
        .children
        .iter()
        .find(|c| c.location[1] == "storages")
        .unwrap();
    assert_eq!(st.pickles.len(), 3, "{:?}", st.notes);
    assert!(st.notes.is_empty(), "{:?}", st.notes);
    let te = a
        .children
        .iter()
        .find(|c| c.location[1] == "tensors")
        .unwrap();
    assert_eq!(te.pickles.len(), 2);
    assert!(te.notes.is_empty(), "{:?}", te.notes);
    // Unknown storage type: noted, stops.
    let at = storages.windows(5).position(|w| w == b"Float").unwrap();
    let mut bad = storages.clone();
    bad[at..at + 5].copy_from_slice(b"Weird");
    let t = tar_bytes(&[("pickle", BENIGN), ("storages", &bad)]);
    let a = read(&t);
    let st = a
        .children
        .iter()
        .find(|c| c.location[1] == "storages")
        .unwrap();
    assert!(
        st.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::Malformed { .. }))
    );
}

// ---------------------------------------------------------------- 7z

#[test]
fn seven_zip_members() {
    use sevenz_rust2::{ArchiveEntry, ArchiveWriter};
    let mut w = ArchiveWriter::new(std::io::Cursor::new(Vec::new())).unwrap();
    w.push_archive_entry(ArchiveEntry::new_file("model/evil.pkl"), Some(EVIL))
        .unwrap();
    w.push_archive_entry(ArchiveEntry::new_file("notes.txt"), Some(&b"hello"[..]))
        .unwrap();
    let data = w.finish().unwrap().into_inner();
    let a = read(&data);
    assert_eq!(a.format, Format::SevenZip);
    assert!(a.notes.is_empty(), "{:?}", a.notes);
    assert_eq!(a.children.len(), 2);
    assert!(has_global(&a, "os", "system"));
    assert!(
        a.children
            .iter()
            .any(|c| c.location == vec!["t", "model/evil.pkl"])
    );
    // Truncated.
    let a = read(&data[..data.len() / 2]);
    assert_eq!(a.format, Format::SevenZip);
}

// ---------------------------------------------------------------- files

#[test]
fn read_path_and_extension_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let mismatch = |a: &Artifact| {
        a.notes
            .iter()
            .any(|n| matches!(n.kind, NoteKind::ExtensionMismatch { .. }))
    };
    let o = opts();
    assert!(mismatch(&read_path(&w("a.npy", EVIL), &o).unwrap()));
    assert!(!mismatch(&read_path(&w("a.pt", EVIL), &o).unwrap()));
    assert!(!mismatch(&read_path(&w("a.bin", EVIL), &o).unwrap()));
    assert!(!mismatch(
        &read_path(&w("b.pt", &torch_zip(BENIGN)), &o).unwrap()
    ));
    assert!(mismatch(
        &read_path(&w("a.safetensors", &torch_zip(BENIGN)), &o).unwrap()
    ));
    assert!(mismatch(&read_path(&w("a.json", EVIL), &o).unwrap()));
    assert!(mismatch(&read_path(&w("a.zip", EVIL), &o).unwrap()));
    assert!(mismatch(
        &read_path(&w("a.pkl", b"just some text\n"), &o).unwrap()
    ));
    assert!(!mismatch(
        &read_path(&w("a.joblib", &gzip(EVIL)), &o).unwrap()
    ));
    assert!(!mismatch(&read_path(&w("a.pkl", EVIL), &o).unwrap()));
    // Memory-mapped path (forced by a zero in-memory limit) gives the same result.
    let mut o2 = opts();
    o2.limits.max_file_size_in_memory = 0;
    let a = read_path(&w("c.pt", &torch_zip(EVIL)), &o2).unwrap();
    assert_eq!(a.format, Format::TorchZip);
    assert!(has_global(&a, "os", "system"));
    // Errors name the file.
    let err = read_path(&dir.path().join("missing.pt"), &o).unwrap_err();
    assert!(err.to_string().contains("missing.pt"));
    assert!(matches!(
        read_path(dir.path(), &o),
        Err(ReadError::NotAFile { .. })
    ));
}

#[test]
fn real_torch_checkpoint_akiki_vad() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/akiki-vad.pt");
    let a = read_path(&p, &opts()).unwrap();
    assert_eq!(a.format, Format::TorchZip);
    assert!(all_notes(&a).is_empty(), "{:?}", all_notes(&a));
    assert_eq!(a.children.len(), 1);
    let c = &a.children[0];
    assert!(c.location[1].ends_with("/data.pkl"));
    assert!(!c.pickles.is_empty());
    assert!(c.pickles[0].end.is_some());
    assert!(has_global(&a, "torch._utils", "_rebuild_tensor_v2"));
}

// ---------------------------------------------------------------- robustness

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn mutated_and_random_inputs_never_panic() {
    let seeds: Vec<Vec<u8>> = vec![
        torch_zip(EVIL),
        zip_bytes(
            &[z("a.pkl", EVIL), z("b/c.npy", &npy("|O", "(1,)", BENIGN))],
            b"",
            true,
        ),
        zip_bytes(&[z("x", b"y")], EVIL, false),
        gzip(&tar_bytes(&[
            ("pickle", EVIL),
            ("storages", b"\x80\x02K\x01."),
        ])),
        bz2(EVIL),
        xz(BENIGN),
        lzma_alone(EVIL),
        lz4(EVIL0),
        zf(EVIL),
        npy("<f4", "(2,)", &[0; 8]),
        legacy_stream(),
        EVIL.to_vec(),
        EVIL0.to_vec(),
    ];
    let mut o = opts();
    o.limits.max_member_size = 1 << 20;
    o.limits.max_total_decompressed = 4 << 20;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..3000u64 {
        let mut d = if i % 10 == 9 {
            let len = (rng.next() % 600) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            seeds[(rng.next() % seeds.len() as u64) as usize].clone()
        };
        let edits = 1 + rng.next() % 6;
        for _ in 0..edits {
            if d.is_empty() {
                break;
            }
            let at = (rng.next() % d.len() as u64) as usize;
            match rng.next() % 4 {
                0 => d[at] = rng.next() as u8,
                1 => d[at] ^= 1 << (rng.next() % 8),
                2 => d.truncate(at),
                _ => {
                    // Plant a boundary value (sizes and offsets).
                    let v = [0u32, 1, 0x7FFF_FFFF, 0xFFFF_FFFF, 0xFFFF][(rng.next() % 5) as usize];
                    for (k, b) in v.to_le_bytes().iter().enumerate() {
                        if let Some(x) = d.get_mut(at + k) {
                            *x = *b;
                        }
                    }
                }
            }
        }
        let _ = read_bytes("fuzz", &d, &o);
    }
}
