"""Training one model: one label source, one set of inputs, one patient-wise split.

The method's recipe (Adam 1e-4, betas 0.9/0.999, weight decay 1e-4, cosine annealing over at most 20
epochs, early stopping after 10 epochs without a better validation loss, batch 8, 224 x 224) is the
default. Every epoch draws its slice order and augmentations from (seed, epoch) alone, and the state
at the end of each epoch is checkpointed, so a run that is killed resumes from its last completed
epoch and reaches the same final weights as an uninterrupted run on the same device.
Under `torchrun` the slices of each epoch are sharded over the processes (PyTorch DDP; NCCL on GPUs,
gloo on CPUs); only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path, write_text
from ..data.cohort import Cohort
from ..data.cohort_validate import check_cohort
from ..data.fingerprint import cohort_fingerprint
from ..data.io import csv_text
from ..data.splits import Split, all_patients_split, holdout_split, kfold_splits
from ..errors import OsteoSegError
from ..model.augment import AugmentationSettings, augment_batch
from ..model.devices import autocast_dtype, choose_device, describe
from ..model.losses import dice_bce_loss
from ..model.network import Architecture, build_network, check_input_size
from ..model.package import CARD_FILE, WEIGHTS_FILE, intent_of, save_model_package, save_weights
from ..model.preprocess import CHANNEL_ORDER, PreprocessSettings
from ..model.slice_data import SliceSet, check_label_source, join_slices, load_patient, patient_slices
from ..outputs import OutputFolder
from ..progress import CancelledError, Progress
from .patient_validation import validate_patients
from .semi_supervised import SemiSupervisedSettings, UnlabelledSlices, consistency_loss, consistency_weight
from .teachers import UnlabelledCases, check_unlabelled, semi_supervised_pool

RUN_FILE, CHECKPOINT_FILE, BEST_FILE = "run.json", "checkpoint.pt", "best.safetensors"
METRICS_FILE, CURVE_FILE = "metrics.csv", "learning_curve.png"
STATE_FOLDER = "training"
ALL_PATIENTS = "all"   # --fold all: a deployment model trained on every patient
# Everything a run writes into its folder (what --force may remove).
TRAINING_OUTPUTS = (RUN_FILE, STATE_FOLDER, METRICS_FILE, CURVE_FILE, WEIGHTS_FILE, CARD_FILE)
# What may differ between a run and its resumption (where it runs, not what it computes).
RESUMABLE_DIFFERENCES = ("device", "precision")


@dataclass(frozen=True)
class TrainingSettings:
    """Every choice of a training run; recorded in run.json and the model card."""

    label: str = "A"
    inputs: tuple[str, ...] = CHANNEL_ORDER
    epochs: int = 20
    patience: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4
    dice_weight: float = 0.5
    dice_eps: float = 1.0
    base_width: int = 64
    seed: int = 0
    split_seed: int = 0
    folds: int | None = None      # None: the method's 7:1:2 hold-out split (or every patient, fold "all")
    fold: int | str | None = None  # 0..folds-1, or "all": every patient trains, none is held out
    threshold: float = 0.5
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    preprocess: PreprocessSettings = field(default_factory=PreprocessSettings)
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    semi_supervised: SemiSupervisedSettings | None = None   # None: supervised only

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))   # tuples -> lists, as they read back from JSON

    def architecture(self) -> Architecture:
        return Architecture(in_channels=len(self.inputs), base_width=self.base_width)


@dataclass
class TrainingResult:
    """Where the model package is, how training went, and the validation figures."""

    folder: Path
    card: dict
    history: list[dict]


# ---------------------------------------------------------------- checks before any work is done


def check_settings(settings: TrainingSettings) -> None:
    """Numbers that cannot train; reported before data is read."""
    checks = [(settings.epochs >= 1, "epochs must be at least 1"),
              (settings.patience >= 1, "patience must be at least 1"),
              (settings.batch_size >= 1, "batch size must be at least 1"),
              (settings.base_width >= 1, "network width must be at least 1"),
              (settings.learning_rate > 0, "learning rate must be positive"),
              (0.0 < settings.threshold < 1.0, "threshold must lie strictly between 0 and 1"),
              (settings.fold != ALL_PATIENTS or settings.folds is None, "--fold all takes no --folds"),
              (settings.fold == ALL_PATIENTS or (settings.folds is None) == (settings.fold is None),
               "--fold and --folds go together"),
              (settings.folds is None or settings.folds >= 2, "folds must be at least 2"),
              (settings.fold in (None, ALL_PATIENTS) or (isinstance(settings.fold, int) and settings.folds is not None
                                                         and 0 <= settings.fold < settings.folds),
               f"fold must be in 0..{(settings.folds or 0) - 1} or 'all'")]
    for ok, problem in checks:
        if not ok:
            raise OsteoSegError(problem)
    unknown = [name for name in settings.inputs if name not in CHANNEL_ORDER]
    if unknown or not settings.inputs:
        raise OsteoSegError(f"inputs {settings.inputs} are not valid: use 'ct', 'pet' or 'ct+pet'")
    if settings.semi_supervised is not None:
        problems = settings.semi_supervised.problems()
        if tuple(settings.inputs) != CHANNEL_ORDER:
            problems.append("semi-supervised training trains a dual-channel student: use --inputs ct+pet")
        if problems:
            raise OsteoSegError("; ".join(problems))
    try:
        check_input_size(settings.preprocess.size, settings.architecture())
    except ValueError as error:
        raise OsteoSegError(str(error)) from None


def choose_split(cohort: Cohort, settings: TrainingSettings) -> Split:
    """The patient-wise split this run trains, validates and (later) tests on."""
    ids = [case.case_id for case in cohort.cases]
    if settings.fold == ALL_PATIENTS:
        return all_patients_split(ids, seed=settings.split_seed)
    if settings.folds is None:
        return holdout_split(ids, seed=settings.split_seed)
    return kfold_splits(ids, settings.folds, seed=settings.split_seed)[settings.fold]


def prepare_folder(folder: OutputFolder, run: dict, *, resume: bool, force: bool) -> bool:
    """Make the output folder ready for this run; True when a checkpoint is to be resumed. A folder
    holding another run, a finished run or files OsteoSeg did not write is refused; `force` clears
    what OsteoSeg wrote there (and still refuses anything else)."""
    out = folder.path
    if force:
        folder.clear()
    run_file = out / RUN_FILE
    if folder.contents():
        if not run_file.is_file() or folder.foreign():
            raise OsteoSegError("output folder is not empty and holds no training run; "
                                "choose another folder (--force only removes what OsteoSeg wrote)", path=out)
        earlier = json.loads(run_file.read_text())
        differences = [key for key in run if key not in RESUMABLE_DIFFERENCES and earlier.get(key) != run[key]]
        if differences:
            raise OsteoSegError(f"output folder holds another run (it differs in {', '.join(differences)}); "
                                "choose another folder or pass --force to replace it", path=out)
        if earlier.get("status") == "finished":
            raise OsteoSegError("output folder holds a finished run of these settings; pass --force to retrain",
                                path=out)
        if not resume:
            raise OsteoSegError("output folder holds an unfinished run of these settings; pass --resume to "
                                "continue it or --force to start over", path=out)
        return (out / STATE_FOLDER / CHECKPOINT_FILE).is_file()
    folder.record(*TRAINING_OUTPUTS)
    (out / STATE_FOLDER).mkdir(parents=True, exist_ok=True)
    return False


# ---------------------------------------------------------------- distributed set-up


@dataclass
class Processes:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_processes(device_name: str) -> tuple[Processes, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes(), choose_device(device_name)
    import torch.distributed as dist

    processes = Processes(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = choose_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return processes, device


def mean_over_processes(value: float, processes: Processes, device: torch.device) -> float:
    """The same number on every rank, so every rank takes the same early-stopping decision."""
    if processes.world_size == 1:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / processes.world_size


# ---------------------------------------------------------------- one epoch


def epoch_order(count: int, seed: int, epoch: int, processes: Processes) -> np.ndarray:
    """This rank's slice order for an epoch: a permutation drawn from (seed, epoch) only, padded by
    wrapping so that every rank gets the same number of slices, then dealt round-robin."""
    order = np.random.default_rng([seed, epoch]).permutation(count)
    total = math.ceil(count / processes.world_size) * processes.world_size
    order = np.resize(order, total)
    return order[processes.rank::processes.world_size]


def augmentation_generator(seed: int, epoch: int, rank: int, stream: int = 1) -> torch.Generator:
    """Random numbers of one epoch on one rank; stream 2 is the unlabelled slices' (so the labelled
    slices see the same augmentations with or without them)."""
    generator = torch.Generator()
    generator.manual_seed(int(np.random.default_rng([seed, epoch, rank, stream]).integers(2**62)))
    return generator


def to_device(array: np.ndarray, device: torch.device, channels_last: bool) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)
    return tensor.contiguous(memory_format=torch.channels_last) if channels_last and tensor.ndim == 4 else tensor


def train_epoch(network, optimizer, slices: SliceSet, settings: TrainingSettings, epoch: int,
                processes: Processes, device, dtype, progress: Progress,
                unlabelled: UnlabelledSlices | None = None) -> float:
    """One pass over this rank's share of the training slices; returns the mean batch loss. With an
    unlabelled pool, each step also sees as many unlabelled slices, in the same forward pass, and
    adds the teachers' consistency loss at its ramped weight."""
    network.train()
    order = epoch_order(len(slices), settings.seed, epoch, processes)
    generator = augmentation_generator(settings.seed, epoch, processes.rank)
    unlabelled_generator = augmentation_generator(settings.seed, epoch, processes.rank, stream=2)
    steps = math.ceil(len(order) / settings.batch_size)
    progress.epoch_started(epoch, settings.epochs, steps)
    losses = []
    for step in range(steps):
        if progress.cancelled():
            raise CancelledError(f"cancelled during epoch {epoch + 1}")
        chosen = np.sort(order[step * settings.batch_size:(step + 1) * settings.batch_size])
        images = to_device(slices.images[chosen], device, settings.channels_last)
        masks = to_device(slices.masks[chosen], device, False).float()
        images, masks = augment_batch(images, masks, settings.augmentation, generator)
        count = images.shape[0]
        if unlabelled is not None:
            extra, maps = unlabelled_batch(unlabelled, settings, epoch, step, processes, device, unlabelled_generator)
            images = torch.cat([images, extra])
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = network(images)
        loss = dice_bce_loss(logits[:count], masks, settings.dice_weight, settings.dice_eps)
        if unlabelled is not None:
            consistency, _ = consistency_loss(logits[count:], maps, settings.semi_supervised, unlabelled_generator)
            weight = consistency_weight(epoch + step / steps, settings.epochs, settings.semi_supervised.lambda_max)
            loss = loss + weight * consistency
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        progress.step_done(epoch, step, steps, losses[-1])
    return float(np.mean(losses))


def unlabelled_batch(unlabelled: UnlabelledSlices, settings: TrainingSettings, epoch: int, step: int,
                     processes: Processes, device, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's unlabelled slices and their teachers' maps, augmented by one transform per slice
    (the maps as soft channels, so they stay probabilities)."""
    chosen = unlabelled.batch_indices(settings.seed, epoch, step, settings.batch_size, processes.rank)
    images = to_device(unlabelled.images[chosen], device, False)
    maps = to_device(unlabelled.maps[chosen], device, False).float()
    stacked = torch.cat([images, maps], dim=1)
    stacked, _ = augment_batch(stacked, torch.zeros_like(maps[:, :1]), settings.augmentation, generator)
    images, maps = stacked[:, :images.shape[1]], stacked[:, images.shape[1]:]
    if settings.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, maps


def validation_loss(network, slices: SliceSet, settings: TrainingSettings, device, dtype) -> float:
    """Mean loss over the validation slices (all slices of the validation patients), no augmentation."""
    network.eval()
    losses, weights = [], []
    with torch.inference_mode():
        for start in range(0, len(slices), settings.batch_size):
            images = to_device(slices.images[start:start + settings.batch_size], device, settings.channels_last)
            masks = to_device(slices.masks[start:start + settings.batch_size], device, False).float()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = network(images)
            losses.append(float(dice_bce_loss(logits, masks, settings.dice_weight, settings.dice_eps)))
            weights.append(images.shape[0])
    return float(np.average(losses, weights=weights))


# ---------------------------------------------------------------- state on disk


def save_checkpoint(path: Path, network, optimizer, scheduler, state: dict) -> None:
    """The end-of-epoch state, written atomically (a kill during the write keeps the previous one)."""
    payload = {"network": network.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), **state}
    with atomic_path(path) as temporary:
        try:
            torch.save(payload, temporary)
        except RuntimeError as error:   # torch's zip writer reports a failed write (a full disk) this way
            raise OsteoSegError(f"cannot write the checkpoint ({str(error).splitlines()[0]}); is the disk full?",
                                path=path) from None


def load_checkpoint(path: Path, network, optimizer, scheduler) -> dict:
    """Restore a checkpoint without unpickling arbitrary objects (weights_only=True)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(payload.pop("network"))
        optimizer.load_state_dict(payload.pop("optimizer"))
        scheduler.load_state_dict(payload.pop("scheduler"))
    except (RuntimeError, KeyError, EOFError, OSError, pickle.UnpicklingError) as error:   # objects: refused
        raise OsteoSegError(f"checkpoint unreadable, cannot resume ({str(error).splitlines()[0]}); "
                            "pass --force to start over", path=path) from None
    return payload


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    write_text(path, csv_text(history))


# ---------------------------------------------------------------- the run


def load_split_data(cohort: Cohort, split: Split, settings: TrainingSettings, progress: Progress):
    """Training slices (lesion slices of the training patients), validation slices (all slices of
    the validation patients) and the validation patients' volumes for the 3D evaluation."""
    size, channels = settings.preprocess.size, len(settings.inputs)
    progress.message(f"reading {len(split.train)} training and {len(split.validation)} validation patients")
    train = join_slices([patient_slices(load_patient(cohort, case_id, settings.inputs, (settings.label,),
                                                     settings.preprocess), settings.label, size)
                         for case_id in split.train], channels, size)
    if len(train) == 0:
        raise OsteoSegError(f"no usable training slices: none of the {len(split.train)} training patients "
                            f"has a voxel of label {settings.label!r}", path=cohort.path("cohort.json"))
    patients = [load_patient(cohort, case_id, settings.inputs, (settings.label,), settings.preprocess)
                for case_id in split.validation]
    validation = join_slices([patient_slices(p, settings.label, size, lesion_only=False) for p in patients],
                             channels, size)
    return train, validation, patients


def run_record(cohort: Cohort, split: Split, settings: TrainingSettings,
               unlabelled: UnlabelledCases | None = None) -> dict:
    """What defines a run (settings, split, data, and any unlabelled patients): a resumed run must match it."""
    record = {"settings": settings.as_dict(), "split": asdict(split),
              "cohort": {"name": cohort.name, "root": str(cohort.root),
                         "fingerprint": cohort_fingerprint(cohort, split.train + split.validation, settings.label)},
              "device": settings.device, "precision": settings.precision}
    if settings.semi_supervised is not None:
        record["unlabelled"] = unlabelled.record()
    return json.loads(json.dumps(record))   # as it reads back from run.json


def train_model(cohort: Cohort, settings: TrainingSettings, out: str | os.PathLike, *,
                resume: bool = False, force: bool = False, progress: Progress | None = None,
                name: str | None = None, split: Split | None = None,
                unlabelled: UnlabelledCases | None = None) -> TrainingResult:
    """Train one model and write its package (model.safetensors + model.json) into `out`, with
    metrics.csv, learning_curve.png and the resumable state under training/. `split` overrides the
    one the settings choose (cross-validation passes its own). With semi-supervised settings,
    `unlabelled` names the unlabelled patients (and any given teachers)."""
    out = Path(out)
    check_settings(settings)
    split = split or choose_split(cohort, settings)
    check_label_source(cohort, split.train + split.validation, settings.label)
    check_cohort(cohort, split.train + split.validation)   # every problem, before any work
    if settings.semi_supervised is not None:
        check_unlabelled(cohort, unlabelled, settings)
    processes, device = start_processes(settings.device)
    if settings.semi_supervised is not None and processes.world_size > 1:
        raise OsteoSegError("semi-supervised training runs in one process (not under torchrun)")
    with contextlib.ExitStack() as stack:   # rank 0 owns the folder: one run at a time, only its own files
        folder = stack.enter_context(OutputFolder(out, inputs=[cohort.root], command="train")) \
            if processes.is_main else None
        return _train(cohort, settings, out, split, processes, device, folder, resume=resume, force=force,
                      progress=progress, name=name, unlabelled=unlabelled)


def _train(cohort: Cohort, settings: TrainingSettings, out: Path, split: Split, processes: Processes, device,
           folder: OutputFolder | None, *, resume: bool, force: bool, progress: Progress | None,
           name: str | None, unlabelled: UnlabelledCases | None) -> TrainingResult:
    """The run itself, inside its output folder (see train_model)."""
    progress = (progress or Progress()) if processes.is_main else Progress()   # one voice under torchrun
    dtype = autocast_dtype(device, settings.precision)
    run = run_record(cohort, split, settings, unlabelled)
    resuming = prepare_folder(folder, run, resume=resume, force=force) if processes.is_main else False
    resuming = broadcast_flag(resuming, processes, device)
    if processes.is_main:
        write_text(out / RUN_FILE, json.dumps({**run, "status": "running"}, indent=2) + "\n")
    train, validation, patients = load_split_data(cohort, split, settings, progress)
    pool, semi = None, None
    if settings.semi_supervised is not None:
        pool, semi = semi_supervised_pool(cohort, split, settings, unlabelled, out / STATE_FOLDER / "teachers",
                                          device, progress)
        pool = pool if len(pool) else None   # nothing marked: the card says the student learnt supervised only

    torch.manual_seed(settings.seed)   # the initial weights
    network = build_network(settings.architecture()).to(device)
    if settings.channels_last:
        network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate, betas=settings.betas,
                                 weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    state = {"epoch": 0, "best_loss": math.inf, "best_epoch": -1, "stale_epochs": 0, "history": []}
    checkpoint = out / STATE_FOLDER / CHECKPOINT_FILE
    if resuming:
        state = load_checkpoint(checkpoint, network, optimizer, scheduler)
        progress.message(f"resuming after epoch {state['epoch']} from {checkpoint}")
    trained = wrap_distributed(network, processes, device)

    while state["epoch"] < settings.epochs and state["stale_epochs"] < settings.patience:
        epoch = state["epoch"]
        started = time.perf_counter()
        train_loss = train_epoch(trained, optimizer, train, settings, epoch, processes, device, dtype, progress,
                                 pool)
        seconds = time.perf_counter() - started
        loss = mean_over_processes(validation_loss(network, validation, settings, device, dtype), processes, device)
        learning_rate = optimizer.param_groups[0]["lr"]
        scheduler.step()
        best = loss < state["best_loss"]
        if best:
            state.update(best_loss=loss, best_epoch=epoch, stale_epochs=0)
            if processes.is_main:
                save_weights(network.state_dict(), out / STATE_FOLDER / BEST_FILE)
        else:
            state["stale_epochs"] += 1
        record = {"epoch": epoch + 1, "train_loss": train_loss, "validation_loss": loss,
                  "learning_rate": learning_rate, "seconds": seconds,
                  "slices_per_second": len(train) / seconds, "best": best}
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if processes.is_main:
            save_checkpoint(checkpoint, network, optimizer, scheduler, state)
            write_metrics_csv(out / METRICS_FILE, state["history"])
        progress.epoch_done(record)

    return finish(out, cohort, run, settings, state, network, patients, device, dtype, processes, progress,
                  name or default_name(settings), semi)


def broadcast_flag(flag: bool, processes: Processes, device: torch.device) -> bool:
    """Rank 0's decision (e.g. whether to resume), on every rank."""
    if processes.world_size == 1:
        return flag
    import torch.distributed as dist

    tensor = torch.tensor([int(flag)], device=device)
    dist.broadcast(tensor, 0)
    dist.barrier()
    return bool(tensor.item())


def wrap_distributed(network, processes: Processes, device: torch.device):
    """The module the optimiser steps through: DDP under torchrun, the network itself otherwise."""
    if processes.world_size == 1:
        return network
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)


def default_name(settings: TrainingSettings) -> str:
    fold = "-all" if settings.fold == ALL_PATIENTS else "" if settings.folds is None else \
        f"-fold{settings.fold}of{settings.folds}"
    semi = "-semi" if settings.semi_supervised is not None else ""
    return f"model-{settings.label}-{'+'.join(settings.inputs)}{semi}{fold}"


def finish(out, cohort, run, settings, state, network, patients, device, dtype, processes, progress, name,
           semi=None):
    """Best weights -> 3D validation figures -> model package, learning curve, run marked finished."""
    from safetensors.torch import load_file

    from .learning_curve import write_learning_curve

    if processes.world_size > 1:
        import torch.distributed as dist

        dist.barrier()   # rank 0's best weights are on disk before anyone reads them
    network.load_state_dict(load_file(str(out / STATE_FOLDER / BEST_FILE)))
    validation = validate_patients(network, patients, settings, device, dtype)
    stopped_early = state["epoch"] < settings.epochs
    card = model_card(cohort, run, settings, state, validation, device, processes, name, stopped_early)
    if semi is not None:
        card["training"]["semi_supervised"] = semi
    if processes.is_main:
        save_model_package(out, network.state_dict(), card)
        write_learning_curve(state["history"], out / CURVE_FILE, title=name)
        run = json.loads((out / RUN_FILE).read_text())
        write_text(out / RUN_FILE, json.dumps({**run, "status": "finished"}, indent=2) + "\n")
    progress.message(f"best epoch {state['best_epoch'] + 1} (validation loss {state['best_loss']:.4f}); "
                     f"validation 3D Dice {validation['dice_mean']:.3f} per patient "
                     f"(all-background {validation['baselines']['all_background']['dice_mean']:.3f}, "
                     f"PET SUV >= 2.5 {validation['baselines']['pet_suv_2.5']['dice_mean']:.3f})")
    if processes.world_size > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return TrainingResult(out, card, state["history"])


def model_card(cohort, run, settings, state, validation, device, processes, name, stopped_early) -> dict:
    """Everything a user or reviewer needs to know about the model (weights hash added on save)."""
    import safetensors

    from .. import __version__

    return {
        "name": name,
        "label_source": settings.label,
        "intent": intent_of(settings.label),
        "inputs": list(settings.inputs),
        "channel_order": list(settings.inputs),
        "threshold": settings.threshold,
        "preprocessing": settings.preprocess.as_dict(),
        "architecture": settings.architecture().as_dict(),
        "training": {
            "cohort": {"name": cohort.name, "fingerprint": run["cohort"]["fingerprint"]},
            "split": run["split"], "fold": settings.fold, "folds": settings.folds,
            "purpose": split_purpose(settings, run["split"]),
            "settings": settings.as_dict(),
            "epochs_run": state["epoch"], "best_epoch": state["best_epoch"] + 1, "stopped_early": stopped_early,
            "training_slices_per_second": float(np.median([h["slices_per_second"] for h in state["history"]])),
            "device": describe(device), "precision": str(autocast_dtype(device, settings.precision) or "fp32"),
            "world_size": processes.world_size,
        },
        "validation": {"loss": state["best_loss"], **validation},
        "versions": {"osteoseg": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "safetensors": safetensors.__version__, "python": platform.python_version()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def split_purpose(settings: TrainingSettings, split: dict) -> str:
    """What the model is for, as its card says it."""
    if settings.fold == ALL_PATIENTS:
        return (f"deployment: trained on every patient ({len(split['train'])}); {len(split['validation'])} of them "
                "validated for early stopping, so its validation figures are optimistic; none was held out to test")
    if settings.folds is not None:
        return f"cross-validation fold {settings.fold} of {settings.folds}: {len(split['test'])} patient(s) held out"
    return f"hold-out split 7:1:2: {len(split['test'])} patient(s) held out to test"


def with_overrides(settings: TrainingSettings, **changes) -> TrainingSettings:
    """A copy with some fields changed (None values are ignored), for command-line options."""
    return replace(settings, **{key: value for key, value in changes.items() if value is not None})

