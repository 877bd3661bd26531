import torch
import torch as T
from torch import load


def explicit(path):
    return torch.load(path, weights_only=False)


def missing(path):
    return torch.load(path, map_location="cpu")


def aliased(path):
    a = T.load(path, weights_only=False)
    b = load(path)
    return a, b


def through_variable(path):
    wo = False
    return torch.load(path, weights_only=wo)


def through_kwargs(path):
    kw = {"map_location": "cpu", "weights_only": False}
    opts = dict(weights_only=False)
    return torch.load(path, **kw), torch.load(path, **opts)


def from_parameter(path, weights_only):
    return torch.load(path, weights_only=weights_only)


def dict_changed_later(path, flag):
    extra = {}
    extra["weights_only"] = flag
    return torch.load(path, **extra)
