import json

from safetensors.torch import load_file


def load_all(path):
    with open("meta.json") as f:
        meta = json.load(f)
    return meta, load_file(path)


def own_cache(path):
    import pickle

    with open(path, "rb") as f:
        # The program wrote this file itself; reviewed.
        return pickle.load(f)  # pedigree: ignore[PDG603]


def deep_copy(obj):
    import pickle

    state = pickle.dumps(obj)
    state = state.replace(b"a", b"b")
    return pickle.loads(pickle.dumps(obj)), pickle.loads(state)
