import os
from pathlib import Path

from diffusers import DiffusionPipeline
from huggingface_hub import hf_hub_download, snapshot_download
from sentence_transformers import SentenceTransformer
from transformers import AutoModel as AM
from transformers import pipeline

MODEL_ID = "google-bert/bert-base-uncased"
COMMIT = "86b5e0934494bd15c9632b12f734a8a67f723594"
HOME = "/srv/models"


def pinned():
    a = AM.from_pretrained(MODEL_ID, revision=COMMIT)
    b = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", revision=COMMIT)
    f = hf_hub_download(repo_id="openai/whisper-small", filename="config.json", revision=COMMIT)
    d = snapshot_download("openai/whisper-small", revision=COMMIT)
    q = pipeline("fill-mask", model="distilbert/distilbert-base-uncased", revision=COMMIT)
    return a, b, f, d, q


def local_paths(args, name):
    a = AM.from_pretrained("./models/bert")
    b = AM.from_pretrained("/opt/models/bert")
    c = AM.from_pretrained(os.path.join(HOME, "bert"))
    d = DiffusionPipeline.from_pretrained(Path(HOME) / "sdxl")
    e = AM.from_pretrained("checkpoints/run-1/step-100")
    f = AM.from_pretrained(args.model_name_or_path)
    g = AM.from_pretrained(name)
    return a, b, c, d, e, f, g
