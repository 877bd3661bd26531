from diffusers import DiffusionPipeline
from huggingface_hub import hf_hub_download, snapshot_download
from sentence_transformers import SentenceTransformer
from transformers import AutoModel as AM
from transformers import pipeline

MODEL_ID = "google-bert/bert-base-uncased"


def no_revision():
    return AM.from_pretrained(MODEL_ID)


def branch_and_tag():
    a = AM.from_pretrained("google-bert/bert-base-uncased", revision="main")
    b = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", revision="v1.0")
    return a, b


def other_entry_points(rev):
    local_id = "stabilityai/stable-diffusion-xl-base-1.0"
    p = DiffusionPipeline.from_pretrained(local_id)
    f = hf_hub_download(repo_id="openai/whisper-small", filename="config.json")
    d = snapshot_download("openai/whisper-small", revision=rev)
    q = pipeline("fill-mask", model="distilbert/distilbert-base-uncased")
    return p, f, d, q
