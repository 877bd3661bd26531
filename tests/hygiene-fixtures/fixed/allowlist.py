# Run with --allow tests/hygiene-fixtures/allow.toml
from transformers import AutoModel

a = AutoModel.from_pretrained("google-bert/bert-base-uncased", revision="0123456789abcdef0123456789abcdef01234567")
b = AutoModel.from_pretrained("acme/fraud-detector", revision="abcdefabcdefabcdefabcdefabcdefabcdefabcd")
c = AutoModel.from_pretrained("distilbert/distilbert-base-uncased", revision="0123456789abcdef0123456789abcdef01234567")
