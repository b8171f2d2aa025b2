"""Whole-volume prediction: every axial slice through one or several networks, back on the CT grid.

Slices are resized to the network's size and back on the compute device with bilinear
interpolation at pixel centres (align_corners=False), which is the same mapping as
`preprocess.to_training_size` / `from_training_size` (edge values extended).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch.nn import functional

from .progress import CancelledError, Progress


def resize_slices(batch: torch.Tensor, shape_yx: tuple[int, int]) -> torch.Tensor:
    """(N, C, y, x) -> (N, C, *shape_yx), bilinear at pixel centres."""
    if tuple(batch.shape[-2:]) == tuple(shape_yx):
        return batch
    return functional.interpolate(batch, size=tuple(shape_yx), mode="bilinear", align_corners=False)


def predict_probabilities(networks: Sequence[tuple[torch.nn.Module, Sequence[int]]], channels: np.ndarray, *,
                          size: int, device: torch.device, batch_size: int = 16,
                          dtype: torch.dtype | None = None, channels_last: bool = True,
                          progress: Progress | None = None) -> list[np.ndarray]:
    """Lesion probability volumes (z, y, x) float32, one per (network, channel indices) pair: all
    networks see the same preprocessed batch, so several models share one input pass. `progress`
    hears of every batch (slices done) and can cancel between batches."""
    progress = progress or Progress()
    shape_yx = channels.shape[-2:]
    outputs = [np.empty((channels.shape[0], *shape_yx), np.float32) for _ in networks]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    for network, _ in networks:
        network.eval()
    with torch.inference_mode(), autocast:
        for start in range(0, channels.shape[0], batch_size):
            if progress.cancelled():
                raise CancelledError("segmentation cancelled")
            batch = torch.from_numpy(np.ascontiguousarray(channels[start:start + batch_size])).to(device)
            batch = resize_slices(batch, (size, size))
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            for output, (network, indices) in zip(outputs, networks, strict=True):
                logits = network(batch[:, list(indices)])
                probability = resize_slices(torch.sigmoid(logits.float()), shape_yx)
                output[start:start + batch.shape[0]] = probability[:, 0].cpu().numpy()
            progress.slices_done(min(start + batch_size, channels.shape[0]), channels.shape[0])
    return outputs


def predict_with_fallback(networks, channels: np.ndarray, *, size: int, device: torch.device, batch_size: int,
                          dtype: torch.dtype | None, progress: Progress | None = None) -> tuple[list[np.ndarray], str]:
    """`predict_probabilities`, retried after a CUDA out-of-memory error with half the batch (down to
    one slice), then on the CPU; every retry is told through `progress.message`. Returns the
    probabilities and where they were computed."""
    progress = progress or Progress()
    while True:
        try:
            return predict_probabilities(networks, channels, size=size, device=device, batch_size=batch_size,
                                         dtype=dtype, progress=progress), str(device)
        except torch.cuda.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if batch_size > 1:
                batch_size //= 2
                progress.message(f"out of GPU memory: retrying with {batch_size} slices per batch")
            elif device.type != "cpu":
                device, dtype = torch.device("cpu"), None
                networks = [(network.to(device), indices) for network, indices in networks]
                progress.message("out of GPU memory even one slice at a time: continuing on the CPU")
            else:
                raise
