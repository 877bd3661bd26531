from transformers import AutoModel, AutoTokenizer

COMMIT = "0123456789abcdef0123456789abcdef01234567"

a = AutoModel.from_pretrained("meta-llama/Llama-3.1-8B", revision=COMMIT)
b = AutoModel.from_pretrained("Qwen/Qwen2.5-3B-Instruct", revision=COMMIT)
c = AutoTokenizer.from_pretrained("google-bert/bert-base-uncased", revision=COMMIT)
d = AutoModel.from_pretrained("sentence-transformers/all-MiniLM-L6-v2", revision=COMMIT)
