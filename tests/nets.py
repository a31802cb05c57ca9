"""Small hand-built networks shared by the tests."""

import time

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


class TwoStageNet(nn.Module):
    """Two stages (8 x 8 then 4 x 4 for 8 x 8 inputs), global average pooling, a linear head.

    ``features.1`` (after the first ReLU) and ``features.3`` end the stages.
    With ``linear_top=True`` the second stage is a plain convolution after an
    average pool, so its output is linear in the first stage's.
    """

    def __init__(self, linear_top: bool = False, classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        layers = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 5, 3, padding=1)]
        if not linear_top:
            layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class ResidualNet(nn.Module):
    """A stem and one residual block, 6 classes: the stem's output skips around ``conv1`` and ``conv2``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


class BatchNormNet(nn.Module):
    """Two stages with a BatchNorm, 6 classes; with ``hold`` each forward pass takes that many seconds
    longer, so calls from two threads overlap unless one waits for the other."""

    def __init__(self, hold: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 6, 3, padding=1))
        self.fc = nn.Linear(6, 6)
        self.hold = hold

    def forward(self, x):
        time.sleep(self.hold)
        return self.fc(torch.relu(self.features(x)).mean((2, 3)))
