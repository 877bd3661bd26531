from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

REPO = "google-bert/bert-base-uncased"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def load():
    m = AutoModelForCausalLM.from_pretrained(REPO, revision=COMMIT, trust_remote_code=True)
    trc = True
    t = AutoTokenizer.from_pretrained(REPO, revision=COMMIT, trust_remote_code=trc)
    kwargs = {"trust_remote_code": True, "revision": COMMIT}
    p = pipeline("text-generation", model=REPO, **kwargs)
    return m, t, p
