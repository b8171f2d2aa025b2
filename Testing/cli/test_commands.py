"""Command-line behaviour shared by the commands, and the OsteoSegTrain entry."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from conftest import ROOT
from OsteoSegLib.cli import main
from OsteoSegLib.cli.command import HelpFormatter
from OsteoSegLib.cli.main import build_parser


def test_phantom_command_prints_agreement_and_writes_overview(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["phantom", str(out), "--cases", "2", "--seed", "3", "--shape", "48", "48", "20",
                 "--spacing", "4", "4", "6", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "kappa A-B" in printed and "case_001" in printed
    assert (out / "cohort.json").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["--cases", "0"], "number of cases must be at least 1"),
    (["--size", "medium"], "unknown phantom size 'medium'"),
    (["--shape", "-5", "96", "40"], "too small"),
])
def test_phantom_command_reports_bad_input_in_one_line(tmp_path, capsys, arguments, message):
    assert main(["phantom", str(tmp_path / "x"), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("osteoseg: error:") and message in error and "\n" not in error
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_osteosegtrain_script_runs_osteoseg_commands(tmp_path):
    """The same entry Slicer runs with --python-script, here under plain Python."""
    script = ROOT / "OsteoSegTrain" / "OsteoSegTrain.py"
    command = [sys.executable, str(script), "--", "phantom", str(tmp_path / "c"), "--cases", "1", "--shape",
               "48", "48", "20", "--spacing", "4", "4", "6", "--no-overview"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert (tmp_path / "c" / "cohort.json").is_file()
    failed = subprocess.run(command[:4] + [str(tmp_path / "d"), "--cases", "0"], capture_output=True, text=True,
                            timeout=120)
    assert failed.returncode == 2 and "number of cases" in failed.stderr


def every_command(parser, prefix=("osteoseg",)):
    """(command words, parser) for every command and sub-command of the `osteoseg` parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*prefix, name), child
                yield from every_command(child, (*prefix, name))


def option_helps(text: str) -> list[str]:
    """Each option's help entry of a --help text, continuation lines joined."""
    entries = []
    for line in text.split("options:", 1)[-1].split("examples:", 1)[0].splitlines():
        if line.startswith("  -"):
            entries.append(line.strip())
        elif entries and line.startswith("    "):
            entries[-1] += " " + line.strip()
    return entries


def test_every_command_has_a_summary_an_example_and_each_default_once():
    commands = dict(every_command(build_parser()))
    assert {("osteoseg", "train"), ("osteoseg", "cohort", "import-dicom"), ("osteoseg", "demo")} <= set(commands)
    for words, parser in commands.items():
        text = parser.format_help()
        assert parser.description and parser.description.splitlines()[0].endswith("."), words
        if words != ("osteoseg", "cohort"):   # the group's actions carry the examples of their own
            assert f"  {' '.join(words)} " in (parser.epilog or ""), f"{words}: no example in the epilog"
        assert "(default: None)" not in text, words
        for entry in option_helps(text):
            assert entry.count("default") <= 1, f"{words}: {entry}"


def test_the_help_formatter_shows_defaults_that_the_text_does_not_state():
    """The formatter adds a default exactly where one is worth showing (a mutant that always or never
    adds it fails here)."""
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="end-to-end runs")
    parser.add_argument("--epochs", type=int, help="most epochs (default 20)")
    parser.add_argument("--labels", nargs="+", default=["A", "B"], help="label sources")
    parser.add_argument("--force", action="store_true", help="replace")
    helps = {entry.split()[0]: entry for entry in option_helps(parser.format_help())}
    assert helps["--runs"].endswith("end-to-end runs (default: 3)")
    assert helps["--epochs"].endswith("most epochs (default 20)")
    assert helps["--labels"].endswith("label sources (default: A B)")
    assert helps["--force"].endswith("replace")


@pytest.mark.slow
def test_osteosegtrain_finds_the_library_in_a_packaged_extension_and_in_a_source_tree(tmp_path):
    """Slicer installs every scripted module of an extension into one folder (OsteoSegLib beside
    OsteoSegTrain.py); a clone keeps it in ../OsteoSeg."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("OsteoSegTrainModule", ROOT / "OsteoSegTrain" / "OsteoSegTrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    packaged = tmp_path / "qt-scripted-modules"
    (packaged / "OsteoSegLib").mkdir(parents=True)
    assert module.libraryFolder(str(packaged)) == str(packaged)
    source = tmp_path / "clone"
    (source / "OsteoSeg" / "OsteoSegLib").mkdir(parents=True)
    (source / "OsteoSegTrain").mkdir()
    assert module.libraryFolder(str(source / "OsteoSegTrain")) == str(source / "OsteoSeg")
    assert module.libraryFolder(str(tmp_path / "elsewhere")) is None
