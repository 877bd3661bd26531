"""Reference model_signing library driver (its CLI cannot pick shards/blake3).
ref_tool.py sign MODEL SIG PRIVATE.pem HASH METHOD SHARD_SIZE
ref_tool.py verify MODEL SIG PUBLIC.pem HASH METHOD SHARD_SIZE
"""
import sys
from model_signing import hashing, signing, verifying

op, model, sig, key, alg, method, shard = sys.argv[1:8]
hc = hashing.Config()
if method == "shards":
    hc.use_shard_serialization(hashing_algorithm=alg, shard_size=int(shard))
else:
    hc.use_file_serialization(hashing_algorithm=alg)
hc.set_ignored_paths(paths=[sig], ignore_git_paths=True)
if op == "sign":
    signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(hc).sign(model, sig)
else:
    verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(hc).verify(model, sig)
