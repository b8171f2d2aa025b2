"""Mutation testing of OsteoSeg's core: `make mutation` (or `.venv/bin/python Testing/mutation.py`).

mutmut (3.x) changes the code one small bug at a time (a `<` for a `<=`, a constant off by one, a
dropped call) and runs the fast tests that reach the changed function; a mutant that no test
notices "survives". mutmut rather than cosmic-ray: it forks each mutant from one process that has
already imported torch and collected the tests, and runs only the tests that reach the mutated
function, which keeps each mutant to the cost of its own tests (cosmic-ray starts a fresh interpreter
per mutant). A module at a time (`--modules`) takes minutes; every module, over an hour on two cores.

mutmut names mutants after their file's path below `./`, `src/` or `source/`, while OsteoSegLib lives
in `OsteoSeg/`; so the run happens in a workspace (`build/mutation`) holding `src/OsteoSegLib` and the
tests, refreshed from the repository on every run (mutmut would re-check only the code that changed,
not after a test changed, so each run starts afresh). Mutants that cannot change behaviour are
listed, with a one-line reason, in `Testing/mutation-equivalents.txt`; they count as neither killed
nor surviving.

Prints, per module: mutants, killed, equivalent, surviving, the score (killed / (mutants -
equivalent)), and every surviving mutant by name (`mutmut show NAME` in build/mutation shows it).
Exit status 1 when a module with mutants is below TARGET.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "build" / "mutation"
EQUIVALENTS = Path(__file__).with_name("mutation-equivalents.txt")
TARGET = 0.90
# mutmut's outcomes that turn the suite red: a failing test, a test process that crashed ("segfault") or
# ended with another unexpected status ("suspicious": e.g. aborted by a C++ exception in VTK), or tests
# that never end ("timeout": a mutant that loops forever, stopped after 5 times the tests' own time).
KILLED = ("killed", "segfault", "suspicious", "timeout")
# The core: module -> the functions in scope ("*": all). Where a module is only partly in scope, the
# rest is exercised by tests too slow to run once per mutant (registration on real-size images,
# training runs); those run in `make test`.
SCOPE = {
    "metrics": ["*"],
    "imaging": ["*"],
    "evaluation.statistics": ["*"],
    "model.preprocess": ["*"],
    "inference.predict": ["*"],
    "scene.segment_output": ["*"],
    "model.package": ["*"],
    "data.suv": ["*"],
    # The quality figure is a picture for a person (colours, sizes, title placement); what it shows and
    # how it is written are in scope: the slice it picks, its title, the full-disk test.
    "alignment.align": ["align", "align_to_folder", "highest_uptake_slice", "figure_title"],
    "alignment.registration": ["anatomy_mask", "pet_coverage", "metric_mask", "sampling_per_level",
                               "largest_displacement", "check_spacing", "_check_plausible", "save_transform",
                               "target_registration_error", "mask_centroid", "move_geometry", "one_itk_thread"],
    "scene.mrml": ["*"],
    "training.train": ["prepare_folder", "save_checkpoint", "load_checkpoint", "epoch_order",
                       "augmentation_generator", "run_record", "check_settings", "choose_split"],
    "data.cohort_validate": ["*"],
}
# The fast tests, less those that train networks: each reaches the training functions and would cost
# a mutant minutes. Training's state is tested directly (training/test_train_state.py); whole runs,
# a kill -9 and --resume are in `make test`.
FAST_TESTS = ["Testing", "-m", "not slow and not realdata", "--ignore=Testing/test_layout.py",
              "--ignore=Testing/test_slicer_compatibility.py", "--ignore=Testing/training/test_train.py",
              "--ignore=Testing/training/test_semi_supervised_training.py"]


def sync(source: Path, target: Path) -> None:
    """Make `target` a copy of `source`, copying only what changed (mutmut's cache keys on contents)."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = {p.relative_to(source) for p in source.rglob("*") if "__pycache__" not in p.parts}
    for path in sorted(target.rglob("*"), reverse=True):
        relative = path.relative_to(target)
        if relative not in wanted and "__pycache__" not in relative.parts:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for relative in sorted(wanted):
        origin, copy = source / relative, target / relative
        if origin.is_dir():
            copy.mkdir(parents=True, exist_ok=True)
        elif not copy.exists() or copy.read_bytes() != origin.read_bytes():
            shutil.copy2(origin, copy)


def prepare_workspace() -> None:
    """build/mutation: src/OsteoSegLib (and the resources it reads), Testing, OsteoSeg.py with its
    resources, and a pyproject.toml with
    the repository's pytest settings and mutmut's."""
    sync(ROOT / "OsteoSeg" / "OsteoSegLib", WORKSPACE / "src" / "OsteoSegLib")
    sync(ROOT / "OsteoSeg" / "Resources", WORKSPACE / "src" / "Resources")   # terminology, found beside the library
    sync(ROOT / "Testing", WORKSPACE / "Testing")
    # The panel's tests read OsteoSeg.py and its .ui beside ../OsteoSeg; not OsteoSegLib, which would
    # then shadow the mutated copy in src/.
    sync(ROOT / "OsteoSeg" / "Resources", WORKSPACE / "OsteoSeg" / "Resources")
    shutil.copy2(ROOT / "OsteoSeg" / "OsteoSeg.py", WORKSPACE / "OsteoSeg" / "OsteoSeg.py")
    pytest_settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    only = [f"src/OsteoSegLib/{module.replace('.', '/')}.py" for module in SCOPE]
    text = ["[tool.pytest.ini_options]", *(f"{key} = {toml_value(value)}" for key, value in pytest_settings.items()),
            "", "[tool.mutmut]", 'source_paths = ["src/OsteoSegLib"]', f"only_mutate = {toml_value(only)}",
            f'also_copy = {toml_value(["Testing/", "src/Resources/", "OsteoSeg/"])}',
            f"pytest_add_cli_args_test_selection = {toml_value(FAST_TESTS)}",
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]', "timeout_multiplier = 5.0",
            # Mutants are forked from the process that ran the tests once (fast: nothing is imported
            # again); torch's OpenMP threads would not survive fork(), so that process never starts
            # any (OMP_NUM_THREADS=1, one core per mutant).
            'process_isolation = "fork"', ""]
    target = WORKSPACE / "pyproject.toml"
    if not target.exists() or target.read_text() != "\n".join(text):
        target.write_text("\n".join(text))


def toml_value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def mutant_patterns() -> list[str]:
    """mutmut's names of the mutants in scope (with wildcards)."""
    patterns = []
    for module, functions in SCOPE.items():
        for function in functions:
            name = "*" if function == "*" else f"x_{function}__mutmut_*"
            patterns.append(f"OsteoSegLib.{module}.{name}")
    return patterns


def in_scope(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in mutant_patterns())


def read_equivalents() -> dict[str, str]:
    """name -> reason, from Testing/mutation-equivalents.txt ("NAME  reason" per line, # comments)."""
    equivalents = {}
    for line in EQUIVALENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if line:
            name, _, reason = line.partition(" ")
            if not reason.strip():
                raise SystemExit(f"{EQUIVALENTS.name}: {name} has no reason")
            equivalents[name] = reason.strip()
    return equivalents


def module_of(name: str) -> str:
    """'OsteoSegLib.data.suv.x__positive__mutmut_3' -> 'data.suv'."""
    return re.sub(r"\.(x|xǁ)[^.]*__mutmut_\d+$", "", name).removeprefix("OsteoSegLib.").split(".ǁ")[0]


def results() -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=WORKSPACE,
                          capture_output=True, text=True, check=True)
    found = {}
    for line in done.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name and in_scope(name):
            found[name] = status
    return found


def report(found: dict[str, str], equivalents: dict[str, str]) -> int:
    by_module: dict[str, Counter] = defaultdict(Counter)
    surviving: dict[str, list[str]] = defaultdict(list)
    for name, status in sorted(found.items()):
        module = module_of(name)
        by_module[module]["mutants"] += 1
        if name in equivalents:
            by_module[module]["equivalent"] += 1
        elif status in KILLED:
            by_module[module]["killed"] += 1
        else:
            by_module[module]["surviving"] += 1
            surviving[module].append(f"{name} ({status})")
    print(f"{'module':<26}{'mutants':>8}{'killed':>8}{'equiv.':>8}{'surv.':>8}{'score':>8}")
    below = 0
    for module in SCOPE:
        counts = by_module.get(module, Counter())
        counted = counts["mutants"] - counts["equivalent"]
        score = counts["killed"] / counted if counted else 1.0
        below += counted > 0 and score < TARGET
        print(f"{module:<26}{counts['mutants']:>8}{counts['killed']:>8}{counts['equivalent']:>8}"
              f"{counts['surviving']:>8}{100 * score:>7.1f}%")
    for module, names in surviving.items():
        print(f"\nsurviving in {module}:")
        print("\n".join(f"  {name}" for name in names))
    stale = sorted(name for name in equivalents if module_of(name) in SCOPE and name not in found)
    if stale:
        print(f"\n{EQUIVALENTS.name} lists mutants that no longer exist: {', '.join(stale)}")
    return 1 if below else 0


def main(argv=None) -> int:
    global WORKSPACE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-children", type=int, default=2, help="mutants checked at once (one per core)")
    parser.add_argument("--report-only", action="store_true", help="print the last run's results")
    parser.add_argument("--modules", nargs="+", choices=list(SCOPE), help="only these modules (default: all)")
    parser.add_argument("--recheck", action="store_true",
                        help="check again only the last run's surviving mutants, against the tests as they are now")
    parser.add_argument("--workspace", type=Path, default=WORKSPACE,
                        help="where mutmut works (default build/mutation); one per run, so two runs can go at once")
    arguments = parser.parse_args(argv)
    WORKSPACE = arguments.workspace.resolve()
    if arguments.modules:
        for module in set(SCOPE) - set(arguments.modules):
            del SCOPE[module]
    equivalents = read_equivalents()
    if not arguments.report_only:
        if arguments.recheck:
            names = [name for name, status in results().items() if status not in KILLED and name not in equivalents]
        else:
            names = mutant_patterns()
            shutil.rmtree(WORKSPACE / "mutants", ignore_errors=True)   # tests may have changed: check every mutant
        prepare_workspace()
        one_thread = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",   # one core per mutant
                      "OSTEOSEG_TEST_CACHE": str(WORKSPACE / "cohorts")}            # cohorts made once
        if names:
            subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(arguments.max_children),
                            *names], cwd=WORKSPACE, check=False, env=one_thread)
    return report(results(), equivalents)


if __name__ == "__main__":
    sys.exit(main())
