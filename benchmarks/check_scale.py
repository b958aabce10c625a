"""Benchmark ``tokenctl check`` over a large inventory.

Fills throw-away homes with synthetic tokens exactly as ``list_overview.py`` does (same
generator, same seed), then times real subprocesses of ``tokenctl check --json`` and
``tokenctl check`` (stdout to a pipe) interleaved with the baseline
``python -c "import typer, rich"`` on the same interpreter, and checks the bar:

* ``tokenctl check --json`` with 10,000 tokens takes at most 0.6 s (median).

It also checks that ``check`` (without ``--probe``) imports none of authlib, httpx2 and
keyring: it asks no provider and reads no secret.
Exit status: 0 when every check passes, 1 when one fails, 2 when the benchmark cannot run.
This is a script, not a test; run it by hand (see benchmarks/README.md)::

    python benchmarks/check_scale.py [--rounds 7] [--sizes 1000,10000] [--keep-homes]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from list_overview import (
    BASELINE_CODE,
    LIST_PROBE,
    BenchmarkError,
    Case,
    Check,
    Timing,
    benchmark_parser,
    child_environment,
    entry,
    filled_and_timed,
    imports_check,
    parse_sizes,
    passed,
    report,
)

#: ``tokenctl check --json`` with this many tokens must take at most SECONDS_LIMIT.
SECONDS_SIZE = 10_000
SECONDS_LIMIT = 0.6
#: ``check``'s documented exit codes: all fine, some expiring, some failing.
CHECK_EXIT_CODES = frozenset({0, 10, 11})


@dataclass(frozen=True)
class CheckCase(Case):
    """``tokenctl check``: exit codes 10 and 11 report findings, they are no failure."""

    def run(self, cwd: Path) -> subprocess.CompletedProcess[bytes]:
        """Run the command once; fail on an exit code ``check`` does not document."""
        result = subprocess.run(self.argv, cwd=cwd, env=dict(self.env), capture_output=True)
        if self.size is not None and result.returncode not in CHECK_EXIT_CODES:
            raise BenchmarkError(
                f"{self.label}: exit status {result.returncode}\n"
                + result.stderr.decode("utf-8", "replace")
            )
        if self.size is None and result.returncode != 0:
            raise BenchmarkError(f"{self.label}: exit status {result.returncode}")
        return result

    def check_output(self, stdout: bytes) -> None:
        """Make sure ``check --json`` assessed every token (so the timing measures real work)."""
        if self.size is None or not self.as_json:
            return
        report = json.loads(stdout)["check"]
        seen = report["checked"] + report["skipped_not_effective"]
        if seen != self.size:
            raise BenchmarkError(f"{self.label}: looked at {seen} tokens, expected {self.size}")
        if not report["tokens"]:
            raise BenchmarkError(f"{self.label}: found nothing to report in synthetic data")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of this script."""
    parser = benchmark_parser(
        "Time `tokenctl check` against `python -c 'import typer, rich'`.", rounds=7
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[1_000, SECONDS_SIZE],
        help="token counts to fill homes with (default 1000,10000)",
    )
    parser.add_argument(
        "--keep-homes",
        action="store_true",
        help="keep the filled homes and print their paths (to profile against them)",
    )
    return parser.parse_args(argv)


def build_cases(script: Path, homes: Mapping[int, Path], pycache: Path) -> list[Case]:
    """The baseline first, then ``check --json`` and ``check`` for every size."""
    cases: list[Case] = [
        CheckCase(
            label=f'baseline: python -c "{BASELINE_CODE}"',
            argv=(sys.executable, "-c", BASELINE_CODE),
            env=child_environment(None, pycache),
        )
    ]
    for size, home in homes.items():
        env = child_environment(home, pycache)
        cases.append(
            CheckCase(
                f"tokenctl check --json, {size:,} tokens",
                (str(script), "check", "--json"),
                env,
                size,
                as_json=True,
            )
        )
        cases.append(
            CheckCase(f"tokenctl check, {size:,} tokens", (str(script), "check"), env, size)
        )
    return cases


def imported_modules(env: Mapping[str, str], cwd: Path, *args: str) -> list[str]:
    """Every module ``tokenctl ARGS`` has imported when it is done (exit 0, 10 or 11)."""
    result = subprocess.run(
        (sys.executable, "-c", LIST_PROBE, *args), cwd=cwd, env=dict(env), capture_output=True
    )
    try:
        report = json.loads(result.stderr.decode("utf-8", "replace").splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchmarkError(
            "an import probe printed no module list:\n" + result.stderr.decode("utf-8", "replace")
        ) from None
    if report["exit"] not in CHECK_EXIT_CODES | {None}:
        raise BenchmarkError(f"an import probe: tokenctl exited with {report['exit']}")
    modules: list[str] = report["modules"]
    return modules


def seconds_check(timings: Sequence[Timing]) -> Check:
    """``tokenctl check --json`` with SECONDS_SIZE tokens against SECONDS_LIMIT."""
    name = f"tokenctl check --json, {SECONDS_SIZE:,} tokens <= {SECONDS_LIMIT:.1f} s"
    timing = next((t for t in timings if t.case.size == SECONDS_SIZE and t.case.as_json), None)
    if timing is None:
        return Check("SKIP", f"{name}: size not in --sizes")
    return Check(passed(timing.median <= SECONDS_LIMIT), f"{name}: median {timing.median:.3f} s")


def run(options: argparse.Namespace) -> int:
    """Fill the homes, time the cases, check the bars and print the report."""
    sizes: list[int] = options.sizes
    with filled_and_timed(options, build_cases) as (workdir, homes, pycache, timings):
        checks = [seconds_check(timings)]
        probe_size = min(sizes)
        command = f"tokenctl check --json, {probe_size:,} tokens"
        modules = imported_modules(
            child_environment(homes[probe_size], pycache), workdir, "check", "--json"
        )
        checks.append(imports_check(command, modules))
        return report(checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return entry(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
