"""Model packages: safetensors weights, the card, and every refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference.predict import predict_probabilities
from OsteoSegLib.model.network import Architecture, build_network
from OsteoSegLib.model.package import CARD_FILE, WEIGHTS_FILE, load_model_package, load_model_set, save_model_package


def _package(tmp_path, width=4):
    network = build_network(Architecture(2, width)).eval()
    card = {"name": "test", "label_source": "A", "inputs": ["ct", "pet"],
            "architecture": Architecture(2, width).as_dict()}
    return network, save_model_package(tmp_path / "set" / "model-A", network.state_dict(), card)


def test_model_package_round_trip_gives_the_same_predictions(tmp_path):
    network, folder = _package(tmp_path)
    loaded = load_model_package(folder)
    assert loaded.card["weights_sha256"] and loaded.inputs == ("ct", "pet")
    volume = np.random.default_rng(1).random((5, 2, 40, 40)).astype(np.float32)
    a, b = predict_probabilities([(network, (0, 1)), (loaded.network, (0, 1))], volume, size=48,
                                 device=torch.device("cpu"), batch_size=2)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 40, 40)
    assert [p.name for p in load_model_set(folder.parent)] == ["test"]


def test_corrupt_weights_are_refused(tmp_path):
    _, folder = _package(tmp_path)
    weights = folder / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(OsteoSegError, match="do not match the model card"):
        load_model_package(folder)


def test_card_that_does_not_fit_the_weights_is_refused(tmp_path):
    _, folder = _package(tmp_path)
    card = json.loads((folder / CARD_FILE).read_text())
    card["architecture"]["base_width"] = 8
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(OsteoSegError, match="do not fit the architecture"):
        load_model_package(folder)


def test_folders_that_are_not_packages_are_refused(tmp_path):
    with pytest.raises(OsteoSegError, match="model.json is missing"):
        load_model_package(tmp_path)
    with pytest.raises(OsteoSegError, match="no model packages"):
        load_model_set(tmp_path)
