"""Verify an OMS bundle with the reference model_signing *library*, with an
explicit hashing config (its 1.1.1 CLI always re-hashes with sha256/files,
whatever the bundle records). Usage:
  ref_verify.py MODEL SIG PUBKEY HASH METHOD SHARD_SIZE IGNORE_PATH...
"""
import sys
from model_signing import hashing, verifying

model, sig, pub, alg, method, shard = sys.argv[1:7]
hc = hashing.Config()
if method == "shards":
    hc.use_shard_serialization(hashing_algorithm=alg, shard_size=int(shard))
else:
    hc.use_file_serialization(hashing_algorithm=alg)
hc.set_ignored_paths(paths=sys.argv[7:], ignore_git_paths=True)
verifying.Config().use_elliptic_key_verifier(public_key=pub).set_hashing_config(hc).verify(model, sig)
print("verified")
