"""OpenVINO as the CPU backend where it is installed: measured 11-17% faster per batch than torch's
own CPU path on the same weights (README, performance). Each model is converted once from its torch
network and kept on disk, keyed by a hash of the network and the OpenVINO version; a damaged cache
entry is converted again, and one that cannot be written only costs the conversion next time."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..cache import cache_folder
from ..data.fingerprint import sha256_file
from ..model.package import ModelPackage
from ..progress import Progress
from .predict import folded_copy

IR_FORMAT = 1            # raise when what the conversion saves changes: older cache entries are then ignored
MODEL_FILE, MANIFEST_FILE = "model.xml", "manifest.json"


def default_cache_folder() -> Path:
    """$OSTEOSEG_CACHE, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache), /osteoseg/openvino."""
    return cache_folder("openvino")


def cache_key(network: torch.nn.Module, channels: int) -> str:
    """Names one converted network by what it computes: its layers, every tensor's bytes, its input
    channels and the converter's version (not by a model card, which an in-memory model may lack)."""
    import openvino

    digest = hashlib.sha256(f"{network!r}|{channels}|{openvino.get_version()}|{IR_FORMAT}".encode())
    for name, tensor in network.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy())   # 0-d too
    return digest.hexdigest()[:24]


def convert(network: torch.nn.Module, channels: int):
    """An inference network as an OpenVINO graph with any batch size and slice shape."""
    import openvino

    with torch.no_grad():
        return openvino.convert_model(network, example_input=torch.zeros(1, channels, 64, 64),
                                      input=[openvino.PartialShape([-1, channels, -1, -1])])


def file_hashes(folder: Path) -> dict[str, str]:
    return {path.name: sha256_file(path) for path in sorted(folder.iterdir()) if path.name != MANIFEST_FILE}


def read_cached(entry: Path, progress: Progress):
    """The cached graph when the entry is complete and every file matches its manifest, else None."""
    import openvino

    manifest = entry / MANIFEST_FILE
    if not manifest.is_file():
        return None
    try:
        intact = json.loads(manifest.read_text(encoding="utf-8")) == file_hashes(entry)
    except (OSError, ValueError):
        intact = False
    if not intact:
        progress.message(f"the converted model cached in {entry} is damaged; converting it again")
        return None
    return openvino.Core().read_model(entry / MODEL_FILE)


def store(graph, entry: Path) -> None:
    """Save the graph into `entry` as a whole: written in a temporary folder beside it, with a
    manifest of its files' hashes, then renamed into place."""
    import openvino

    entry.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{entry.name}.partial-", dir=entry.parent))
    try:
        openvino.save_model(graph, partial / MODEL_FILE, compress_to_fp16=False)   # the weights as trained
        (partial / MANIFEST_FILE).write_text(json.dumps(file_hashes(partial)), encoding="utf-8")
        if entry.exists():            # a damaged entry, found by read_cached
            shutil.rmtree(entry)
        try:
            os.replace(partial, entry)
        except OSError:
            if not (entry / MANIFEST_FILE).is_file():   # not just another process storing the same model
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def openvino_graph(model: ModelPackage, cache_folder: Path | None, progress: Progress):
    """The model's network (BatchNorm folded; the torch path's fused upsampling left out, OpenVINO
    fuses on its own) as a graph: from the cache, or converted now and cached (unless `cache_folder`
    is None)."""
    network, channels = folded_copy(model.network, torch.device("cpu")), len(model.inputs)
    if cache_folder is None:
        return convert(network, channels)
    entry = cache_folder / cache_key(network, channels)
    graph = read_cached(entry, progress)
    if graph is None:
        progress.message(f"converting {model.name} for OpenVINO (once per model; kept in {cache_folder})")
        graph = convert(network, channels)
        try:
            store(graph, entry)
        except (OSError, RuntimeError) as error:      # OpenVINO reports a failed write as RuntimeError
            progress.message(f"could not keep the converted {model.name} in {cache_folder} ({error}); "
                             "it will be converted again next time")
    return graph


class OpenVinoNetwork:
    """A compiled model called like the torch network: a (N, C, y, x) tensor in, logits out (float32)."""

    def __init__(self, compiled):
        self.request = compiled.create_infer_request()

    def eval(self) -> OpenVinoNetwork:
        return self

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.float().numpy())
        return torch.from_numpy(self.request.infer({0: array})[0])


def openvino_network(model: ModelPackage, dtype: torch.dtype | None, *, cache_folder: Path | None = None,
                     progress: Progress | None = None) -> OpenVinoNetwork:
    """The model compiled for this CPU: bf16 arithmetic when `dtype` is bf16, else fp32 throughout.
    Single-stream latency mode: one batch at a time on every core, like the torch path."""
    import openvino

    graph = openvino_graph(model, cache_folder, progress or Progress())
    hints = {"INFERENCE_PRECISION_HINT": "bf16" if dtype == torch.bfloat16 else "f32", "PERFORMANCE_HINT": "LATENCY"}
    return OpenVinoNetwork(openvino.Core().compile_model(graph, "CPU", hints))
