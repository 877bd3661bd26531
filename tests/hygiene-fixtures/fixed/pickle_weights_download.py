from huggingface_hub import hf_hub_download
from transformers import AutoModel

COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS = "model.safetensors"

a = hf_hub_download("google-bert/bert-base-uncased", "model.safetensors", revision=COMMIT)
b = hf_hub_download("google-bert/bert-base-uncased", filename=WEIGHTS, revision=COMMIT)
c = AutoModel.from_pretrained("google-bert/bert-base-uncased", revision=COMMIT)
