"""The model package on disk: `model.safetensors` (weights, no pickle) + `model.json` (the card).

The card is written last and carries the weights' sha256, so a package is either complete or
refused. Loading verifies the hash, rebuilds the network from the card and checks every tensor's
shape before any weight is used. A model set is a folder of model packages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import atomic_path, write_text
from ..data.fingerprint import sha256_file
from ..errors import OsteoSegError
from .network import Architecture, UNet2D, build_network
from .preprocess import CHANNEL_ORDER

WEIGHTS_FILE, CARD_FILE = "model.safetensors", "model.json"
MODEL_FORMAT, MODEL_FORMAT_VERSION = "osteoseg-model", 1
INTENTS = {"A": "high sensitivity (screening: PET hot region plus surrounding edema)",
           "B": "high specificity (surgery: bone destruction meeting strong uptake)"}


@dataclass
class ModelPackage:
    """A loaded, verified model: the network (eval mode, on CPU) and its card."""

    network: UNet2D
    card: dict
    folder: Path

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.card["inputs"])


def intent_of(label_source: str) -> str:
    return INTENTS.get(label_source, f"trained on annotation source {label_source!r}")


def save_weights(state_dict: dict, path: Path) -> str:
    """Write weights as safetensors atomically; returns their sha256."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state_dict.items()}
    with atomic_path(path) as temporary:
        try:
            save_file(tensors, str(temporary), metadata={"format": MODEL_FORMAT})
        except SafetensorError as error:   # how safetensors reports a failed write (a full disk, ...)
            raise OsteoSegError(f"cannot write the weights ({error}); is the disk full?", path=path) from None
    return sha256_file(path)


def save_model_package(folder: Path, state_dict: dict, card: dict) -> Path:
    """Weights first, then the card with their hash (a package without a card is incomplete)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, **card,
            "weights_file": WEIGHTS_FILE, "weights_sha256": save_weights(state_dict, folder / WEIGHTS_FILE)}
    write_text(folder / CARD_FILE, json.dumps(card, indent=2) + "\n")
    return folder


def read_card(folder: Path) -> dict:
    """The model card, checked for format; a clear error for a folder that is not a package."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise OsteoSegError(f"not a model package: {CARD_FILE} is missing", path=folder)
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise OsteoSegError(f"model card unreadable ({error})", path=path) from None
    if card.get("format") != MODEL_FORMAT or card.get("format_version", 0) > MODEL_FORMAT_VERSION:
        raise OsteoSegError(f"not an {MODEL_FORMAT} card of version <= {MODEL_FORMAT_VERSION}", path=path)
    return card


def load_model_package(folder: Path) -> ModelPackage:
    """Read, verify (sha256, tensor names and shapes) and build a model; never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    card = read_card(folder)
    check_card(card, folder / CARD_FILE)
    weights = folder / card.get("weights_file", WEIGHTS_FILE)
    if not weights.is_file():
        raise OsteoSegError("weights file is missing", path=weights)
    if not card.get("weights_sha256"):
        raise OsteoSegError("the model card has no weights_sha256, so the weights cannot be verified; "
                            "a package written by OsteoSeg always has one", path=folder / CARD_FILE)
    actual = sha256_file(weights)
    if actual != card.get("weights_sha256"):
        raise OsteoSegError(f"weights do not match the model card (sha256 {actual[:12]}..., card says "
                            f"{str(card.get('weights_sha256'))[:12]}...): the file is corrupt or from another model",
                            path=weights)
    try:
        state = load_file(str(weights))
        network = build_network(Architecture.from_dict(card["architecture"]))
    except (SafetensorError, KeyError, TypeError, ValueError) as error:
        raise OsteoSegError(f"model unreadable ({error})", path=weights) from None
    check_state_matches(network, state, weights)
    network.load_state_dict(state)
    return ModelPackage(network.eval(), card, folder)


def check_card(card: dict, path: Path) -> None:
    """A card that describes a model OsteoSeg can run: known inputs, as many as the network's input
    channels, a label source, a threshold between 0 and 1."""
    inputs, architecture = card.get("inputs"), card.get("architecture")
    problems = []
    if not isinstance(inputs, list) or not inputs or not set(inputs) <= set(CHANNEL_ORDER) \
            or len(set(inputs)) != len(inputs):
        problems.append(f"inputs {inputs!r} are not a list of {' / '.join(CHANNEL_ORDER)}")
    elif not isinstance(architecture, dict) or architecture.get("in_channels", 2) != len(inputs):
        channels = architecture.get("in_channels") if isinstance(architecture, dict) else None
        problems.append(f"inputs {'+'.join(inputs)} need {len(inputs)} input channel(s), the architecture "
                        f"has {channels}")
    if not isinstance(card.get("label_source"), str) or not card.get("label_source"):
        problems.append("it names no label_source")
    threshold = card.get("threshold", 0.5)
    if not isinstance(threshold, int | float) or not 0 < threshold < 1:
        problems.append(f"threshold {threshold!r} is not between 0 and 1")
    if problems:
        raise OsteoSegError(f"model card does not describe a usable model: {'; '.join(problems)}", path=path)


def check_state_matches(network: torch.nn.Module, state: dict, path: Path) -> None:
    """Every tensor the network expects, with its shape, and nothing else."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or extra or wrong:
        detail = "; ".join(filter(None, [missing and f"missing {missing[:3]}", extra and f"unexpected {extra[:3]}",
                                         wrong and f"shape {wrong[:3]}"]))
        raise OsteoSegError(f"weights do not fit the architecture in the model card ({detail})", path=path)


def copy_model_package(source: Path, destination: Path) -> Path:
    """Copy a trained model's package (weights and card, not its training state) into a model set."""
    import shutil

    return Path(shutil.copytree(source, destination, ignore=shutil.ignore_patterns("training", "run.json")))


def load_model_set(folder: Path) -> list[ModelPackage]:
    """Every model package directly inside `folder` (sorted by folder name); at least one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OsteoSegError("model set folder does not exist", path=folder)
    packages = [load_model_package(p) for p in sorted(folder.iterdir()) if (p / CARD_FILE).is_file()]
    if not packages:
        raise OsteoSegError(f"no model packages (folders with {CARD_FILE}) in the model set", path=folder)
    return packages
