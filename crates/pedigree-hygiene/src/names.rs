//! Hub repository ids: telling them from local paths, commit revisions, publishers, and
//! typosquats of popular or approved ids (edit distance and confusable characters).

/// Popular Hugging Face Hub model repositories (by downloads and by how often code names them),
/// written down as facts; the typosquat check compares every hub id in the code with these and
/// with the allow-list. An exact (case-insensitive) match is never reported.
pub static POPULAR: &[&str] = &[
    // legacy canonical ids (no publisher) and their current homes
    "bert-base-uncased",
    "bert-base-cased",
    "bert-large-uncased",
    "bert-base-multilingual-cased",
    "distilbert-base-uncased",
    "distilbert-base-cased",
    "distilgpt2",
    "roberta-base",
    "roberta-large",
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "t5-small",
    "t5-base",
    "t5-large",
    "xlm-roberta-base",
    "xlm-roberta-large",
    "albert-base-v2",
    "google-bert/bert-base-uncased",
    "google-bert/bert-base-cased",
    "google-bert/bert-large-uncased",
    "google-bert/bert-base-multilingual-cased",
    "distilbert/distilbert-base-uncased",
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    "distilbert/distilgpt2",
    "FacebookAI/roberta-base",
    "FacebookAI/roberta-large",
    "FacebookAI/xlm-roberta-base",
    "FacebookAI/xlm-roberta-large",
    "openai-community/gpt2",
    "openai-community/gpt2-medium",
    "openai-community/gpt2-large",
    "openai-community/gpt2-xl",
    "google-t5/t5-small",
    "google-t5/t5-base",
    "google-t5/t5-large",
    "albert/albert-base-v2",
    // Meta
    "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-2-7b-chat-hf",
    "meta-llama/Llama-2-13b-hf",
    "meta-llama/Llama-2-70b-hf",
    "meta-llama/Meta-Llama-3-8B",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "meta-llama/Meta-Llama-3-70B-Instruct",
    "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.2-1B",
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "facebook/bart-large",
    "facebook/bart-large-cnn",
    "facebook/bart-large-mnli",
    "facebook/opt-125m",
    "facebook/opt-350m",
    "facebook/opt-1.3b",
    "facebook/wav2vec2-base-960h",
    "facebook/dinov2-base",
    "facebook/detr-resnet-50",
    "facebook/esm2_t33_650M_UR50D",
    "facebook/nllb-200-distilled-600M",
    "facebook/sam-vit-base",
    // Mistral, Qwen, Microsoft, Google, others
    "mistralai/Mistral-7B-v0.1",
    "mistralai/Mistral-7B-Instruct-v0.2",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "Qwen/Qwen2-7B-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct",
    "Qwen/Qwen2.5-Coder-7B-Instruct",
    "Qwen/Qwen3-8B",
    "Qwen/Qwen2-VL-7B-Instruct",
    "microsoft/phi-2",
    "microsoft/Phi-3-mini-4k-instruct",
    "microsoft/Phi-3.5-mini-instruct",
    "microsoft/deberta-v3-base",
    "microsoft/deberta-v3-large",
    "microsoft/resnet-50",
    "microsoft/layoutlmv3-base",
    "microsoft/trocr-base-handwritten",
    "microsoft/DialoGPT-medium",
    "microsoft/codebert-base",
    "google/gemma-2b",
    "google/gemma-7b",
    "google/gemma-2-9b-it",
    "google/gemma-2-2b-it",
    "google/gemma-3-1b-it",
    "google/flan-t5-small",
    "google/flan-t5-base",
    "google/flan-t5-large",
    "google/flan-t5-xl",
    "google/vit-base-patch16-224",
    "google/vit-base-patch16-224-in21k",
    "google/electra-base-discriminator",
    "google/mt5-base",
    "google/siglip-base-patch16-224",
    "openai/clip-vit-base-patch32",
    "openai/clip-vit-large-patch14",
    "openai/whisper-tiny",
    "openai/whisper-base",
    "openai/whisper-small",
    "openai/whisper-medium",
    "openai/whisper-large-v3",
    "tiiuae/falcon-7b",
    "tiiuae/falcon-7b-instruct",
    "bigscience/bloom-560m",
    "bigscience/bloomz-560m",
    "EleutherAI/gpt-neo-125m",
    "EleutherAI/gpt-j-6b",
    "EleutherAI/pythia-70m",
    "deepseek-ai/DeepSeek-R1",
    "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/deepseek-coder-6.7b-instruct",
    "HuggingFaceH4/zephyr-7b-beta",
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "stabilityai/stable-diffusion-xl-base-1.0",
    "stabilityai/stable-diffusion-2-1",
    "runwayml/stable-diffusion-v1-5",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "CompVis/stable-diffusion-v1-4",
    "black-forest-labs/FLUX.1-dev",
    "black-forest-labs/FLUX.1-schnell",
    "Salesforce/blip-image-captioning-base",
    "Salesforce/codet5-base",
    "dslim/bert-base-NER",
    "cardiffnlp/twitter-roberta-base-sentiment-latest",
    "nlptown/bert-base-multilingual-uncased-sentiment",
    "ProsusAI/finbert",
    "emilyalsentzer/Bio_ClinicalBERT",
    "allenai/longformer-base-4096",
    "allenai/scibert_scivocab_uncased",
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
    "timm/resnet50.a1_in1k",
    // embeddings (sentence-transformers)
    "sentence-transformers/all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L12-v2",
    "sentence-transformers/all-mpnet-base-v2",
    "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
    "sentence-transformers/multi-qa-MiniLM-L6-cos-v1",
    "sentence-transformers/paraphrase-MiniLM-L6-v2",
    "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "BAAI/bge-small-en-v1.5",
    "BAAI/bge-base-en-v1.5",
    "BAAI/bge-large-en-v1.5",
    "BAAI/bge-m3",
    "BAAI/bge-reranker-base",
    "intfloat/e5-base-v2",
    "intfloat/multilingual-e5-large",
    "intfloat/multilingual-e5-small",
    "thenlper/gte-base",
    "Alibaba-NLP/gte-large-en-v1.5",
    "nomic-ai/nomic-embed-text-v1.5",
    "jinaai/jina-embeddings-v2-base-en",
    "mixedbread-ai/mxbai-embed-large-v1",
];

/// Extensions that make a string a file, not a repository id.
const FILE_EXTS: &[&str] = &[
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".safetensors",
    ".json",
    ".h5",
    ".hdf5",
    ".keras",
    ".onnx",
    ".pkl",
    ".pickle",
    ".joblib",
    ".gguf",
    ".npy",
    ".npz",
    ".txt",
    ".py",
    ".zip",
    ".gz",
    ".tar",
    ".model",
];

/// A full 40-hex-digit commit id: the only revision that cannot move.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a string is a hub repository id (`name` or `publisher/name`) rather than a local
/// path. Relative (`./x`, `../x`), absolute, home (`~`), Windows and multi-component paths,
/// and file names are paths; anything with characters the hub does not allow is not an id,
/// except letters of other scripts, kept so that homoglyph squats are still checked.
pub fn is_hub_id(s: &str) -> bool {
    if s.is_empty() || s.len() > 200 {
        return false;
    }
    if s.starts_with(['.', '/', '~', '-']) || s.contains("..") || s.ends_with('/') {
        return false;
    }
    if s.matches('/').count() > 1 {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    !FILE_EXTS.iter().any(|e| lower.ends_with(e))
}

/// The publisher (user or organisation) of `publisher/name`; `None` for legacy canonical ids.
pub fn publisher(id: &str) -> Option<&str> {
    id.split_once('/').map(|(p, _)| p)
}

/// Folds characters that look alike, so that `meta-llarna`, `rneta-llama` and `mеta-llama`
/// (Cyrillic е) share a skeleton with `meta-llama`.
pub fn skeleton(s: &str) -> String {
    let mut t = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            'I' | '1' | '|' => 'l',
            '0' => 'o',
            '_' => '-',
            _ => c,
        };
        for l in c.to_lowercase() {
            t.push(match l {
                'а' | 'α' => 'a',
                'в' => 'b',
                'с' | 'ϲ' => 'c',
                'ԁ' => 'd',
                'е' | 'ё' | 'ε' => 'e',
                'ɡ' => 'g',
                'һ' | 'н' => 'h',
                'і' | 'ι' | 'ı' => 'i',
                'ј' => 'j',
                'к' | 'κ' => 'k',
                'ӏ' => 'l',
                'м' => 'm',
                'п' => 'n',
                'о' | 'ο' => 'o',
                'р' | 'ρ' => 'p',
                'ѕ' => 's',
                'т' | 'τ' => 't',
                'υ' => 'u',
                'ν' => 'v',
                'ш' => 'w',
                'х' | 'χ' => 'x',
                'у' | 'γ' => 'y',
                other => other,
            });
        }
    }
    t.replace("rn", "m").replace("vv", "w")
}

/// The two ids differ only in their digits (model sizes, versions): not a typo.
fn digits_only_diff(a: &str, b: &str) -> bool {
    let mask = |s: &str| -> String {
        let mut o = String::new();
        let mut in_digits = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    o.push('#');
                }
                in_digits = true;
            } else {
                o.push(c);
                in_digits = false;
            }
        }
        o
    };
    mask(a) == mask(b)
}

/// What a suspicious id resembles, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Squat {
    pub resembles: String,
    pub how: String,
}

/// Whether `id` looks like a typo or look-alike of a popular or approved (`extra`) id under
/// another publisher. Exact matches (ignoring ASCII case) are never reported, nor variants under
/// the same publisher (only the publisher can create those), nor differences only in digits.
pub fn typosquat<'a>(id: &str, extra: impl Iterator<Item = &'a str> + Clone) -> Option<Squat> {
    let all = || POPULAR.iter().copied().chain(extra.clone());
    if all().any(|c| c.eq_ignore_ascii_case(id)) {
        return None;
    }
    let same_publisher = |c: &str| match (publisher(id), publisher(c)) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    let sk = skeleton(id);
    for c in all() {
        if !same_publisher(c) && skeleton(c) == sk {
            return Some(Squat {
                resembles: c.to_string(),
                how: "look-alike characters".into(),
            });
        }
    }
    let idl = id.to_lowercase();
    let n = idl.chars().count();
    let mut best: Option<(usize, &str)> = None;
    for c in all() {
        if same_publisher(c) {
            continue;
        }
        let cl = c.to_lowercase();
        let m = cl.chars().count();
        if n.abs_diff(m) > 2 || digits_only_diff(&idl, &cl) {
            continue;
        }
        let limit = if m >= 12 { 2 } else { 1 };
        let d = strsim::damerau_levenshtein(&idl, &cl);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(d, c)| Squat {
        resembles: c.to_string(),
        how: format!("edit distance {d}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths() {
        for id in [
            "gpt2",
            "google-bert/bert-base-uncased",
            "Qwen/Qwen2.5-7B-Instruct",
        ] {
            assert!(is_hub_id(id), "{id}");
        }
        for p in [
            "./models/x",
            "/abs/model",
            "~/m",
            "a/b/c",
            "C:\\m",
            "model.safetensors",
            "ckpt/pytorch_model.bin",
            "",
            "{model}",
            "x y",
        ] {
            assert!(!is_hub_id(p), "{p}");
        }
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("main") && !is_commit("v1.0"));
    }

    #[test]
    fn squats() {
        let none = std::iter::empty::<&str>();
        let s = typosquat("meta-llarna/Llama-3.1-8B", none.clone()).expect("rn/m");
        assert_eq!(s.resembles, "meta-llama/Llama-3.1-8B");
        // Cyrillic е in the publisher.
        let s = typosquat("m\u{435}ta-llama/Llama-3.1-8B", none.clone()).expect("homoglyph");
        assert_eq!(s.how, "look-alike characters");
        assert!(
            typosquat("google-bert/bert-base-uncasd", none.clone()).is_none(),
            "same publisher"
        );
        assert!(typosquat("goog1e-bert/bert-base-uncased", none.clone()).is_some());
        assert!(typosquat("sentence-transformer/all-MiniLM-L6-v2", none.clone()).is_some());
        // exact, case-insensitive, digit-only differences, unrelated ids: not reported.
        assert!(typosquat("gpt2", none.clone()).is_none());
        assert!(typosquat("GPT2", none.clone()).is_none());
        assert!(typosquat("Qwen/Qwen2.5-3B-Instruct", none.clone()).is_none());
        assert!(typosquat("acme/sentiment-model", none.clone()).is_none());
        // approved ids are candidates too.
        let extra = ["acme/fraud-detector"];
        assert!(typosquat("acrne/fraud-detector", extra.iter().copied()).is_some());
    }
}
