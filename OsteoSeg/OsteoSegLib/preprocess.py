"""The method's preprocessing, as pure functions on (z, y, x) arrays already on the CT grid.

CT: bone window W1500 / L350, i.e. clip to [-400, 1100] HU, then min-max to [0, 1] (eps 1e-8).
PET: min-max per volume to [0, 1] (the method's choice, the default) or a fixed SUV range (robust
when one very hot organ in the field of view flattens min-max scaled PET).
Axial slices are resized to the training size with pixel-centre alignment, and predictions are
mapped back with the inverse of the same mapping, so nothing shifts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

BONE_WINDOW_HU = (-400.0, 1100.0)   # width 1500, level 350
CHANNEL_ORDER = ("ct", "pet")       # early fusion: channel 0 = CT, channel 1 = PET
PET_NORMALISATIONS = ("minmax", "fixed")


@dataclass(frozen=True)
class PreprocessSettings:
    """Every number preprocessing uses; recorded in each model card."""

    ct_window_hu: tuple[float, float] = BONE_WINDOW_HU
    pet_normalisation: str = "minmax"
    pet_suv_range: tuple[float, float] = (0.0, 10.0)   # used by "fixed"
    size: int = 224
    eps: float = 1e-8

    def as_dict(self) -> dict:
        return asdict(self)


def min_max(volume: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Scale a volume to [0, 1] by its own minimum and maximum (float32)."""
    volume = np.asarray(volume, dtype=np.float32)
    low, high = float(volume.min()), float(volume.max())
    return (volume - np.float32(low)) / np.float32(high - low + eps)


def normalise_ct(ct_hu: np.ndarray, settings: PreprocessSettings = PreprocessSettings()) -> np.ndarray:
    """Bone window, then min-max to [0, 1]."""
    return min_max(np.clip(np.asarray(ct_hu, dtype=np.float32), *settings.ct_window_hu), settings.eps)


def normalise_pet(pet_suv: np.ndarray, settings: PreprocessSettings = PreprocessSettings()) -> np.ndarray:
    """Min-max per volume (default), or a fixed SUV range clipped to [0, 1]."""
    if settings.pet_normalisation == "minmax":
        return min_max(pet_suv, settings.eps)
    if settings.pet_normalisation == "fixed":
        low, high = settings.pet_suv_range
        return np.clip((np.asarray(pet_suv, np.float32) - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
    raise ValueError(f"unknown PET normalisation {settings.pet_normalisation!r}; use one of {PET_NORMALISATIONS}")


def input_channels(ct_hu: np.ndarray | None, pet_suv: np.ndarray | None, inputs: tuple[str, ...],
                   settings: PreprocessSettings = PreprocessSettings()) -> np.ndarray:
    """The network's input volume (z, channels, y, x) for the requested inputs, in CHANNEL_ORDER."""
    volumes = {"ct": (ct_hu, normalise_ct), "pet": (pet_suv, normalise_pet)}
    channels = []
    for name in CHANNEL_ORDER:
        if name in inputs:
            volume, normalise = volumes[name]
            if volume is None:
                raise ValueError(f"input {name!r} was requested but not given")
            channels.append(normalise(volume, settings))
    if not channels:
        raise ValueError(f"no known input among {inputs}; use {CHANNEL_ORDER}")
    return np.stack(channels, axis=1)


def to_training_size(slices: np.ndarray, size: int, *, order: int = 1) -> np.ndarray:
    """Resize the last two axes (y, x) to size x size, pixel centres aligned (align_corners=False)."""
    zoom = (1.0,) * (slices.ndim - 2) + (size / slices.shape[-2], size / slices.shape[-1])
    return ndimage.zoom(slices, zoom, order=order, mode="nearest", grid_mode=True).astype(slices.dtype)


def from_training_size(slices: np.ndarray, shape_yx: tuple[int, int], *, order: int = 1) -> np.ndarray:
    """The exact inverse mapping of `to_training_size`: back to the original (y, x) grid."""
    zoom = (1.0,) * (slices.ndim - 2) + (shape_yx[0] / slices.shape[-2], shape_yx[1] / slices.shape[-1])
    return ndimage.zoom(slices, zoom, order=order, mode="nearest", grid_mode=True).astype(slices.dtype)
