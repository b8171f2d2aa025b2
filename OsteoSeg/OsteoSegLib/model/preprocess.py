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

from ..imaging import BONE_WINDOW_HU

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


@dataclass(frozen=True)
class ChannelScaling:
    """One channel's normalisation as numbers: optional clip, then (x - low) / span, optional clip
    to [0, 1]. Computed once per volume, applied to any slices of it."""

    low: float
    span: float
    clip: tuple[float, float] | None = None
    clip_unit: bool = False

    def apply(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty(np.shape(values), np.float32) if out is None else out
        if self.clip is not None:
            np.clip(values, *self.clip, out=out, casting="unsafe")
        else:
            out[...] = values
        out -= np.float32(self.low)
        out /= np.float32(self.span)
        return np.clip(out, 0.0, 1.0, out=out) if self.clip_unit else out


def min_max_scaling(volume: np.ndarray, eps: float, clip: tuple[float, float] | None = None) -> ChannelScaling:
    """Min-max to [0, 1] by the volume's own extremes (after the clip, if any)."""
    low, high = float(np.min(volume)), float(np.max(volume))
    if clip is not None:
        low, high = (float(np.float32(np.clip(v, *clip))) for v in (low, high))
    return ChannelScaling(low, high - low + eps, clip)


def ct_scaling(ct_hu: np.ndarray, settings: PreprocessSettings = PreprocessSettings()) -> ChannelScaling:
    """Bone window, then min-max to [0, 1]."""
    return min_max_scaling(ct_hu, settings.eps, settings.ct_window_hu)


def pet_scaling(pet_suv: np.ndarray, settings: PreprocessSettings = PreprocessSettings()) -> ChannelScaling:
    """Min-max per volume (default), or a fixed SUV range clipped to [0, 1]."""
    if settings.pet_normalisation == "minmax":
        return min_max_scaling(pet_suv, settings.eps)
    if settings.pet_normalisation == "fixed":
        low, high = settings.pet_suv_range
        return ChannelScaling(low, high - low, clip_unit=True)
    raise ValueError(f"unknown PET normalisation {settings.pet_normalisation!r}; use one of {PET_NORMALISATIONS}")


def min_max(volume: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Scale a volume to [0, 1] by its own minimum and maximum (float32)."""
    return min_max_scaling(volume, eps).apply(volume)


def normalise_ct(ct_hu: np.ndarray, settings: PreprocessSettings = PreprocessSettings()) -> np.ndarray:
    return ct_scaling(ct_hu, settings).apply(ct_hu)


def normalise_pet(pet_suv: np.ndarray, settings: PreprocessSettings = PreprocessSettings()) -> np.ndarray:
    return pet_scaling(pet_suv, settings).apply(pet_suv)


class InputVolume:
    """The network's input (z, channels, y, x) without storing it: `volume[indices]` normalises just
    those slices on demand, so a full-size case never holds a second float32 copy of CT and PET."""

    def __init__(self, ct_hu: np.ndarray | None, pet_suv: np.ndarray | None, inputs: tuple[str, ...],
                 settings: PreprocessSettings = PreprocessSettings()):
        given = {"ct": (ct_hu, ct_scaling), "pet": (pet_suv, pet_scaling)}
        names = [name for name in CHANNEL_ORDER if name in inputs]
        if not names:
            raise ValueError(f"no known input among {inputs}; use {CHANNEL_ORDER}")
        missing = [name for name in names if given[name][0] is None]
        if missing:
            raise ValueError(f"input {missing[0]!r} was requested but not given")
        self.volumes = [given[name][0] for name in names]
        self.scalings = [given[name][1](given[name][0], settings) for name in names]
        first = np.shape(self.volumes[0])
        self.shape = (first[0], len(names), *first[1:])

    def __getitem__(self, indices) -> np.ndarray:
        rows = np.arange(self.shape[0])[indices]
        out = np.empty((len(np.atleast_1d(rows)), *self.shape[1:]), np.float32)
        for channel, (volume, scaling) in enumerate(zip(self.volumes, self.scalings, strict=True)):
            scaling.apply(volume[np.atleast_1d(rows)], out=out[:, channel])
        return out if np.ndim(rows) else out[0]


def input_channels(ct_hu: np.ndarray | None, pet_suv: np.ndarray | None, inputs: tuple[str, ...],
                   settings: PreprocessSettings = PreprocessSettings()) -> np.ndarray:
    """The network's input volume (z, channels, y, x) for the requested inputs, in CHANNEL_ORDER."""
    volume = InputVolume(ct_hu, pet_suv, inputs, settings)
    return volume[:]


def to_training_size(slices: np.ndarray, size: int, *, order: int = 1) -> np.ndarray:
    """Resize the last two axes (y, x) to size x size, pixel centres aligned (align_corners=False)."""
    zoom = (1.0,) * (slices.ndim - 2) + (size / slices.shape[-2], size / slices.shape[-1])
    return ndimage.zoom(slices, zoom, order=order, mode="nearest", grid_mode=True).astype(slices.dtype)


def from_training_size(slices: np.ndarray, shape_yx: tuple[int, int], *, order: int = 1) -> np.ndarray:
    """The exact inverse mapping of `to_training_size`: back to the original (y, x) grid."""
    zoom = (1.0,) * (slices.ndim - 2) + (shape_yx[0] / slices.shape[-2], shape_yx[1] / slices.shape[-1])
    return ndimage.zoom(slices, zoom, order=order, mode="nearest", grid_mode=True).astype(slices.dtype)
