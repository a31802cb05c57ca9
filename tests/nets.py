"""Small hand-built networks shared by the tests."""

import torch
from torch import nn


class SmallNet(nn.Module):
    """conv-relu(in place)-conv-relu-pool-linear, 6 classes; layer '2' is 5 x H x W."""

    def __init__(self, functional_relu: bool = False, relu6: bool = False):
        super().__init__()
        torch.manual_seed(0)
        act = nn.ReLU6 if relu6 else nn.ReLU
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            act(inplace=True),
            nn.Conv2d(4, 5, 3, padding=1),
            act(),
            nn.Conv2d(5, 6, 3, padding=1),
        )
        self.functional_relu = functional_relu
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        if self.functional_relu:
            f = self.features
            x = torch.relu(f[0](x))
            x = f[2](x)
            x.relu_()  # in-place functional call, output discarded
            x = nn.functional.relu(f[4](x))
        else:
            x = torch.relu(self.features(x))
        return self.fc(x.mean(dim=(2, 3)))
