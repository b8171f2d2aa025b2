"""Model groups: fold models of one label source averaged before the threshold, as one model."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from helpers import oblique_ct_with_mask, random_model
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference.segment import segment_images
from OsteoSegLib.model.ensemble import ModelGroup, group_models
from OsteoSegLib.model.package import ModelPackage
from OsteoSegLib.model.preprocess import PreprocessSettings
from OsteoSegLib.scene.segment_output import provenance, segment_specs


class GradedNetwork(torch.nn.Module):
    """Probabilities that grow with the CT channel, centred at `offset`: members that disagree by a known amount."""

    def __init__(self, offset: float):
        super().__init__()
        self.register_buffer("offset", torch.tensor(offset))   # in the state: the OpenVINO cache tells them apart

    def forward(self, x):
        return 6.0 * (x[:, :1] - self.offset)


def member(name: str, source: str, seed: int, inputs=("ct", "pet"), threshold=0.5, offset=None):
    """A network with a full card: random (distinct weights per seed) or graded around `offset`."""
    model = random_model(seed=seed) if offset is None else ModelPackage(GradedNetwork(offset), {}, None)
    model.card = {"name": name, "label_source": source, "inputs": list(inputs), "threshold": threshold,
                  "preprocessing": PreprocessSettings(size=48).as_dict(),
                  "weights_sha256": hashlib.sha256(name.encode()).hexdigest(), "versions": {"osteoseg": "test"}}
    return model


def test_models_of_one_source_and_inputs_form_one_group_in_the_order_first_seen():
    a0, b0, a1 = member("A_f0", "A", 0), member("B_f0", "B", 1), member("A_f1", "A", 2)
    a_pet = member("A_pet", "A", 3, inputs=("pet",))
    groups = group_models([a0, b0, a1, a_pet])
    assert [[m.name for m in g.members] for g in groups] == [["A_f0", "A_f1"], ["B_f0"], ["A_pet"]]
    assert [g.name for g in groups] == ["A_ct+pet_ensemble_of_2", "B_f0", "A_pet"]
    ensemble = groups[0]
    assert ensemble.label_source == "A" and ensemble.inputs == ("ct", "pet")
    expected = hashlib.sha256("".join(sorted([a0.card["weights_sha256"], a1.card["weights_sha256"]])).encode())
    assert ensemble.weights_sha256 == expected.hexdigest()
    assert ModelGroup([a1, a0]).weights_sha256 == ensemble.weights_sha256      # not the order given
    assert groups[1].weights_sha256 == b0.card["weights_sha256"]             # a single model keeps its own
    assert ensemble.card["members"] == [{"name": "A_f0", "weights_sha256": a0.card["weights_sha256"]},
                                        {"name": "A_f1", "weights_sha256": a1.card["weights_sha256"]}]
    assert ensemble.card["name"] == ensemble.name and ensemble.card["label_source"] == "A"


def test_members_that_cannot_be_averaged_are_refused():
    with pytest.raises(OsteoSegError, match="'A_f0' and 'A_f1'.*differ in threshold"):
        group_models([member("A_f0", "A", 0), member("A_f1", "A", 1, threshold=0.4)])
    other = member("A_f1", "A", 1)
    other.card["preprocessing"] = PreprocessSettings(size=96).as_dict()
    with pytest.raises(OsteoSegError, match="differ in preprocessing"):
        group_models([member("A_f0", "A", 0), other])
    with pytest.raises(OsteoSegError, match="share a name"):
        group_models([member("A", "A", 0), member("A", "A", 1)])


def test_average_is_the_mean_of_the_members_maps():
    group = ModelGroup([member("m0", "A", 0), member("m1", "A", 1), member("m2", "A", 2)])
    maps = {"m0": np.array([0.9, 0.0, 0.3]), "m1": np.array([0.6, 0.0, 0.9]), "m2": np.array([0.0, 0.3, 0.0]),
            "other": np.ones(3)}
    np.testing.assert_allclose(group.average(maps), [0.5, 0.1, 0.4], atol=1e-7)


def test_segment_averages_the_members_probabilities_before_the_threshold():
    ct, _ = oblique_ct_with_mask()
    pet = ct * 0.0 + 2.0
    first, second = member("A_f0", "A", 0, offset=0.2), member("A_f1", "A", 0, offset=0.9)
    b = member("B", "B", 7, offset=0.5)
    alone = [segment_images(ct, pet, [model], device="cpu") for model in (first, second)]
    maps = [run.probabilities[model.name] for run, model in zip(alone, (first, second), strict=True)]
    assert np.abs(maps[0] - maps[1]).max() > 0.1            # the members disagree, so the test can tell
    result = segment_images(ct, pet, [first, b, second], device="cpu")
    name = "A_ct+pet_ensemble_of_2"
    assert [g.name for g in result.models] == [name, "B"]
    np.testing.assert_allclose(result.probabilities[name], (maps[0] + maps[1]) / 2, atol=2e-3)
    np.testing.assert_array_equal(result.masks[name], (result.probabilities[name] >= 0.5).astype(np.uint8))
    record = provenance(result)
    assert [m["name"] for m in record["models"]] == [name, "B"]
    assert [m["name"] for m in record["models"][0]["members"]] == ["A_f0", "A_f1"]
    assert "members" not in record["models"][1]
    specs = segment_specs(result)
    assert [s.name for s in specs] == ["Model A (high sensitivity)", "Model B (high specificity)",
                                       "A only (disagreement)"]   # an ensemble is Model A, not a member
