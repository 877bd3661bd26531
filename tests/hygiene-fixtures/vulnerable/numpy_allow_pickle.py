import numpy as np

ALLOW = True


def load(path, flag):
    a = np.load(path, allow_pickle=True)
    b = np.load(path, allow_pickle=ALLOW)
    c = np.load(path, allow_pickle=flag)
    return a, b, c
