"""The `osteoseg` command: one parser built from one module per command family. Also reached from
Slicer's headless Python through OsteoSegTrain.py."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..cache import cache_folder
from ..errors import OsteoSegError, describe_os_error
from .align import add_align_command
from .bench import add_bench_command
from .cohort import add_cohort_commands
from .command import HelpFormatter
from .demo import add_demo_command
from .evaluate import add_crossval_command, add_evaluate_command
from .phantom import add_phantom_command
from .propose import add_propose_command
from .segment import add_segment_command
from .suv import add_suv_command
from .train import add_train_command
from .transfer import add_transfer_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osteoseg", formatter_class=HelpFormatter,
        description="Osteomyelitis segmentation in PET-CT: data, alignment, training, cross-validation, Segment.",
        epilog="examples:\n  osteoseg demo\n  osteoseg segment --ct ct.nii.gz --pet pet.nii.gz --models model-set "
               "--out results\n\n'osteoseg COMMAND --help' explains each command.")
    parser.add_argument("--version", action="version", version=f"osteoseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_phantom_command, add_cohort_commands, add_suv_command, add_align_command, add_train_command,
                add_crossval_command, add_evaluate_command, add_segment_command, add_propose_command,
                add_transfer_command, add_bench_command, add_demo_command):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line. A user error (bad input, a full disk, a read-only folder, ...) is one line
    on standard error and exit status 2; an unexpected error says where its details were written."""
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.run(arguments)
    except OsteoSegError as error:
        print(f"osteoseg: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"osteoseg: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("osteoseg: interrupted", file=sys.stderr)
        return 130
    except Exception as error:   # a defect of OsteoSeg's, not the user's: keep the details
        log = write_error_log(argv if argv is not None else sys.argv[1:])
        print(f"osteoseg: internal error ({type(error).__name__}: {error}); details are in {log}", file=sys.stderr)
        return 1


def write_error_log(argv) -> str:
    """The traceback of the error being handled, in OsteoSeg's cache folder (or said here when that
    cannot be written)."""
    import time
    import traceback

    text = f"osteoseg {__version__}: {' '.join(map(str, argv))}\n\n{traceback.format_exc()}"
    try:
        folder = cache_folder("logs")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(text, encoding="utf-8")
        return str(path)
    except OSError:
        sys.stderr.write(text)
        return "the text above"


if __name__ == "__main__":
    sys.exit(main())
