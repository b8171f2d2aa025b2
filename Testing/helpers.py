"""Builders several test modules share: small images with known content, model packages and
networks with known behaviour, a progress recorder."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from OsteoSegLib.model.network import Architecture, build_network
from OsteoSegLib.model.package import ModelPackage, save_model_package
from OsteoSegLib.model.preprocess import PreprocessSettings
from OsteoSegLib.progress import Progress


def random_model(width=4, seed=0) -> ModelPackage:
    torch.manual_seed(seed)
    network = build_network(Architecture(2, width))
    torch.nn.init.zeros_(network.head.bias)              # masks neither empty nor full
    for module in network.modules():                     # BatchNorm statistics as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return ModelPackage(network.eval(), {"name": f"random-{seed}", "inputs": ["ct", "pet"]}, None)


class ThresholdNetwork(torch.nn.Module):
    """Logits that reproduce channel 0 thresholded at 0.5: an identity-like path through inference."""

    def forward(self, x):
        return 40.0 * (x[:, :1] - 0.5)


def identity_model(name: str, source: str, inputs=("ct",)) -> ModelPackage:
    card = {"name": name, "label_source": source, "inputs": list(inputs), "threshold": 0.5,
            "preprocessing": PreprocessSettings(size=224).as_dict(), "weights_sha256": "0" * 64,
            "versions": {"osteoseg": "test"}}
    return ModelPackage(ThresholdNetwork(), card, None)


def oblique_ct_with_mask():
    """An oblique, anisotropic CT of 37 x 53 x 7 voxels (not 224-divisible) holding a known mask."""
    mask = np.zeros((7, 53, 37), np.uint8)
    mask[2:5, 10:30, 8:21] = 1
    mask[3, 35:45, 25:33] = 1
    ct = sitk.GetImageFromArray(np.where(mask > 0, 1100.0, -400.0).astype(np.float32))
    ct.SetSpacing((0.9, 1.3, 3.0))
    ct.SetOrigin((-20.0, 15.0, 7.5))
    rotation = sitk.Euler3DTransform((0, 0, 0), 0.2, -0.1, 0.3)
    ct.SetDirection(rotation.GetMatrix())
    return ct, mask


def write_package(folder, source, inputs=("ct", "pet"), size=48, seed=0):
    torch.manual_seed(seed)
    network = build_network(Architecture(len(inputs), 4))
    card = {"name": f"model-{source}", "label_source": source, "inputs": list(inputs), "threshold": 0.5,
            "preprocessing": PreprocessSettings(size=size).as_dict(),
            "architecture": Architecture(len(inputs), 4).as_dict(),
            "versions": {"osteoseg": "test"}}
    return save_model_package(folder / f"model-{source}", network.state_dict(), card)


class Messages(Progress):
    def __init__(self):
        self.texts = []

    def message(self, text):
        self.texts.append(text)


def write(array, path, spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path.name
