import pickle
import pickle as pk
import dill
import pandas as pd
from joblib import load as jl_load


def load_all(f, data):
    a = pickle.load(f)
    b = pk.loads(data)
    c = dill.load(f)
    d = pd.read_pickle("frame.pkl")
    e = jl_load("model.joblib")
    return a, b, c, d, e
