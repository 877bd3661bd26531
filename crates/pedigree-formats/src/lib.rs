//! `pedigree-formats`: readers that turn the bytes of model artifacts into typed, bounded views.
//!
//! Nothing here imports or executes anything the bytes name. Every reader has limits that hold
//! whatever the input, returns errors as values, and never panics. Policy (what is dangerous,
//! how severe) lives in `pedigree-scan`; this crate only reports what is there.
//!
//! * [`pickle`]: the pickle opcode reader, disassembler and a symbolic machine that follows
//!   CPython's unpickler semantics (FRAME, memo, marks, imports, calls).
//! * [`container`]: content sniffing and the containers around pickles (PyTorch zip and legacy
//!   formats, numpy `.npy`/`.npz`, joblib with every compressor, zip/tar/7z wrappers), read as
//!   leniently as the real loaders read them, with every oddity reported.

pub mod chat_template;
pub mod container;
#[doc(hidden)]
pub mod fuzz_util;
pub mod gguf;
pub mod hdf5;
pub mod hf_repo;
pub mod keras;
pub mod marshal;
pub mod onnx;
pub mod pickle;
pub mod python;
pub mod safetensors;
pub mod tensorflow;
pub mod tensors;
pub mod views;
