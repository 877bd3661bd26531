import importlib


def load_vocab(path):
    spec = open(path).read()
    return eval(spec)


def helper(name):
    return importlib.import_module(name)
