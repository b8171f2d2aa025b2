"""Benchmark: training throughput (slices/s) and peak memory of the default configuration.

    .venv/bin/python benchmarks/training.py [--device auto|cuda|mps|cpu] [--steps N] [--width 64]

The paper's network (width 64, two input channels, 224 x 224, batch 8) runs full training steps
(augmentation on the device, forward, Dice + BCE, backward, Adam) on random slices; the first steps
warm up and are not timed. Prints a table and a JSON line. A device that is asked for and absent is
an error (exit 2): a benchmark never falls back silently.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "OsteoSeg"))

from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.model.augment import AugmentationSettings, augment_batch
from OsteoSegLib.model.devices import autocast_dtype, choose_device, describe
from OsteoSegLib.model.losses import dice_bce_loss
from OsteoSegLib.model.network import Architecture, build_network, count_parameters

PAPER_SLICES, PAPER_EPOCHS = 3259, 20


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(device: torch.device, width: int, size: int, batch: int, steps: int, warmup: int,
            precision: str, channels_last: bool) -> dict:
    """Median time of one training step, and peak memory."""
    dtype = autocast_dtype(device, precision)
    network = build_network(Architecture(2, width)).to(device)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4, weight_decay=1e-4)
    generator = torch.Generator()
    generator.manual_seed(0)
    images = torch.rand(batch, 2, size, size, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    masks = (torch.rand(batch, 1, size, size, device=device) > 0.95).float()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(warmup + steps):
        synchronise(device)
        started = time.perf_counter()
        augmented, augmented_masks = augment_batch(images, masks, AugmentationSettings(), generator)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = network(augmented)
        loss = dice_bce_loss(logits, augmented_masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronise(device)
        if step >= warmup:
            times.append(time.perf_counter() - started)
    step_seconds = statistics.median(times)
    slices_per_second = batch / step_seconds
    return {
        "device": describe(device), "precision": str(dtype or "fp32"), "channels_last": channels_last,
        "width": width, "size": size, "batch": batch, "parameters": count_parameters(network),
        "timed_steps": steps, "median_step_s": step_seconds, "slices_per_second": slices_per_second,
        "paper_cohort_minutes_per_model": PAPER_SLICES * PAPER_EPOCHS / slices_per_second / 60,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_gpu_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, help="timed steps (default 5 on CPU, 50 on a GPU)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-channels-last", action="store_true")
    arguments = parser.parse_args()
    try:
        device = choose_device(arguments.device)
        autocast_dtype(device, arguments.precision)
    except OsteoSegError as error:
        print(f"benchmark: error: {error}", file=sys.stderr)
        return 2
    steps = arguments.steps or (5 if device.type == "cpu" else 50)
    figures = measure(device, arguments.width, arguments.size, arguments.batch, steps, arguments.warmup,
                      arguments.precision, not arguments.no_channels_last)
    print(f"training step, {figures['device']}, {figures['precision']}, width {figures['width']}, "
          f"{figures['size']}x{figures['size']}, batch {figures['batch']} "
          f"({figures['parameters'] / 1e6:.1f} M parameters)")
    print(f"  median step           {figures['median_step_s'] * 1000:10.1f} ms over {steps} steps")
    print(f"  throughput            {figures['slices_per_second']:10.1f} slices/s")
    print(f"  paper-size cohort     {figures['paper_cohort_minutes_per_model']:10.1f} min per model "
          f"({PAPER_SLICES} slices x {PAPER_EPOCHS} epochs)")
    print(f"  peak resident memory  {figures['peak_rss_gib']:10.2f} GiB")
    if figures["peak_gpu_gib"] is not None:
        print(f"  peak GPU memory       {figures['peak_gpu_gib']:10.2f} GiB")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
