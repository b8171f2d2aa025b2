"""What makes training resumable, tested without training: the settings checks, the split, the
epoch's slice order and random streams, the checkpoint on disk, the run record and the output folder."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from OsteoSegLib.errors import OsteoSegError
from OsteoSegLib.model.preprocess import PreprocessSettings
from OsteoSegLib.outputs import OutputFolder
from OsteoSegLib.training.semi_supervised import SemiSupervisedSettings
from OsteoSegLib.training.train import (
    CHECKPOINT_FILE,
    RUN_FILE,
    STATE_FOLDER,
    TRAINING_OUTPUTS,
    Processes,
    TrainingSettings,
    augmentation_generator,
    check_settings,
    choose_split,
    epoch_order,
    load_checkpoint,
    prepare_folder,
    run_record,
    save_checkpoint,
)

SMALL = TrainingSettings(base_width=4, preprocess=PreprocessSettings(size=48))


@pytest.mark.parametrize(("changes", "message"), [
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"patience": 0}, "patience must be at least 1"),
    ({"batch_size": 0}, "batch size must be at least 1"),
    ({"base_width": 0}, "network width must be at least 1"),
    ({"learning_rate": 0.0}, "learning rate must be positive"),
    ({"threshold": 0.0}, "threshold must lie strictly between 0 and 1"),
    ({"threshold": 1.0}, "threshold must lie strictly between 0 and 1"),
    ({"fold": "all", "folds": 5}, "--fold all takes no --folds"),
    ({"fold": 1}, "--fold and --folds go together"),
    ({"folds": 5}, "--fold and --folds go together"),
    ({"fold": 0, "folds": 1}, "folds must be at least 2"),
    ({"fold": 5, "folds": 5}, "fold must be in 0..4 or 'all'"),
    ({"fold": -1, "folds": 5}, "fold must be in 0..4 or 'all'"),
    ({"inputs": ("mri",)}, "inputs ('mri',) are not valid: use 'ct', 'pet' or 'ct+pet'"),
    ({"inputs": ()}, "inputs () are not valid: use 'ct', 'pet' or 'ct+pet'"),
    ({"preprocess": PreprocessSettings(size=50)},
     "input size 50 is not divisible by 16 (the network halves it 4 times)"),
    ({"semi_supervised": SemiSupervisedSettings(), "inputs": ("pet",)},
     "semi-supervised training trains a dual-channel student: use --inputs ct+pet"),
    ({"semi_supervised": SemiSupervisedSettings(lambda_max=-1.0), "inputs": ("pet",)},
     "the consistency weight (lambda max) must not be negative; "
     "semi-supervised training trains a dual-channel student: use --inputs ct+pet"),
])
def test_settings_that_cannot_train_are_named(changes, message):
    with pytest.raises(OsteoSegError) as error:
        check_settings(replace(SMALL, **changes))
    assert str(error.value) == message


def test_settings_at_their_limits_are_accepted():
    for changes in ({"epochs": 1, "patience": 1, "batch_size": 1, "base_width": 1, "threshold": 0.01},
                    {"fold": 0, "folds": 5}, {"fold": 4, "folds": 5}, {"fold": 1, "folds": 2},
                    {"fold": "all"}, {"inputs": ("ct",)},
                    {"semi_supervised": SemiSupervisedSettings(lambda_max=0.0)}):
        check_settings(replace(SMALL, **changes))


class Ids:
    """A stand-in cohort: only the case ids matter to the split."""

    def __init__(self, count):
        self.cases = [type("Case", (), {"case_id": f"P{i:02d}"})() for i in range(count)]


def test_the_split_follows_fold_folds_or_every_patient():
    cohort = Ids(10)
    holdout = choose_split(cohort, SMALL)
    assert (len(holdout.train), len(holdout.validation), len(holdout.test)) == (7, 1, 2)
    folds = [choose_split(cohort, replace(SMALL, fold=k, folds=5)) for k in range(5)]
    assert sorted(i for split in folds for i in split.test) == [f"P{i:02d}" for i in range(10)]
    assert all(len(split.test) == 2 and not set(split.test) & set(split.train + split.validation) for split in folds)
    every = choose_split(cohort, replace(SMALL, fold="all"))
    assert every.test == () and len(every.validation) == 1 and len(every.train) == 9
    other_seed = choose_split(cohort, replace(SMALL, split_seed=1))
    assert set(other_seed.test) != set(holdout.test) and choose_split(cohort, SMALL) == holdout
    for fold in ({"fold": "all"}, {"fold": 0, "folds": 5}):          # every kind of split follows the seed
        seeded = choose_split(cohort, replace(SMALL, split_seed=1, **fold))
        assert seeded != choose_split(cohort, replace(SMALL, **fold))
        assert seeded == choose_split(cohort, replace(SMALL, split_seed=1, **fold))   # and only the seed


def test_the_slice_order_is_a_permutation_fixed_by_seed_and_epoch_and_dealt_to_ranks():
    one = epoch_order(7, 3, 2, Processes())
    assert sorted(one) == list(range(7)) and (one == epoch_order(7, 3, 2, Processes())).all()
    assert not (one == epoch_order(7, 3, 5, Processes())).all() and not (one == epoch_order(7, 4, 2, Processes())).all()
    ranks = [epoch_order(7, 3, 2, Processes(rank=r, world_size=3)) for r in range(3)]
    assert [len(r) for r in ranks] == [3, 3, 3]                       # 7 padded to 9 by wrapping
    dealt = np.empty(9, int)
    for r in range(3):
        dealt[r::3] = ranks[r]
    assert (dealt[:7] == one).all() and (dealt[7:] == one[:2]).all()   # the same order, dealt round-robin


def test_each_random_stream_is_fixed_by_seed_epoch_rank_and_stream():
    def draw(*key):
        return torch.rand(4, generator=augmentation_generator(*key)).tolist()

    reference = draw(0, 1, 0)
    assert draw(0, 1, 0) == reference and draw(0, 1, 0, 1) == reference      # stream 1 is the default
    for other in ((1, 1, 0), (0, 2, 0), (0, 1, 1), (0, 1, 0, 2)):
        assert draw(*other) != reference, other
    seeds = {augmentation_generator(0, epoch, 0).initial_seed() for epoch in range(300)}
    assert len(seeds) == 300                                                  # drawn from a wide range


class Payload:
    """An arbitrary object: unpickling it would run code of the file's choosing."""


def small_training_state():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)
    network(torch.rand(2, 2, 8, 8)).sum().backward()
    optimizer.step()
    scheduler.step()
    return network, optimizer, scheduler


def test_a_checkpoint_restores_weights_optimiser_schedule_and_counters(tmp_path):
    network, optimizer, scheduler = small_training_state()
    state = {"epoch": 3, "best_loss": 0.25, "best_epoch": 1, "stale_epochs": 2, "history": [{"epoch": 1}]}
    save_checkpoint(tmp_path / CHECKPOINT_FILE, network, optimizer, scheduler, state)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]           # no temporary left
    fresh_network = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    fresh_optimizer = torch.optim.Adam(fresh_network.parameters(), lr=1e-3)
    fresh_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(fresh_optimizer, T_max=5)
    restored = load_checkpoint(tmp_path / CHECKPOINT_FILE, fresh_network, fresh_optimizer, fresh_scheduler)
    assert restored == state
    for key, value in network.state_dict().items():
        torch.testing.assert_close(fresh_network.state_dict()[key], value, rtol=0, atol=0)
    assert fresh_scheduler.state_dict()["last_epoch"] == 1
    assert fresh_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def test_a_checkpoint_cut_short_or_holding_objects_is_refused_not_unpickled(tmp_path):
    network, optimizer, scheduler = small_training_state()
    save_checkpoint(tmp_path / "whole.pt", network, optimizer, scheduler, {"epoch": 1})
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:len(data) // 2])
    with pytest.raises(OsteoSegError) as error:
        load_checkpoint(tmp_path / "cut.pt", network, optimizer, scheduler)
    assert error.value.path == str(tmp_path / "cut.pt")
    assert re.fullmatch(r"checkpoint unreadable, cannot resume \(.*(zip|archive|central directory).*\); "
                        r"pass --force to start over", error.value.problem), error.value.problem
    torch.save({"network": network.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "payload": Payload()}, tmp_path / "objects.pt")
    with pytest.raises(OsteoSegError, match="checkpoint unreadable"):
        load_checkpoint(tmp_path / "objects.pt", network, optimizer, scheduler)


RUN = {"settings": {"epochs": 2}, "split": {"train": ["a"]}, "cohort": {"fingerprint": "f"}, "device": "cpu",
       "precision": "auto"}


def refused(message: str, path, call, *arguments, **options) -> None:
    """`call` raises OsteoSegError with exactly this problem, naming `path`."""
    with pytest.raises(OsteoSegError) as error:
        call(*arguments, **options)
    assert (error.value.problem, error.value.path) == (message, str(path))


def test_the_output_folder_takes_a_new_run_and_resumes_only_the_same_unfinished_one(tmp_path):
    out = tmp_path / "run" / "deeper"
    with OutputFolder(out) as folder:
        assert prepare_folder(folder, RUN, resume=False, force=False) is False
        assert folder.entries == set(TRAINING_OUTPUTS) and (out / STATE_FOLDER).is_dir()
        (out / RUN_FILE).write_text(json.dumps({**RUN, "status": "running"}))
        refused("output folder holds an unfinished run of these settings; pass --resume to continue it or --force "
                "to start over", out, prepare_folder, folder, RUN, resume=False, force=False)
        assert prepare_folder(folder, {**RUN, "device": "cuda"}, resume=True, force=False) is False   # no checkpoint
        (out / STATE_FOLDER / CHECKPOINT_FILE).write_bytes(b"x")
        assert prepare_folder(folder, RUN, resume=True, force=False) is True
        refused("output folder holds another run (it differs in settings, cohort); choose another folder or pass "
                "--force to replace it", out, prepare_folder, folder, {**RUN, "settings": {"epochs": 3}, "cohort": {}},
                resume=True, force=False)
        (out / RUN_FILE).write_text(json.dumps({**RUN, "status": "finished"}))
        refused("output folder holds a finished run of these settings; pass --force to retrain", out,
                prepare_folder, folder, RUN, resume=True, force=False)
        assert prepare_folder(folder, RUN, resume=False, force=True) is False
        assert not (out / RUN_FILE).exists() and (out / STATE_FOLDER).is_dir()   # cleared: a new run
        assert prepare_folder(folder, RUN, resume=True, force=True) is False     # a second start is no error


def test_a_folder_with_other_files_is_refused_even_with_force(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with OutputFolder(tmp_path / "mine") as folder:
        refused("output folder is not empty and holds no training run; choose another folder (--force only removes "
                "what OsteoSeg wrote)", tmp_path / "mine", prepare_folder, folder, RUN, resume=True, force=False)
        with pytest.raises(OsteoSegError, match="also holds notes.txt"):
            prepare_folder(folder, RUN, resume=False, force=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / RUN_FILE).write_text(json.dumps(RUN))
    (tmp_path / "other" / "notes.txt").write_text("keep")
    with OutputFolder(tmp_path / "other") as folder:              # a run file among files OsteoSeg did not write
        refused("output folder is not empty and holds no training run; choose another folder (--force only removes "
                "what OsteoSeg wrote)", tmp_path / "other", prepare_folder, folder, RUN, resume=True, force=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_the_run_record_reads_back_as_written_and_names_the_data(tiny_cohort):
    split = choose_split(tiny_cohort, SMALL)
    record = run_record(tiny_cohort, split, SMALL)
    assert record == json.loads(json.dumps(record)) and record["settings"]["inputs"] == ["ct", "pet"]
    assert record["split"]["train"] == list(split.train) and "unlabelled" not in record
    other = run_record(tiny_cohort, split, replace(SMALL, label="B"))
    assert other["cohort"]["fingerprint"] != record["cohort"]["fingerprint"]      # Label B's files differ
    assert (record["device"], record["precision"]) == ("auto", "auto")
    assert (record["cohort"]["name"], record["cohort"]["root"]) == (tiny_cohort.name, str(tiny_cohort.root))


def test_a_checkpoint_that_cannot_be_written_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    network, optimizer, scheduler = small_training_state()

    def full_disk(payload, path):
        Path(path).write_bytes(b"PK")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed\nat inline_container")

    monkeypatch.setattr(torch, "save", full_disk)
    refused("cannot write the checkpoint (PytorchStreamWriter failed writing file data/0: file write failed); is the "
            "disk full?", tmp_path / CHECKPOINT_FILE, save_checkpoint, tmp_path / CHECKPOINT_FILE, network, optimizer,
            scheduler, {"epoch": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_semi_supervised_run_record_names_its_unlabelled_patients(tiny_cohort):
    from OsteoSegLib.training.teachers import UnlabelledCases

    split = choose_split(tiny_cohort, SMALL)
    pool = UnlabelledCases([(tiny_cohort, tiny_cohort.cases[0].case_id)], {"pet": "python:m:f=/nowhere"})
    record = run_record(tiny_cohort, split, replace(SMALL, semi_supervised=SemiSupervisedSettings()), pool)
    assert record["unlabelled"] == pool.record() and record["unlabelled"]["cases"] == 1
    assert record["unlabelled"]["teachers_given"] == {"pet": {"plugin": "python:m:f", "sha256": None}}
