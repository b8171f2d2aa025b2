"""`osteoseg bench`: the Segment speed benchmark (see benchmark.py), JSON and a short table."""

from __future__ import annotations

from pathlib import Path

from ..inference.backends import BACKEND_CHOICES
from ..model.devices import DEVICE_CHOICES, PRECISION_CHOICES
from .command import add_command


def run_bench(arguments) -> int:
    import json

    from ..bench.benchmark import format_table, run_benchmark

    if arguments.json:   # refused before the benchmark, not after
        from ..outputs import refuse_existing_file

        refuse_existing_file(arguments.json, arguments.force)
    figures = run_benchmark(Path(arguments.cache), device_name=arguments.device, width=arguments.width,
                            runs=arguments.runs, batch_size=arguments.batch_size, precision=arguments.precision,
                            compare=not arguments.no_compare, body_only=not arguments.no_body_crop,
                            backend=arguments.backend, members=arguments.members)
    text = json.dumps(figures, indent=1)
    if arguments.json:
        from ..atomic import write_text

        write_text(arguments.json, text + "\n")
    print(text)
    print(format_table(figures))
    return 0


def add_bench_command(commands) -> None:
    bench = add_command(
        commands, "bench", summary="Measure Segment's speed and memory on a full-size phantom case.",
        details="Prints JSON and a table: seconds per stage, FLOP/s against the measured matrix-product peak, "
                "peak memory of one Segment, and the speed-up over a straightforward baseline and MONAI.",
        examples=["osteoseg bench --runs 3", "osteoseg bench --device cuda --json gpu.json",
                  "osteoseg bench --members 5 --no-compare   # a 5-fold ensemble per label source"])
    bench.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                       help="a named device that is absent is an error (no fallback in a benchmark)")
    bench.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                       help="fp32 or bf16; auto is bf16 on CUDA and on CPUs with native bf16")
    bench.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                       help="auto: OpenVINO on the CPU when installed, else torch; a named backend that cannot run "
                       "is an error")
    bench.add_argument("--runs", type=int, default=3, help="end-to-end runs (the median is reported)")
    bench.add_argument("--batch-size", type=int, help="default: Segment's (4 on CPU, 32 on CUDA)")
    bench.add_argument("--no-body-crop", action="store_true", help="run every slice whole (body-only work off)")
    bench.add_argument("--width", type=int, default=64, help="network width (64 is the paper's)")
    bench.add_argument("--cache", default=".osteoseg-bench", help="where the case and benchmark models are kept")
    bench.add_argument("--json", help="also write the figures here")
    bench.add_argument("--force", action="store_true", help="replace the --json file if it exists")
    bench.add_argument("--members", type=int, default=1,
                       help="networks per label source: an ensemble's cost (the comparisons run only for 1)")
    bench.add_argument("--no-compare", action="store_true", help="skip the fp32, baseline and MONAI runs")
    bench.set_defaults(run=run_bench)
