"""Model packages: safetensors weights, the card, and every refusal."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.inference.predict import predict_probabilities
from OsteoSegLib.model.network import Architecture, build_network
from OsteoSegLib.model.package import (
    CARD_FILE,
    WEIGHTS_FILE,
    check_state_matches,
    copy_model_package,
    intent_of,
    load_model_package,
    load_model_set,
    save_model_package,
    save_weights,
)
from safetensors import safe_open


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
    with pytest.raises(OsteoSegError, match="do not fit the architecture") as raised:
        load_model_package(folder)
    assert raised.value.path == str(folder / WEIGHTS_FILE)


def test_folders_that_are_not_packages_are_refused(tmp_path):
    with pytest.raises(OsteoSegError) as raised:
        load_model_package(tmp_path)
    assert str(raised.value) == f"{tmp_path}: not a model package: model.json is missing"
    with pytest.raises(OsteoSegError) as raised:
        load_model_set(tmp_path)
    assert str(raised.value) == f"{tmp_path}: no model packages (folders with model.json) in the model set"


def _card(folder):
    return json.loads((folder / CARD_FILE).read_text())


def _rewrite_card(folder, **changes):
    card = {**_card(folder), **changes}
    (folder / CARD_FILE).write_text(json.dumps(card))


def test_intent_names_the_two_sources_and_quotes_any_other():
    assert intent_of("A") == "high sensitivity (screening: PET hot region plus surrounding edema)"
    assert intent_of("B") == "high specificity (surgery: bone destruction meeting strong uptake)"
    assert intent_of("C") == "trained on annotation source 'C'"


def test_saved_card_carries_format_hash_and_the_callers_fields_but_not_their_weights_file(tmp_path):
    network = build_network(Architecture(2, 4)).eval()
    card = {"name": "n", "label_source": "B", "inputs": ["ct", "pet"], "architecture": Architecture(2, 4).as_dict(),
            "weights_file": "elsewhere.bin", "threshold": 0.3}
    folder = save_model_package(tmp_path / "a" / "b" / "model-B", network.state_dict(), card)
    assert folder == tmp_path / "a" / "b" / "model-B"
    text = (folder / CARD_FILE).read_text()
    saved = json.loads(text)
    assert text == json.dumps(saved, indent=2) + "\n"
    assert saved["format"] == "osteoseg-model" and saved["format_version"] == 1
    assert saved["weights_file"] == "model.safetensors" and saved["name"] == "n" and saved["threshold"] == 0.3
    assert saved["weights_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    with safe_open(str(folder / WEIGHTS_FILE), "pt") as weights:
        assert weights.metadata() == {"format": "osteoseg-model"}
        assert set(weights.keys()) == set(network.state_dict())


def test_a_failed_weights_write_is_reported_and_leaves_no_file(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def full_disk(*args, **kwargs):
        raise SafetensorError("No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", full_disk)
    network = build_network(Architecture(2, 4))
    with pytest.raises(OsteoSegError) as raised:
        save_weights(network.state_dict(), tmp_path / WEIGHTS_FILE)
    assert str(raised.value) == f"{tmp_path / WEIGHTS_FILE}: cannot write the weights (No space left on device); " \
                                "is the disk full?"
    assert list(tmp_path.iterdir()) == []


def test_weights_are_saved_from_any_tensor_layout(tmp_path):
    transposed = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()   # not contiguous
    digest = save_weights({"w": transposed.requires_grad_()}, tmp_path / WEIGHTS_FILE)
    assert digest == hashlib.sha256((tmp_path / WEIGHTS_FILE).read_bytes()).hexdigest()
    with safe_open(str(tmp_path / WEIGHTS_FILE), "pt") as weights:
        assert weights.get_tensor("w").tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]


def test_loaded_package_is_in_eval_mode_with_the_saved_weights_and_its_folder(tmp_path):
    network, folder = _package(tmp_path)
    with torch.no_grad():
        first = next(network.parameters())
        first.add_(0.25)
    save_model_package(folder, network.state_dict(), {k: v for k, v in _card(folder).items()})
    loaded = load_model_package(folder)
    assert not loaded.network.training and loaded.folder == folder and loaded.name == "test"
    for key, value in network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value), key


def test_card_format_and_version_are_checked(tmp_path):
    _, folder = _package(tmp_path)
    _rewrite_card(folder, format_version=2)
    with pytest.raises(OsteoSegError) as raised:
        load_model_package(folder)
    assert str(raised.value) == f"{folder / CARD_FILE}: not an osteoseg-model card of version <= 1"
    _rewrite_card(folder, format="something-else", format_version=1)
    with pytest.raises(OsteoSegError, match="not an osteoseg-model card"):
        load_model_package(folder)
    card = _card(folder)
    del card["format_version"]
    card["format"] = "osteoseg-model"
    (folder / CARD_FILE).write_text(json.dumps(card))
    assert load_model_package(folder).name == "test"     # an unversioned card is version 0
    (folder / CARD_FILE).write_text("{not json")
    with pytest.raises(OsteoSegError, match="model card unreadable") as raised:
        load_model_package(folder)
    assert raised.value.path == str(folder / CARD_FILE)


def test_weights_named_by_the_card_are_used_and_must_exist(tmp_path):
    _, folder = _package(tmp_path)
    (folder / WEIGHTS_FILE).rename(folder / "renamed.safetensors")
    with pytest.raises(OsteoSegError) as raised:
        load_model_package(folder)
    assert str(raised.value) == f"{folder / WEIGHTS_FILE}: weights file is missing"
    _rewrite_card(folder, weights_file="renamed.safetensors")
    assert load_model_package(folder).name == "test"
    (folder / "renamed.safetensors").rename(folder / WEIGHTS_FILE)
    card = _card(folder)
    del card["weights_file"]                     # model.safetensors unless the card says otherwise
    (folder / CARD_FILE).write_text(json.dumps(card))
    assert load_model_package(folder).name == "test"


def test_a_card_without_a_weights_hash_is_refused(tmp_path):
    _, folder = _package(tmp_path)
    card = _card(folder)
    del card["weights_sha256"]
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(OsteoSegError) as raised:
        load_model_package(folder)
    assert str(raised.value) == (f"{folder / CARD_FILE}: the model card has no weights_sha256, so the weights cannot "
                                 "be verified; a package written by OsteoSeg always has one")
    _rewrite_card(folder, weights_sha256="")
    with pytest.raises(OsteoSegError, match="has no weights_sha256"):
        load_model_package(folder)


def test_a_hash_mismatch_names_both_hashes(tmp_path):
    _, folder = _package(tmp_path)
    actual = _card(folder)["weights_sha256"]
    _rewrite_card(folder, weights_sha256="0123456789abcdef" * 4)
    with pytest.raises(OsteoSegError) as raised:
        load_model_package(folder)
    assert f"sha256 {actual[:12]}..., card says 0123456789ab..." in str(raised.value)
    assert raised.value.path == str(folder / WEIGHTS_FILE)


def test_an_unbuildable_architecture_is_a_clear_error(tmp_path):
    _, folder = _package(tmp_path)
    card = _card(folder)
    del card["architecture"]["name"]
    card["architecture"]["name"] = "transformer"
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(OsteoSegError, match="model unreadable \\(unknown architecture 'transformer'") as raised:
        load_model_package(folder)
    assert raised.value.path == str(folder / WEIGHTS_FILE)
    (folder / WEIGHTS_FILE).write_bytes(b"\x08" + bytes(20))
    _rewrite_card(folder, weights_sha256=hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest())
    with pytest.raises(OsteoSegError, match="model unreadable"):
        load_model_package(folder)


@pytest.mark.parametrize(("changes", "problem"), [
    ({"inputs": "ct"}, "inputs 'ct' are not a list of ct / pet"),
    ({"inputs": []}, "inputs [] are not a list of ct / pet"),
    ({"inputs": ["ct", "mri"]}, "inputs ['ct', 'mri'] are not a list of ct / pet"),
    ({"inputs": ["pet", "pet"]}, "inputs ['pet', 'pet'] are not a list of ct / pet"),
    ({"inputs": ["pet"]}, "inputs pet need 1 input channel(s), the architecture has 2"),
    ({"inputs": ["ct", "pet"], "architecture": "unet"},
     "inputs ct+pet need 2 input channel(s), the architecture has None"),
    ({"label_source": ""}, "it names no label_source"),
    ({"label_source": 1}, "it names no label_source"),
    ({"threshold": 0}, "threshold 0 is not between 0 and 1"),
    ({"threshold": 1}, "threshold 1 is not between 0 and 1"),
    ({"threshold": "0.5"}, "threshold '0.5' is not between 0 and 1"),
])
def test_cards_that_describe_no_usable_model_are_refused(tmp_path, changes, problem):
    _, folder = _package(tmp_path)
    _rewrite_card(folder, **changes)
    with pytest.raises(OsteoSegError) as raised:
        load_model_package(folder)
    assert str(raised.value).endswith(f"model card does not describe a usable model: {problem}"), str(raised.value)
    assert raised.value.path == str(folder / CARD_FILE)


def test_every_problem_of_a_card_is_listed_and_limits_are_exclusive(tmp_path):
    _, folder = _package(tmp_path)
    card = _card(folder)
    del card["label_source"]
    card["inputs"] = ["ct"]
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(OsteoSegError, match="usable model: inputs ct need 1 input channel.s., the architecture "
                                            "has 2; it names no label_source$"):
        load_model_package(folder)
    card = _card(folder)
    card.update(inputs=["ct", "pet"], label_source="A", threshold=0.999)
    del card["architecture"]["in_channels"]          # the default, two channels
    (folder / CARD_FILE).write_text(json.dumps(card))
    assert load_model_package(folder).inputs == ("ct", "pet")
    _rewrite_card(folder, threshold=0.001)
    assert load_model_package(folder).card["threshold"] == 0.001


def test_one_channel_model_round_trips(tmp_path):
    network = build_network(Architecture(1, 4)).eval()
    card = {"name": "pet-only", "label_source": "A", "inputs": ["pet"], "architecture": Architecture(1, 4).as_dict()}
    folder = save_model_package(tmp_path / "m", network.state_dict(), card)
    assert load_model_package(folder).inputs == ("pet",)


def test_weights_that_miss_add_or_reshape_tensors_are_named(tmp_path):
    network = build_network(Architecture(2, 4))
    expected = network.state_dict()
    keys = sorted(expected)
    state = {k: v for k, v in expected.items() if k != keys[0]}
    state["extra.weight"] = torch.zeros(1)
    state[keys[1]] = torch.zeros(3, 1)
    with pytest.raises(OsteoSegError) as raised:
        check_state_matches(network, state, tmp_path / WEIGHTS_FILE)
    message = str(raised.value)
    assert f"missing ['{keys[0]}']; unexpected ['extra.weight']; shape ['{keys[1]} (3, 1) != " \
           f"{tuple(expected[keys[1]].shape)}']" in message
    assert raised.value.path == str(tmp_path / WEIGHTS_FILE)
    only_extra = {**expected, "extra.weight": torch.zeros(1)}
    with pytest.raises(OsteoSegError, match=r"architecture in the model card \(unexpected \['extra.weight'\]\)"):
        check_state_matches(network, only_extra, tmp_path)
    check_state_matches(network, dict(expected), tmp_path)
    four_off = {k: v for k, v in expected.items() if k not in keys[:4]}
    four_off.update({f"extra{i}": torch.zeros(1) for i in range(4)})
    four_off.update({k: torch.zeros(1, 3) for k in keys[4:8]})
    with pytest.raises(OsteoSegError) as raised:
        check_state_matches(network, four_off, tmp_path)
    message = str(raised.value)                            # three of each are enough to see the problem
    reshaped = [k for k in expected if k in keys[4:8]]     # in the network's order
    assert f"missing {keys[:3]}; unexpected ['extra0', 'extra1', 'extra2']; shape ['{reshaped[0]} (1, 3) != " in message
    assert f"'{keys[3]}'" not in message and "extra3" not in message and f"'{reshaped[3]} " not in message


def test_copy_leaves_the_training_state_behind(tmp_path):
    _, folder = _package(tmp_path)
    (folder / "training").mkdir()
    (folder / "training" / "state.pt").write_bytes(b"x")
    (folder / "run.json").write_text("{}")
    (folder / "notes.txt").write_text("kept")
    copied = copy_model_package(folder, tmp_path / "set2" / "model-A")
    assert copied == tmp_path / "set2" / "model-A"
    assert sorted(p.name for p in copied.iterdir()) == ["model.json", "model.safetensors", "notes.txt"]


def test_model_set_loads_packages_in_folder_order_and_skips_other_folders(tmp_path):
    for name, source in (("b-second", "B"), ("a-first", "A")):
        network = build_network(Architecture(2, 4))
        save_model_package(tmp_path / "set" / name, network.state_dict(),
                           {"name": name, "label_source": source, "inputs": ["ct", "pet"],
                            "architecture": Architecture(2, 4).as_dict()})
    (tmp_path / "set" / "c-not-a-model").mkdir()
    (tmp_path / "set" / "readme.txt").write_text("x")
    assert [p.name for p in load_model_set(tmp_path / "set")] == ["a-first", "b-second"]
    with pytest.raises(OsteoSegError) as raised:
        load_model_set(tmp_path / "missing")
    assert str(raised.value) == f"{tmp_path / 'missing'}: model set folder does not exist"
    with pytest.raises(OsteoSegError, match=r"no model packages \(folders with model.json\) in the model set"):
        load_model_set(tmp_path / "set" / "c-not-a-model")
