import torch
import torch as T
from torch import load


def explicit(path):
    return torch.load(path, weights_only=True)


def aliased(path):
    a = T.load(path, weights_only=True)
    b = load(path, weights_only=True)
    return a, b


def through_variable(path):
    wo = True
    return torch.load(path, weights_only=wo)


def through_kwargs(path):
    kw = {"map_location": "cpu", "weights_only": True}
    return torch.load(path, **kw)


def shadowed(path):
    # A local function named `load` is not torch.load.
    def load(p):
        return p

    return load(path)
