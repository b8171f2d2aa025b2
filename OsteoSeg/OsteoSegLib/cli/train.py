"""`osteoseg train`: one model (label source x inputs x fold) into a model package folder."""

from __future__ import annotations

import os

from ..model.devices import DEVICE_CHOICES, PRECISION_CHOICES
from .command import add_command


def training_settings_from(arguments):
    """TrainingSettings from parsed options: the method's defaults unless an option was given."""
    from dataclasses import replace

    from ..model.augment import AugmentationSettings
    from ..model.preprocess import PreprocessSettings
    from ..model.slice_data import parse_inputs
    from ..training.train import TrainingSettings, with_overrides

    defaults = TrainingSettings()
    preprocess = with_overrides(PreprocessSettings(), size=arguments.size,
                                pet_normalisation=arguments.pet_normalisation)
    augmentation = replace(AugmentationSettings(), enabled=not arguments.no_augmentation)
    semi = None
    given = [name for name in ("unlabelled", "ct_teacher", "pet_teacher", "teachers", "selection", "lambda_max")
             if getattr(arguments, name, None) is not None]
    if given and not getattr(arguments, "semi_supervised", False):
        from ..errors import OsteoSegError

        option = given[0].replace("_", "-")
        raise OsteoSegError(f"--{option} belongs to semi-supervised training: add --semi-supervised")
    if getattr(arguments, "semi_supervised", False):
        from ..training.semi_supervised import SemiSupervisedSettings

        semi = with_overrides(SemiSupervisedSettings(), lambda_max=arguments.lambda_max,
                              teachers=tuple(arguments.teachers) if arguments.teachers else None,
                              selection=arguments.selection)
    return with_overrides(defaults, label=getattr(arguments, "label", None), semi_supervised=semi,
                          inputs=parse_inputs(arguments.inputs) if isinstance(arguments.inputs, str) else None,
                          epochs=arguments.epochs, patience=arguments.patience, batch_size=arguments.batch_size,
                          learning_rate=arguments.learning_rate, base_width=arguments.width, seed=arguments.seed,
                          split_seed=arguments.split_seed, folds=getattr(arguments, "folds", None),
                          fold=getattr(arguments, "fold", None),
                          device=arguments.device, precision=arguments.precision,
                          preprocess=preprocess, augmentation=augmentation)


def run_train(arguments) -> int:
    from ..data.cohort import load_cohort
    from ..progress import TerminalProgress
    from ..training.train import train_model

    settings = training_settings_from(arguments)
    cohort = load_cohort(arguments.cohort)
    unlabelled = None
    if settings.semi_supervised is not None:
        cohort, unlabelled = unlabelled_cases(arguments, cohort, settings.label)
    result = train_model(cohort, settings, arguments.out, resume=arguments.resume, force=arguments.force,
                         progress=TerminalProgress(), unlabelled=unlabelled)
    if os.environ.get("RANK", "0") != "0":   # under torchrun, rank 0 speaks
        return 0
    validation = result.card["validation"]
    print(f"model package: {result.folder}")
    print(f"validation 3D Dice {validation['dice_mean']:.3f} +- {validation['dice_sd']:.3f} over "
          f"{len(validation['dice_per_patient'])} patient(s); baselines: "
          + ", ".join(f"{name} {values['dice_mean']:.3f}" for name, values in validation["baselines"].items()))
    return 0


def unlabelled_cases(arguments, cohort, label: str):
    """The labelled part of the cohort and the unlabelled pool (its cases without the label, and the
    --unlabelled cohorts), with any teachers given."""
    from ..data.cohort import load_cohort
    from ..training.teachers import labelled_and_unlabelled

    others = [load_cohort(path) for path in arguments.unlabelled or []]
    given = {role: spec for role, spec in (("ct", arguments.ct_teacher), ("pet", arguments.pet_teacher)) if spec}
    return labelled_and_unlabelled(cohort, label, others, given)


def add_semi_supervised_options(parser, given_teachers: bool = True) -> None:
    """Semi-supervised training (train and crossval; crossval's teachers are each fold's own)."""
    group = parser.add_argument_group("semi-supervised training (modality teachers, after MuDuo)")
    group.add_argument("--semi-supervised", action="store_true",
                       help="also learn from unlabelled patients: the cohort's cases without the label source and "
                            "any --unlabelled cohort")
    group.add_argument("--unlabelled", nargs="+", metavar="COHORT", help="cohorts whose cases are all unlabelled")
    if given_teachers:
        group.add_argument("--ct-teacher", metavar="SPEC",
                           help="CT teacher instead of training one: a CT-only model package folder of the same label "
                                "source, or python:MODULE:FUNCTION=CHECKPOINT (a local checkpoint of your own network)")
        group.add_argument("--pet-teacher", metavar="SPEC",
                           help="PET teacher instead of training one (as --ct-teacher)")
    group.add_argument("--teachers", nargs="+", choices=("ct", "pet"),
                       help="teachers that make the target (default both)")
    group.add_argument("--selection", choices=("top_half", "threshold", "all"),
                       help="which unlabelled slices of a batch teach: the better-agreeing half (default), agreement "
                            ">= 0.5, or all")
    group.add_argument("--lambda-max", type=float, help="final weight of the consistency loss (default 0.1)")


def fold_value(text: str):
    """--fold: a fold number or 'all'."""
    import argparse

    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fold number or 'all', got {text!r}") from None


def add_train_command(commands) -> None:
    train = add_command(
        commands, "train", summary="Train one model (a label source and inputs) on a cohort into a model package.",
        details="Defaults are the method's (Adam 1e-4, cosine over 20 epochs, early stopping after 10, batch 8, "
                "224 x 224, width 64). A stopped run continues with --resume. Under torchrun the epochs are "
                "shared over the processes (DDP).",
        examples=["osteoseg train my-cohort --label A --out models/A",
                  "osteoseg train my-cohort --label B --inputs ct+pet --fold 2 --folds 5 --out cv/B-fold2",
                  "osteoseg train my-cohort --label A --fold all --out models/A   # every patient: the model to use",
                  "osteoseg train my-cohort --label A --semi-supervised --unlabelled more-pet-ct --out models/A-semi",
                  "torchrun --nproc-per-node 4 -m OsteoSegLib.cli train my-cohort --label A --out models/A"])
    train.add_argument("cohort", help="cohort folder (with cohort.json)")
    train.add_argument("--label", required=True, help="label source to learn, e.g. A or B")
    train.add_argument("--inputs", default="ct+pet", help="ct, pet or ct+pet")
    train.add_argument("--out", required=True, help="model package folder (empty, or a run to --resume)")
    train.add_argument("--folds", type=int, help="cross-validation: number of folds (default: 7:1:2 hold-out)")
    train.add_argument("--fold", type=fold_value,
                       help="which fold to train, 0..folds-1; or 'all': every patient trains (the model to use)")
    add_training_options(train)
    add_semi_supervised_options(train)
    train.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    train.add_argument("--force", action="store_true", help="clear --out and start over")
    train.set_defaults(run=run_train)


def add_training_options(parser) -> None:
    """The options shared by `train` and `crossval` (each defaults to the method's value)."""
    parser.add_argument("--epochs", type=int, help="most epochs (default 20)")
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 10)")
    parser.add_argument("--batch-size", type=int, help="slices per batch and process (default 8)")
    parser.add_argument("--learning-rate", type=float, help="Adam learning rate (default 1e-4)")
    parser.add_argument("--width", type=int, help="features of the first level (default 64, the paper's)")
    parser.add_argument("--size", type=int, help="slice size for the network (default 224)")
    parser.add_argument("--pet-normalisation", choices=("minmax", "fixed"), help="default minmax (the method's)")
    parser.add_argument("--seed", type=int, help="seed for weights, slice order and augmentation (default 0)")
    parser.add_argument("--split-seed", type=int, help="seed of the patient-wise split (default 0)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, help="default auto: cuda, then mps, then cpu")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, help="default auto: bf16 on CUDA, else fp32")
    parser.add_argument("--no-augmentation", action="store_true", help="train without augmentation")
