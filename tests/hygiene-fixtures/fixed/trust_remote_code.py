from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

REPO = "google-bert/bert-base-uncased"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def load(trust_remote_code=False):
    m = AutoModelForCausalLM.from_pretrained(REPO, revision=COMMIT)
    t = AutoTokenizer.from_pretrained(REPO, revision=COMMIT, trust_remote_code=False)
    kwargs = {"trust_remote_code": False, "revision": COMMIT}
    p = pipeline("text-generation", model=REPO, **kwargs)
    # A pass-through parameter is judged where True would be written, not here.
    q = AutoModelForCausalLM.from_pretrained(REPO, revision=COMMIT, trust_remote_code=trust_remote_code)
    return m, t, p, q
