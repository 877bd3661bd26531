from transformers import AutoModel, AutoTokenizer

COMMIT = "0123456789abcdef0123456789abcdef01234567"

a = AutoModel.from_pretrained("meta-llarna/Llama-3.1-8B", revision=COMMIT)
b = AutoModel.from_pretrained("m\u0435ta-llama/Llama-3.1-8B", revision=COMMIT)
c = AutoTokenizer.from_pretrained("goog1e-bert/bert-base-uncased", revision=COMMIT)
d = AutoModel.from_pretrained("sentence-transformer/all-MiniLM-L6-v2", revision=COMMIT)
