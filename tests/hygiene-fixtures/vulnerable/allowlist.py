# Run with --allow tests/hygiene-fixtures/allow.toml
from transformers import AutoModel

a = AutoModel.from_pretrained("random-user/bert-finetune", revision="0123456789abcdef0123456789abcdef01234567")
b = AutoModel.from_pretrained("acme/fraud-detector", revision="1111111111111111111111111111111111111111")
c = AutoModel.from_pretrained("acrne/fraud-detector", revision="0123456789abcdef0123456789abcdef01234567")
