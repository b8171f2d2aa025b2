"""Whole-volume prediction: every axial slice through one or several networks, back on the CT grid.

Slices are resized to the network's size and back on the compute device with bilinear
interpolation at pixel centres (align_corners=False), which is the same mapping as
`preprocess.to_training_size` / `from_training_size` (edge values extended).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch.nn import functional
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..progress import CancelledError, Progress
from .fused_upsample import fuse_upsampling


def resize_slices(batch: torch.Tensor, shape_yx: tuple[int, int]) -> torch.Tensor:
    """(N, C, y, x) -> (N, C, *shape_yx), bilinear at pixel centres."""
    if tuple(batch.shape[-2:]) == tuple(shape_yx):
        return batch
    return functional.interpolate(batch, size=tuple(shape_yx), mode="bilinear", align_corners=False)


class StageTimer:
    """Seconds spent per stage, summed over batches (the device is synchronised at each switch)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def folded_copy(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A copy on the device in eval mode with BatchNorm folded into the preceding convolutions
    (torch's own fuse_conv_bn_eval: one pass over memory less per layer); the outputs are unchanged."""
    network = copy.deepcopy(network).eval().to(device)
    for module in network.modules():
        if isinstance(module, torch.nn.Sequential):
            layers = list(module)
            for i in range(len(layers) - 1):
                if isinstance(layers[i], torch.nn.Conv2d) and isinstance(layers[i + 1], torch.nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])
                    module[i + 1] = torch.nn.Identity()
    return network


def prepare_network(network: torch.nn.Module, device: torch.device, *, channels_last: bool = True,
                    fold_batchnorm: bool = True) -> torch.nn.Module:
    """The torch inference copy: on the device, eval mode, BatchNorm folded (`folded_copy`), the
    decoder's upsampling as matrix products written into the skip joins (`fused_upsample`), channels-last."""
    network = folded_copy(network, device) if fold_batchnorm else copy.deepcopy(network).eval().to(device)
    fuse_upsampling(network)
    return network.to(memory_format=torch.channels_last) if channels_last else network


def predict_probabilities(networks: Sequence[tuple[torch.nn.Module, Sequence[int]]], channels: np.ndarray, *,
                          size: int, device: torch.device, batch_size: int = 16,
                          dtype: torch.dtype | None = None, channels_last: bool = True,
                          progress: Progress | None = None, slices: np.ndarray | None = None,
                          box: tuple[int, int, int, int] | None = None,
                          timer: StageTimer | None = None) -> list[np.ndarray]:
    """Lesion probability volumes (z, y, x) float32, one per (network, channel indices) pair: all
    networks see the same preprocessed batch, so several models share one input pass. `slices`
    limits the work to those axial slices (the others get probability 0); `box` (y0, y1, x0, x1, in
    network pixels, multiples of 16) to that part of each slice, the rest getting probability ~0.
    `progress` hears of every batch and can cancel between batches; `timer` adds up the seconds of
    each stage."""
    progress = progress or Progress()
    timer = timer or StageTimer(device)
    shape_yx = channels.shape[-2:]
    outputs = [np.zeros((channels.shape[0], *shape_yx), np.float32) for _ in networks]
    todo = np.arange(channels.shape[0]) if slices is None else np.asarray(slices)
    for network, _ in networks:
        network.eval()
    with torch.inference_mode():
        for start in range(0, len(todo), batch_size):
            if progress.cancelled():
                raise CancelledError("segmentation cancelled")
            chosen = todo[start:start + batch_size]
            with timer.stage("resize to network"):
                batch = torch.from_numpy(np.ascontiguousarray(channels[chosen])).to(device)
                batch = resize_slices(batch, (size, size))
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
            inside = batch if box is None else batch[:, :, box[0]:box[1], box[2]:box[3]]
            for output, (network, indices) in zip(outputs, networks, strict=True):
                with timer.stage("network"), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = network(inside if len(indices) == inside.shape[1] else inside[:, list(indices)])
                with timer.stage("map back"):
                    logits = paste(logits.float(), box, size)
                    probability = resize_slices(torch.sigmoid(logits), shape_yx)
                    output[chosen] = probability[:, 0].cpu().numpy()
            progress.slices_done(min(start + batch_size, len(todo)), len(todo))
    return outputs


OUTSIDE_LOGIT = -20.0   # probability 2e-9: what the network says of air, near enough


def paste(logits: torch.Tensor, box: tuple[int, int, int, int] | None, size: int) -> torch.Tensor:
    """Logits of a cropped box back into a full size x size slice (outside: OUTSIDE_LOGIT)."""
    if box is None:
        return logits
    full = torch.full((logits.shape[0], logits.shape[1], size, size), OUTSIDE_LOGIT, device=logits.device)
    full[:, :, box[0]:box[1], box[2]:box[3]] = logits
    return full


def body_box(body_yx: np.ndarray, size: int, margin: int = 8, multiple: int = 16,
             worthwhile: float = 0.85) -> tuple[int, int, int, int] | None:
    """The part of a network-size slice that covers the body (a 2D mask on the original grid),
    widened by `margin` network pixels and snapped to multiples of 16 (the U-Net halves 4 times).
    None when it would save little (over `worthwhile` of the slice) or there is no body."""
    rows, columns = np.flatnonzero(body_yx.any(axis=1)), np.flatnonzero(body_yx.any(axis=0))
    if rows.size == 0:
        return None
    box = []
    for indices, length in ((rows, body_yx.shape[0]), (columns, body_yx.shape[1])):
        scale = size / length          # pixel centres: network = (original + 0.5) * scale - 0.5
        low = int(np.floor((indices[0] + 0.5) * scale - 0.5)) - margin
        high = int(np.ceil((indices[-1] + 0.5) * scale - 0.5)) + 1 + margin
        low, high = max(0, low // multiple * multiple), min(size, -(-high // multiple) * multiple)
        box += [low, high]
    area = (box[1] - box[0]) * (box[3] - box[2]) / size**2
    return None if area > worthwhile else tuple(box)


def predict_with_fallback(networks, channels: np.ndarray, *, size: int, device: torch.device, batch_size: int,
                          dtype: torch.dtype | None, progress: Progress | None = None,
                          **options) -> tuple[list[np.ndarray], str]:
    """`predict_probabilities`, retried after a CUDA out-of-memory error with half the batch (down to
    one slice), then on the CPU; every retry is told through `progress.message`. Returns the
    probabilities and where they were computed."""
    progress = progress or Progress()
    while True:
        try:
            return predict_probabilities(networks, channels, size=size, device=device, batch_size=batch_size,
                                         dtype=dtype, progress=progress, **options), str(device)
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
