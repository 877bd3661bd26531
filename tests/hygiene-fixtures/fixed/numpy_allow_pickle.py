import numpy as np

ALLOW = False


def load(path):
    a = np.load(path)
    b = np.load(path, allow_pickle=False)
    c = np.load(path, allow_pickle=ALLOW)
    return a, b, c
