import math
import os

import torch
from torch import nn


class TinyModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.scale = 1 / math.sqrt(config.hidden_size)
        self.cache = os.path.join(os.path.dirname(__file__), "cache")
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):
        with open(os.path.join(self.cache, "notes.txt")) as f:
            _ = f.read()
        return self.proj(x) * self.scale
