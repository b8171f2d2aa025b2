"""OsteoSegTrain: OsteoSeg's headless companion module (retraining, cross-validation, evaluation).

Run from Slicer without a window, with the same commands and options as the plain `osteoseg`:

    Slicer --no-main-window --python-script <path>/OsteoSegTrain/OsteoSegTrain.py -- phantom out --cases 20

The exit status is the command's (non-zero on failure); progress goes to stdout.
"""

import os
import sys

try:
    from slicer.ScriptedLoadableModule import *
except ImportError:  # Imported outside a Slicer module context (e.g. only the entry point is used).
    ScriptedLoadableModule = object


class OsteoSegTrain(ScriptedLoadableModule):
    """A module with no panel of its own: it is driven from the command line."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "OsteoSeg Train"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["OsteoSeg contributors"]
        self.parent.helpText = (
            "Headless retraining and cross-evaluation for OsteoSeg. Run Slicer with --no-main-window "
            "--python-script OsteoSegTrain.py -- COMMAND ... (the commands of `osteoseg --help`).")
        self.parent.acknowledgementText = (
            "Method: Cross-Source Supervision for Bone Infection Segmentation in Dual-Modality PET-CT "
            "(arXiv 2605.16373, 2026).")
        self.parent.hidden = True


def _commandLineArguments(argv):
    """The arguments meant for `osteoseg`: everything after the script path, without a leading '--'."""
    arguments = list(argv[1:])
    return arguments[1:] if arguments[:1] == ["--"] else arguments


def libraryFolder(moduleFolder):
    """Where OsteoSegLib is: beside this file in a packaged extension (Slicer installs every scripted
    module of an extension into one folder), in the sibling OsteoSeg folder in a source tree."""
    for folder in (moduleFolder, os.path.join(os.path.dirname(moduleFolder), "OsteoSeg")):
        if os.path.isdir(os.path.join(folder, "OsteoSegLib")):
            return folder
    return None


def runCommandLine(argv):
    """Run an `osteoseg` command; returns its exit status."""
    folder = libraryFolder(os.path.dirname(os.path.abspath(__file__)))
    if folder is None:
        print("OsteoSegLib was not found beside OsteoSegTrain.py nor in ../OsteoSeg", file=sys.stderr)
        return 2
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        import OsteoSegLib  # noqa: F401  (refuses Python < 3.10, i.e. 3D Slicer 5.8 and older, saying why)
    except ImportError as error:
        print(error, file=sys.stderr)
        return 2
    from OsteoSegLib.cli import main

    return main(_commandLineArguments(argv))


if __name__ == "__main__":
    status = runCommandLine(sys.argv)
    try:
        import slicer.util

        slicer.util.exit(status)  # leaves Slicer's event loop with this status
    except (ImportError, AttributeError):
        sys.exit(status)
