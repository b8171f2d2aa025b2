"""`osteoseg bench`: how fast Segment is, and how close to the hardware's limit.

On a full-size phantom case (512 x 512 x 200 CT with its PET), with Model A and Model B at the
paper's width, it measures in one process:
- the machine's matrix-product peak (fp32 and bf16), the yardstick for the network stage;
- the default Segment path, split into stages (read, align, preprocess, network, map back,
  segmentation output), median of several runs; the peak resident memory of one Segment in a
  fresh process (as the Slicer worker runs it) and of this process after every run (and GPU memory);
- the same weights run two other ways on the same input: a straightforward baseline (fp32, one
  slice at a time, default memory format, no BatchNorm folding) and MONAI's SliceInferer; the
  speed ratios and the agreement of the masks (Dice) and probabilities (max difference);
- the agreement of the default precision with fp32 (bf16 is only the default where Dice >= 0.99);
- with the OpenVINO backend: the one-time conversion per model, and torch's own path on the same
  input (speed ratio and agreement), so the choice of backend is measured too;
- with `members` > 1: each label source as an ensemble of that many networks (copies of the benchmark
  weights under other names: the cost of an ensemble, not its accuracy), all in one input pass.
A device that is asked for and absent is an error: a benchmark never falls back silently.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from ..data.io import read_image
from ..errors import OsteoSegError
from ..imaging import resample_onto
from ..inference.backends import choose_backend, describe_backend, inference_networks
from ..inference.predict import StageTimer, predict_probabilities, prepare_network, resize_slices
from ..inference.segment import BATCH_BY_DEVICE, body_region, check_model_set, segment_images
from ..metrics import dice
from ..model.devices import choose_device, describe, inference_dtype
from ..model.package import ModelPackage, load_model_set
from ..model.preprocess import input_channels

BENCH_SHAPE, BENCH_SPACING = (512, 512, 200), (0.8, 0.8, 2.0)
CASE_INPUTS = ("ct", "pet")        # the benchmark case's channels, in the order the networks' indices refer to


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of a large square matrix product: the practical peak of this device and type."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def network_flops(model: ModelPackage, size: int, shape: tuple[int, int] | None = None) -> float:
    """FLOPs of one slice (or of a `shape` crop of it) through the network (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    network = prepare_network(model.network, torch.device("cpu"), channels_last=False, fold_batchnorm=False)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        network(torch.zeros(1, len(model.inputs), *(shape or (size, size))))
    return float(counter.get_total_flops())


def ensure_case(cache: Path) -> tuple[Path, Path]:
    """The full-size phantom case (generated once, in a separate process so that its memory does not
    count towards the benchmark's peak)."""
    folder = cache / "bench-case"
    ct, pet = folder / "case_000" / "ct.nii.gz", folder / "case_000" / "pet.nii.gz"
    if not (ct.is_file() and pet.is_file()):
        command = [sys.executable, "-m", "OsteoSegLib.cli", "phantom", str(folder), "--cases", "1", "--seed", "3",
                   "--size", "full", "--shape", *map(str, BENCH_SHAPE), "--spacing", *map(str, BENCH_SPACING),
                   "--force", "--no-overview"]
        subprocess.run(command, check=True, capture_output=True)
    return ct, pet


def ensure_models(cache: Path, width: int) -> Path:
    """Model A and Model B at `width` with weights that make non-trivial masks: a short training on
    small phantom cases (in a separate process). Random weights would predict nothing, and two empty
    masks agree trivially; these are benchmark weights, not a clinical model."""
    folder = cache / f"bench-models-w{width}"
    if not (folder / "model-set" / "model-B" / "model.json").is_file():
        code = ("import sys; from pathlib import Path; from OsteoSegLib.bench.weights import train_bench_models; "
                f"train_bench_models(Path({str(folder)!r}), {width})")
        subprocess.run([sys.executable, "-c", code], check=True)
    return folder / "model-set"


def ensure_ensemble_set(model_set: Path, members: int) -> Path:
    """The model set with every model repeated `members` times under distinct names (one ensemble
    per label source); the same weights, so the cost is an ensemble's and the masks a single model's."""
    import json

    from ..model.package import CARD_FILE, copy_model_package

    if members == 1:
        return model_set
    folder = model_set.parent / f"ensemble-of-{members}"
    if folder.is_dir():
        return folder
    staging = model_set.parent / f".ensemble-of-{members}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for package in sorted(p for p in model_set.iterdir() if (p / CARD_FILE).is_file()):
        for index in range(members):
            copy = copy_model_package(package, staging / f"{package.name}-member{index}")
            card = json.loads((copy / CARD_FILE).read_text())
            (copy / CARD_FILE).write_text(json.dumps({**card, "name": f"{card['name']}_member{index}"}, indent=1))
    staging.rename(folder)
    return folder


def segment_files(ct_file: Path, pet_file: Path, models, device, batch_size: int | None, precision: str,
                  body_only: bool, backend: str, timer: StageTimer):
    """One Segment as a user runs it: read, segment, write the segmentation (then removed)."""
    import tempfile

    from ..scene.mrml import create_headless_context
    from ..scene.segment_output import write_segmentation

    with timer.stage("read"):
        ct, pet = read_image(ct_file), read_image(pet_file)
    result = segment_images(ct, pet, models, device=str(device), batch_size=batch_size, precision=precision,
                            body_only=body_only, timer=timer, device_fallback=False, backend=backend)
    with timer.stage("segmentation output"), tempfile.TemporaryDirectory(dir=ct_file.parent) as out:
        write_segmentation(create_headless_context(), ct, result, Path(out), "bench")
    return result


def time_default_path(ct_file: Path, pet_file: Path, models, device, runs: int, batch_size: int | None,
                      precision: str, body_only: bool, backend: str):
    """Median seconds per stage of Segment, end to end from the files; the last run's result."""
    per_run, result = [], None
    for _ in range(runs):
        result = None          # the previous run's volumes must not count towards this run's memory
        timer = StageTimer(device)
        result = segment_files(ct_file, pet_file, models, device, batch_size, precision, body_only, backend, timer)
        per_run.append(timer.seconds)
    stages = per_run[0].keys()
    return {stage: statistics.median(run[stage] for run in per_run) for stage in stages}, result


def peak_rss_gib() -> float:
    """This process's peak resident memory. On Linux from /proc (VmHWM): getrusage's ru_maxrss would
    also count the parent's memory at the moment it started this process."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**20
    except (OSError, StopIteration):
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss        # bytes on macOS, KiB elsewhere
        return maxrss / 2**30 if sys.platform == "darwin" else maxrss / 2**20


def segment_in_child(ct_file, pet_file, model_set, device, batch_size, precision, body_only, backend) -> None:
    """The body of the fresh process that `own_process_peak_rss` measures (arguments as strings)."""
    segment_files(Path(ct_file), Path(pet_file), load_model_set(Path(model_set)), torch.device(device),
                  int(batch_size), precision, body_only == "True", backend, StageTimer(torch.device(device)))
    print(f"peak_rss_gib={peak_rss_gib()}")


def own_process_peak_rss(ct_file: Path, pet_file: Path, model_set: Path, device, batch_size: int, precision: str,
                         body_only: bool, backend: str) -> float:
    """Peak resident memory (GiB) of one Segment in a fresh process, as the Slicer module's worker
    runs each segmentation: the figure the memory target is about. (A process that has run several
    cases also holds what the allocators kept from earlier ones; that figure is reported beside it.)"""
    code = "import sys; from OsteoSegLib.bench.benchmark import segment_in_child; segment_in_child(*sys.argv[1:])"
    arguments = [ct_file, pet_file, model_set, device, batch_size, precision, body_only, backend]
    child = subprocess.run([sys.executable, "-c", code, *map(str, arguments)], capture_output=True, text=True)
    figures = [line for line in child.stdout.splitlines() if line.startswith("peak_rss_gib=")]
    if child.returncode or not figures:
        raise OsteoSegError(f"the Segment run for the memory figure failed (exit status {child.returncode}): "
                            f"{child.stderr.strip().splitlines()[-1:]}")
    return float(figures[-1].split("=", 1)[1])


def straightforward(models, channels, size, device):
    """The baseline a first implementation would write: fp32, one slice at a time, default memory
    format, BatchNorm as trained, torch.no_grad."""
    outputs = [np.zeros(channels.shape[:1] + channels.shape[2:], np.float32) for _ in models]
    for model in models:
        model.network.to(device).eval()
    with torch.no_grad():
        for k in range(channels.shape[0]):
            batch = resize_slices(torch.from_numpy(channels[k:k + 1]).to(device), (size, size))
            for output, model in zip(outputs, models, strict=True):
                logits = model.network(batch)
                output[k] = resize_slices(torch.sigmoid(logits), channels.shape[2:])[0, 0].cpu().numpy()
    return outputs


def monai_slice_inferer(models, channels, size, device, batch_size):
    """MONAI's SliceInferer over the volume resized to the network's size, the same weights."""
    from monai.inferers import SliceInferer

    inferer = SliceInferer(roi_size=(size, size), sw_batch_size=batch_size, spatial_dim=0, progress=False)
    volume = resize_slices(torch.from_numpy(channels), (size, size))            # (z, C, s, s)
    volume = volume.permute(1, 0, 2, 3)[None].to(device)                       # (1, C, z, s, s)
    outputs = []
    with torch.inference_mode():
        for model in models:
            network = model.network.to(device).eval()
            logits = inferer(volume, network)                                   # (1, 1, z, s, s)
            probability = torch.sigmoid(logits[0].permute(1, 0, 2, 3))          # (z, 1, s, s)
            outputs.append(resize_slices(probability, channels.shape[2:])[:, 0].cpu().numpy())
    return outputs


def agreement(reference: list[np.ndarray], other: list[np.ndarray], threshold: float = 0.5) -> dict:
    """Worst model's Dice between thresholded masks, and the largest probability difference."""
    pairs = list(zip(reference, other, strict=True))
    return {"dice_min": min(dice(a >= threshold, b >= threshold) for a, b in pairs),
            "max_probability_difference": max(float(np.abs(a - b).max()) for a, b in pairs)}


def openvino_conversion_seconds(models) -> float:
    """Seconds to convert both models for OpenVINO without the cache (what a first Segment costs);
    then the cache is filled, so that the timed runs read it as every later Segment does."""
    from ..inference.openvino_backend import default_cache_folder, openvino_graph
    from ..progress import Progress

    seconds = sum(timed(openvino_graph, model, None, Progress())[0] for model in models)
    for model in models:
        openvino_graph(model, default_cache_folder(), Progress())
    return seconds


def torch_probabilities(models, channels, size, device, batch_size, dtype, slices, box) -> list[np.ndarray]:
    """Torch's own inference path on the case's channels: the reference the other paths are compared with."""
    networks = inference_networks(models, CASE_INPUTS, device, "torch", dtype)
    return predict_probabilities(networks, channels, size=size, device=device, batch_size=batch_size, dtype=dtype,
                                 slices=slices, box=box)


def timed(function, *args):
    started = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - started, value


def run_benchmark(cache: Path, *, device_name: str = "auto", width: int = 64, runs: int = 3,
                  batch_size: int | None = None, precision: str = "auto", compare: bool = True,
                  body_only: bool = True, backend: str = "auto", members: int = 1, log=print) -> dict:
    """Every figure of the benchmark as one dictionary (see the module docstring)."""
    device = choose_device(device_name)
    if device_name != "auto" and device.type != device_name.split(":")[0]:
        raise OsteoSegError(f"device {device_name!r} is not available")
    backend = choose_backend(backend, device)
    if members < 1:
        raise OsteoSegError(f"--members must be at least 1, got {members}")
    cache.mkdir(parents=True, exist_ok=True)
    log("preparing the full-size case and the models (cached after the first run) ...")
    ct_file, pet_file = ensure_case(cache)
    model_set = ensure_ensemble_set(ensure_models(cache, width), members)
    models = load_model_set(model_set)
    compare = compare and members == 1   # the comparisons are per network, about precision and backends
    size = check_model_set(models).size
    log("measuring the matrix-product peak ...")
    peaks = {"fp32": matmul_peak(device, torch.float32), "bf16": matmul_peak(device, torch.bfloat16)}
    dtype = inference_dtype(device, precision)
    conversion = None
    if backend == "openvino":
        log("converting the models for OpenVINO (timed without the cache, then cached for the runs) ...")
        conversion = openvino_conversion_seconds(models)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    log(f"timing Segment end to end ({runs} runs) ...")
    batch_size = batch_size or BATCH_BY_DEVICE[device.type]
    stages, result = time_default_path(ct_file, pet_file, models, device, runs, batch_size, precision, body_only,
                                       backend)
    peak_rss_in_process = peak_rss_gib()
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    log("measuring the memory of one Segment in a fresh process ...")
    peak_rss = own_process_peak_rss(ct_file, pet_file, model_set, device, batch_size, precision, body_only, backend)

    ct, pet = read_image(ct_file), read_image(pet_file)
    ct_array = sitk.GetArrayFromImage(ct)
    # A copy, not a view: a view into a temporary image would point at freed memory.
    pet_on_ct = sitk.GetArrayFromImage(resample_onto(pet, ct))
    channels = input_channels(ct_array, pet_on_ct, CASE_INPUTS, check_model_set(models))
    slices, box = body_region(ct_array, size, body_only)
    slices_run = ct_array.shape[0] if slices is None else len(slices)
    box_shape = (box[1] - box[0], box[3] - box[2]) if box else (size, size)
    flops = sum(network_flops(m, size, box_shape) for m in models) * slices_run
    network_seconds = stages["network"]
    other_seconds = sum(v for k, v in stages.items() if k not in ("network", "read"))
    figures = {
        "device": describe(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "case": {"shape_xyz": list(ct.GetSize()), "spacing_mm": list(ct.GetSpacing()), "slices_through_network":
                 slices_run}, "models": [m.name for m in models], "members_per_model": members, "width": width,
        "size": size,
        "precision": str(dtype or "fp32"), "backend": describe_backend(backend),
        "openvino_conversion_s": conversion, "batch_size": batch_size, "runs": runs,
        "body_only": body_only, "network_box": list(box) if box else None,
        "stages_s": stages, "end_to_end_s": sum(stages.values()),
        "end_to_end_without_read_s": sum(v for k, v in stages.items() if k != "read"),
        "network_slices_per_s": slices_run / network_seconds,
        "network_flops_per_s": flops / network_seconds, "flops_per_slice_both_models": flops / slices_run,
        "peak_flops_per_s": peaks, "network_fraction_of_peak": flops / network_seconds / peaks[
            "bf16" if dtype == torch.bfloat16 else "fp32"],
        "other_stages_fraction_of_network": other_seconds / network_seconds,
        "peak_rss_gib": peak_rss, "peak_rss_in_process_gib": peak_rss_in_process, "peak_gpu_gib": peak_gpu,
        "mask_voxels": {group.name: int(result.masks[group.name].sum()) for group in result.models},
    }
    if compare:
        log("running the same weights in fp32 (agreement of the default precision) ...")
        fp32_seconds, fp32 = timed(torch_probabilities, models, channels, size, device, batch_size, None, slices, box)
        ours = [result.probabilities[m.name] for m in models]
        figures["fp32_agreement"] = {**agreement(fp32, ours), "network_fp32_s": fp32_seconds}
        if backend != "torch":
            log("running torch's own path at the same precision (the other backend) ...")
            torch_seconds, torch_path = timed(torch_probabilities, models, channels, size, device, batch_size, dtype,
                                              slices, box)
            figures["torch_backend"] = {"seconds": torch_seconds, "speedup_of_default": torch_seconds / network_seconds,
                                        **agreement(torch_path, ours)}
        log("running the straightforward baseline (fp32, one slice at a time) ...")
        baseline_seconds, baseline = timed(straightforward, models, channels, size, device)
        figures["baseline"] = {"seconds": baseline_seconds, "speedup_of_default": baseline_seconds / network_seconds,
                               **agreement(baseline, ours)}
        log("running MONAI's SliceInferer ...")
        monai_seconds, monai = timed(monai_slice_inferer, models, channels, size, device, batch_size)
        figures["monai_slice_inferer"] = {"seconds": monai_seconds,
                                          "speedup_of_default": monai_seconds / network_seconds,
                                          **agreement(monai, ours)}
    return figures


def format_table(figures: dict) -> str:
    """The short table printed under the JSON."""
    crop = f", network box {figures['network_box']}" if figures.get("network_box") else ""
    lines = [f"Segment benchmark on {figures['device']} ({figures['threads']} threads){crop}, "
             f"{'x'.join(map(str, figures['case']['shape_xyz']))} CT, {len(figures['models'])} networks "
             f"({figures.get('members_per_model', 1)} per label source) at width {figures['width']}, "
             f"{figures['precision']}, {figures['backend']}, batch {figures['batch_size']}, "
             f"median of {figures['runs']} runs"]
    for stage, seconds in figures["stages_s"].items():
        lines.append(f"  {stage:<22}{seconds:9.2f} s")
    lines += [f"  {'end to end':<22}{figures['end_to_end_s']:9.2f} s "
              f"({figures['end_to_end_without_read_s']:.2f} s without reading)",
              f"  network: {figures['network_slices_per_s']:.1f} slices/s, "
              f"{figures['network_flops_per_s'] / 1e12:.3f} TFLOP/s = "
              f"{100 * figures['network_fraction_of_peak']:.0f}% of "
              f"the matrix-product peak (fp32 {figures['peak_flops_per_s']['fp32'] / 1e12:.3f}, "
              f"bf16 {figures['peak_flops_per_s']['bf16'] / 1e12:.3f} TFLOP/s)",
              f"  other stages: {100 * figures['other_stages_fraction_of_network']:.0f}% of the network time",
              f"  peak resident memory: one Segment in its own process {figures['peak_rss_gib']:.2f} GiB, "
              f"this process after setup and {figures['runs']} runs {figures['peak_rss_in_process_gib']:.2f} GiB"
              + (f", peak GPU memory {figures['peak_gpu_gib']:.2f} GiB" if figures["peak_gpu_gib"] is not None else "")]
    if figures.get("openvino_conversion_s") is not None:
        lines.append(f"  OpenVINO conversion of both models (once, then cached): "
                     f"{figures['openvino_conversion_s']:.1f} s")
    for name in ("fp32_agreement", "torch_backend", "baseline", "monai_slice_inferer"):
        if name in figures:
            entry = figures[name]
            speed = f"default is {entry['speedup_of_default']:.1f}x faster, " if "speedup_of_default" in entry else ""
            lines.append(f"  vs {name}: {speed}mask Dice {entry['dice_min']:.4f}, "
                         f"max probability difference {entry['max_probability_difference']:.4f}")
    return "\n".join(lines)
