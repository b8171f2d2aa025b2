"""`osteoseg demo`: the whole product end to end on the built-in phantom (the pipeline is in
demo_pipeline.py, imported only when the command runs)."""

from __future__ import annotations

from .command import add_command


def run_demo_command(arguments) -> int:
    from ..progress import TerminalProgress
    from .demo_pipeline import describe, quick_settings, run_demo

    settings = quick_settings(cases=arguments.cases, folds=arguments.folds, epochs=arguments.epochs)
    print(describe(run_demo(arguments.out, force=arguments.force, settings=settings, progress=TerminalProgress())))
    return 0


def add_demo_command(commands) -> None:
    demo = add_command(
        commands, "demo", summary="Run the whole product end to end on the built-in phantom (minutes on a CPU).",
        details="Phantom cohort, 3-fold cross-validation of Model A and Model B with CT-only, PET-only and "
                "dual-channel inputs, the report, a model set, and one held-out case segmented into a Slicer "
                "segmentation and scene.",
        examples=["osteoseg demo", "osteoseg demo --out demo-output --force --cases 8 --folds 2 --epochs 2"])
    demo.add_argument("--out", default="demo-output", help="output folder")
    demo.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    demo.add_argument("--cases", type=int, help="phantom cases (default 16)")
    demo.add_argument("--folds", type=int, help="cross-validation folds (default 3)")
    demo.add_argument("--epochs", type=int, help="training epochs per model (default 10)")
    demo.set_defaults(run=run_demo_command)
