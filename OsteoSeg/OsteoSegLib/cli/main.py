"""The `osteoseg` command: one parser built from one module per command family. Also reached from
Slicer's headless Python through OsteoSegTrain.py."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import OsteoSegError
from .align import add_align_command
from .bench import add_bench_command
from .cohort import add_cohort_commands
from .command import HelpFormatter
from .demo import add_demo_command
from .evaluate import add_crossval_command, add_evaluate_command
from .phantom import add_phantom_command
from .segment import add_segment_command
from .suv import add_suv_command
from .train import add_train_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osteoseg", formatter_class=HelpFormatter,
        description="Osteomyelitis segmentation in PET-CT: data, alignment, training, cross-validation, Segment.",
        epilog="examples:\n  osteoseg demo\n  osteoseg segment --ct ct.nii.gz --pet pet.nii.gz --models model-set "
               "--out results\n\n'osteoseg COMMAND --help' explains each command.")
    parser.add_argument("--version", action="version", version=f"osteoseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_phantom_command, add_cohort_commands, add_suv_command, add_align_command, add_train_command,
                add_crossval_command, add_evaluate_command, add_segment_command, add_bench_command,
                add_demo_command):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one clear line and exit with status 2."""
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.run(arguments)
    except OsteoSegError as error:
        print(f"osteoseg: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
