"""Segmentation in a separate process, so Slicer's window stays alive: `python -m
OsteoSegLib.scene.worker --ct CT --pet PET --models SET --out DIR`, started by `worker_job`.

It reports on stdout one JSON object per line: {"event": "progress", "done", "total", "eta_s"},
{"event": "message", "text"}, {"event": "done", "result": DIR/result.json} or {"event": "error",
"text"}; and writes every model's probability map (NRRD, on the CT grid) and result.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import write_text
from ..data.io import read_image, write_image
from ..errors import OsteoSegError
from ..inference.segment import Segmentation, segment_images
from ..model.ensemble import group_models
from ..model.package import load_model_package
from ..progress import Progress


def emit(**event) -> None:
    print(json.dumps(event), flush=True)


class StreamProgress(Progress):
    """Progress as JSON lines with an ETA from the slices done so far."""

    def __init__(self):
        self.started = time.perf_counter()

    def slices_done(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.started
        emit(event="progress", done=done, total=total, eta_s=elapsed / done * (total - done) if done else None)

    def message(self, text: str) -> None:
        emit(event="message", text=text)


def run(arguments) -> Path:
    ct = read_image(arguments.ct)
    pet = read_image(arguments.pet)
    transform = sitk.ReadTransform(arguments.transform) if arguments.transform else None
    models = [load_model_package(Path(folder)) for folder in arguments.models]
    result = segment_images(ct, pet, models, transform=transform, device=arguments.device,
                            threshold=arguments.threshold, batch_size=arguments.batch_size,
                            progress=StreamProgress())
    out = Path(arguments.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for index, group in enumerate(result.models):   # one map per label source (an ensemble's averaged)
        image = sitk.GetImageFromArray(result.probabilities[group.name])
        image.CopyInformation(ct)
        files[group.name] = write_image(image, out / f"probability_{index}.nrrd").name
    summary = {"models": [str(Path(f).resolve()) for f in arguments.models], "probability_files": files,
               "threshold": result.threshold, "device": result.device, "seconds": result.seconds,
               "backend": result.backend}
    write_text(out / "result.json", json.dumps(summary, indent=2) + "\n")
    return out / "result.json"


def load_result(result_file: str | Path) -> Segmentation:
    """A finished worker's result as a Segmentation (models re-loaded and re-verified)."""
    result_file = Path(result_file)
    summary = json.loads(result_file.read_text())
    groups = group_models([load_model_package(Path(folder)) for folder in summary["models"]])
    probabilities = {g.name: sitk.GetArrayFromImage(sitk.ReadImage(str(result_file.parent / summary[
        "probability_files"][g.name]))) for g in groups}
    masks = {name: (p >= summary["threshold"]).astype(np.uint8) for name, p in probabilities.items()}
    return Segmentation(probabilities, masks, groups, summary["threshold"], summary["device"], summary["seconds"],
                        summary["backend"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", required=True)
    parser.add_argument("--pet", required=True)
    parser.add_argument("--models", nargs="+", required=True, help="model package folders")
    parser.add_argument("--out", required=True)
    parser.add_argument("--transform")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--batch-size", type=int)
    arguments = parser.parse_args(argv)
    try:
        emit(event="done", result=str(run(arguments)))
        return 0
    except OsteoSegError as error:
        emit(event="error", text=str(error))
        return 2


if __name__ == "__main__":
    sys.exit(main())
