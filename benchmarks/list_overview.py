"""Benchmark the overview (``tokenctl list``) against the cost of starting typer and rich.

Fills throw-away homes with synthetic tokens, then times real subprocesses of
``tokenctl list`` (stdout to a pipe) and ``tokenctl list --json`` interleaved with the
baseline ``python -c "import typer, rich"`` on the same interpreter, and checks the bars:

* ``tokenctl list`` with 1,000 tokens takes at most 2.0 times the baseline (median);
* ``tokenctl list --json`` with 10,000 tokens takes at most 0.6 s (median).

It also checks that ``tokenctl list`` imports none of authlib, httpx2 and keyring.
Exit status: 0 when every check passes, 1 when one fails, 2 when the benchmark cannot run.
This is a script, not a test; run it by hand (see benchmarks/README.md)::

    python benchmarks/list_overview.py [--rounds 7] [--sizes 1000,10000] [--keep-homes]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.models import Actor, LifecycleState, Token
from tokenctl.paths import HOME_ENV, resolve_paths
from tokenctl.services.tokens import CODE_ALPHABET

#: ``tokenctl list`` with this many tokens must take at most LIST_RATIO_LIMIT x baseline.
LIST_RATIO_SIZE = 1_000
LIST_RATIO_LIMIT = 2.0
#: ``tokenctl list --json`` with this many tokens must take at most JSON_SECONDS_LIMIT.
JSON_SECONDS_SIZE = 10_000
JSON_SECONDS_LIMIT = 0.6
#: Modules the overview must never import (OAuth, HTTP and the OS keyring).
FORBIDDEN_PACKAGES = ("authlib", "httpx2", "keyring")

BASELINE_CODE = "import typer, rich"
SEED = 20_240_601
EXIT_OK, EXIT_BAR_FAILED, EXIT_CANNOT_RUN = 0, 1, 2

#: The end of every import probe: every module imported so far, as JSON on stderr's last line.
_REPORT_MODULES = """
modules = sorted(sys.modules)
import json
sys.stdout.flush()
sys.stderr.write("\\n" + json.dumps({"exit": code, "modules": modules}) + "\\n")
"""
#: Runs the CLI's own entry point (the one the console script calls), then reports.
LIST_PROBE = (
    """
import sys
from tokenctl.__main__ import main
sys.argv = ["tokenctl", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
"""
    + _REPORT_MODULES
)
#: Does what the baseline does, then reports.
BASELINE_PROBE = f"import sys\n{BASELINE_CODE}\ncode = 0\n" + _REPORT_MODULES

CUSTOMERS = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "stark",
    "wayne",
    "muller-gmbh",
    "societe-generale",
    "hooli",
    "vandelay",
)
PURPOSES = (
    "Bank statement import",
    "Payroll export",
    "Invoice upload",
    "VAT return filing",
    "Payment initiation",
    "Exchange rates feed",
    "Expense claims sync",
    "Customer master data",
)
QUALIFIERS = (
    "",
    "",
    "",
    " (prod)",
    " (test)",
    " [sandbox]",
    ", Müller & Söhne KG",
    " for ÉTS Dupont",
)


class BenchmarkError(Exception):
    """The benchmark cannot run or its subject misbehaved (exit status 2)."""


@dataclass(frozen=True)
class Case:
    """One command line to time."""

    label: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    size: int | None = None
    as_json: bool = False

    def run(self, cwd: Path) -> subprocess.CompletedProcess[bytes]:
        """Run the command once with stdout and stderr to pipes; fail on a non-zero exit."""
        result = subprocess.run(self.argv, cwd=cwd, env=dict(self.env), capture_output=True)
        if result.returncode != 0:
            raise BenchmarkError(
                f"{self.label}: exit status {result.returncode}\n"
                + result.stderr.decode("utf-8", "replace")
            )
        return result

    def check_output(self, stdout: bytes) -> None:
        """Make sure the command listed every token (so the timing measures real work)."""
        if self.size is None:
            return
        listed = len(json.loads(stdout)["tokens"]) if self.as_json else stdout.count(b"\n")
        if listed != self.size:
            raise BenchmarkError(f"{self.label}: listed {listed} tokens, expected {self.size}")


@dataclass
class Timing:
    """Wall-clock samples of one case, in seconds."""

    case: Case
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median of the samples."""
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        """Fastest sample."""
        return min(self.samples)


@dataclass(frozen=True)
class Check:
    """The verdict on one bar."""

    verdict: Literal["PASS", "FAIL", "SKIP"]
    text: str


def parse_sizes(text: str) -> list[int]:
    """Parse ``--sizes``: comma-separated positive token counts (``1000,10000``)."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("give one or more positive numbers, e.g. 1000,10000")
    return sorted(set(sizes))


def positive_int(text: str) -> int:
    """Parse a count of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def benchmark_parser(
    description: str, *, rounds: int, rounds_help: str | None = None
) -> argparse.ArgumentParser:
    """A benchmark's command line: its description, the exit statuses and ``--rounds``."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Exit status: 0 all checks pass, 1 a check fails, 2 the benchmark cannot run.",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=rounds,
        help=rounds_help
        or f"timed runs of every case (default {rounds}), after one untimed warm-up round",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of this script."""
    parser = benchmark_parser(
        "Time `tokenctl list` against `python -c 'import typer, rich'`.", rounds=7
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[LIST_RATIO_SIZE, JSON_SECONDS_SIZE],
        help="token counts to fill homes with (default 1000,10000)",
    )
    parser.add_argument(
        "--keep-homes",
        action="store_true",
        help="keep the filled homes and print their paths (to profile against them)",
    )
    return parser.parse_args(argv)


# -- filling a home ----------------------------------------------------------------------


def synthetic_token(rng: random.Random, index: int, now: datetime) -> tuple[Token, datetime]:
    """A realistic token record and the moment it was added.

    Roughly: 40% ``basic-credentials`` (always an identifier), 60% ``api-key``; expiry
    15% in the past, 10% within the 7-day expiring window, 45% far ahead, 30% none;
    10% not effective, 3% marked invalid, 75% with a description.
    """
    customer = rng.choice(CUSTOMERS)
    created = now - timedelta(days=rng.uniform(1, 730))
    basic = rng.random() < 0.4
    roll = rng.random()
    if roll < 0.15:
        expires_at: datetime | None = now - timedelta(hours=rng.uniform(1, 24 * 400))
    elif roll < 0.25:
        expires_at = now + timedelta(hours=rng.uniform(1, 24 * 7 - 1))
    elif roll < 0.70:
        expires_at = now + timedelta(days=rng.uniform(8, 730))
    else:
        expires_at = None
    invalid = rng.random() < 0.03
    code = "".join(rng.choice(CODE_ALPHABET) for _ in range(16))
    token = Token(
        number=0,  # assigned by the inventory
        name=f"{customer}-{index:05d}",
        authentication_code="-".join(code[i : i + 4] for i in range(0, 16, 4)),
        definition="basic-credentials" if basic else "api-key",
        description=(
            f"{rng.choice(PURPOSES)}, {customer}{rng.choice(QUALIFIERS)}"
            if rng.random() < 0.75
            else None
        ),
        identifier=(
            f"svc-{customer}-{index:05d}"
            if basic
            else (f"client-{rng.getrandbits(32):08x}" if rng.random() < 0.25 else None)
        ),
        account=f"{rng.randrange(10**7, 10**8)}" if rng.random() < 0.3 else None,
        state=LifecycleState.NOT_EFFECTIVE if rng.random() < 0.1 else LifecycleState.EFFECTIVE,
        expires_at=expires_at,
        secret_set_at=created if rng.random() < 0.95 else None,
        invalid_at=created + timedelta(days=1) if invalid else None,
        invalid_reason="the provider answered 401 Unauthorized" if invalid else None,
        attributes={"environment": "production"} if rng.random() < 0.1 else {},
    )
    return token, created


def relax_durability(inventory: SqliteInventory) -> None:
    """Skip the fsync of every commit while filling a throw-away home.

    The inventory commits each ``add`` with ``synchronous = FULL``; 10,000 fsyncs take
    seconds on an SSD and minutes on a slow disk. The data is disposable, so the
    benchmark turns that off on its own connection (reads by ``tokenctl list`` are not
    affected). If the private attribute ever changes, filling is merely slower.
    """
    connection = getattr(inventory, "_connection", None)
    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA synchronous = OFF")


def fill_home(home: Path, size: int) -> float:
    """Add ``size`` synthetic tokens through the inventory API; return the seconds taken."""
    started = time.perf_counter()
    rng = random.Random(SEED + size)
    now = datetime.now(UTC)
    actor = Actor(user="bench", unit="bench-host")
    inventory = SqliteInventory(resolve_paths(None, {HOME_ENV: str(home)}).inventory_file)
    try:
        relax_durability(inventory)
        for index in range(1, size + 1):
            token, created = synthetic_token(rng, index, now)
            inventory.add(token, actor, created)
    finally:
        inventory.close()
    return time.perf_counter() - started


# -- running -----------------------------------------------------------------------------


def console_script() -> Path:
    """The ``tokenctl`` console script installed next to this interpreter.

    Users run the console script, so that is what is timed (``python -m tokenctl`` would
    skip the script's own imports and go through runpy instead).
    """
    script = Path(sys.executable).parent / "tokenctl"
    if not script.is_file():
        raise BenchmarkError(
            f"no tokenctl console script next to {sys.executable}; "
            "install the project into this environment (pip install -e .)"
        )
    with script.open("rb") as handle:
        first_line = handle.readline().decode("utf-8", "replace").strip()
    interpreter = first_line.removeprefix("#!").split()[0] if first_line.startswith("#!") else ""
    # pip writes a /bin/sh trampoline when the interpreter path is long: only check pythons.
    same_dir = Path(interpreter).parent == Path(sys.executable).parent
    if Path(interpreter).name.startswith("python") and not same_dir:
        print(f"warning: {script} runs {interpreter}, not {sys.executable}", file=sys.stderr)
    return script


def child_environment(home: Path | None, pycache: Path) -> dict[str, str]:
    """The environment of every timed process: ours, minus what would change the work.

    Byte code is cached under ``pycache`` (written during the warm-up round), so every
    timed run loads compiled modules as an installed tokenctl does, even where
    PYTHONDONTWRITEBYTECODE is set, and nothing is written into the source tree.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TOKENCTL_")
        and key
        not in {
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONPROFILEIMPORTTIME",
            "PYTHONDEVMODE",
            "PYTHONTRACEMALLOC",
        }
    }
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    # Belt and braces: should the overview ever reach for the keyring, it fails loudly
    # instead of touching the real one.
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    if home is not None:
        env[HOME_ENV] = str(home)
    return env


def build_cases(script: Path, homes: Mapping[int, Path], pycache: Path) -> list[Case]:
    """The baseline first, then ``list`` and ``list --json`` for every size."""
    cases = [
        Case(
            label=f'baseline: python -c "{BASELINE_CODE}"',
            argv=(sys.executable, "-c", BASELINE_CODE),
            env=child_environment(None, pycache),
        )
    ]
    for size, home in homes.items():
        env = child_environment(home, pycache)
        cases.append(Case(f"tokenctl list, {size:,} tokens", (str(script), "list"), env, size))
        cases.append(
            Case(
                f"tokenctl list --json, {size:,} tokens",
                (str(script), "list", "--json"),
                env,
                size,
                as_json=True,
            )
        )
    return cases


def round_orders(cases: Sequence[Case], rounds: int) -> Iterator[Sequence[Case]]:
    """Every case once per round; the order reverses each round to cancel drift."""
    for number in range(rounds):
        yield cases if number % 2 == 0 else cases[::-1]


def measure(cases: Sequence[Case], rounds: int, cwd: Path) -> list[Timing]:
    """One untimed warm-up run per case (checking its output), then ``rounds`` timed rounds."""
    for case in cases:
        case.check_output(case.run(cwd).stdout)
    timings = {case.label: Timing(case) for case in cases}
    for order in round_orders(cases, rounds):
        for case in order:
            started = time.perf_counter()
            case.run(cwd)
            timings[case.label].samples.append(time.perf_counter() - started)
    return [timings[case.label] for case in cases]


def imported_modules(probe: str, env: Mapping[str, str], cwd: Path, *args: str) -> list[str]:
    """Every module a probe (``LIST_PROBE``, ``BASELINE_PROBE``) has imported at its end."""
    result = subprocess.run(
        (sys.executable, "-c", probe, *args), cwd=cwd, env=dict(env), capture_output=True
    )
    try:
        report = json.loads(result.stderr.decode("utf-8", "replace").splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchmarkError(
            "an import probe printed no module list:\n" + result.stderr.decode("utf-8", "replace")
        ) from None
    if report["exit"] not in (0, None):
        raise BenchmarkError(f"an import probe: tokenctl exited with {report['exit']}")
    modules: list[str] = report["modules"]
    return modules


def packages_beyond(modules: Sequence[str], baseline: Sequence[str]) -> list[str]:
    """Top-level packages in ``modules`` but not ``baseline``, other than stdlib and tokenctl."""
    tops = {name.partition(".")[0] for name in modules}
    known = {name.partition(".")[0] for name in baseline} | set(sys.stdlib_module_names)
    return sorted(
        name
        for name in tops - known - {"__main__", "tokenctl"}
        if not name.startswith("_sysconfigdata")  # stdlib's, named after the platform
    )


# -- verdicts and report -----------------------------------------------------------------


def passed(ok: bool) -> Literal["PASS", "FAIL"]:
    """The verdict for a bar that was measured."""
    return "PASS" if ok else "FAIL"


def ratio_check(timings: Sequence[Timing], baseline: Timing) -> Check:
    """``tokenctl list`` with LIST_RATIO_SIZE tokens against LIST_RATIO_LIMIT x baseline."""
    name = f"tokenctl list, {LIST_RATIO_SIZE:,} tokens <= {LIST_RATIO_LIMIT:.1f}x baseline"
    timing = next(
        (t for t in timings if t.case.size == LIST_RATIO_SIZE and not t.case.as_json), None
    )
    if timing is None:
        return Check("SKIP", f"{name}: size not in --sizes")
    ratio = timing.median / baseline.median
    return Check(
        passed(ratio <= LIST_RATIO_LIMIT),
        f"{name}: median {timing.median:.3f} s / {baseline.median:.3f} s = {ratio:.2f}x",
    )


def seconds_check(timings: Sequence[Timing]) -> Check:
    """``tokenctl list --json`` with JSON_SECONDS_SIZE tokens against JSON_SECONDS_LIMIT."""
    name = f"tokenctl list --json, {JSON_SECONDS_SIZE:,} tokens <= {JSON_SECONDS_LIMIT:.1f} s"
    timing = next((t for t in timings if t.case.size == JSON_SECONDS_SIZE and t.case.as_json), None)
    if timing is None:
        return Check("SKIP", f"{name}: size not in --sizes")
    return Check(
        passed(timing.median <= JSON_SECONDS_LIMIT), f"{name}: median {timing.median:.3f} s"
    )


def imports_check(command: str, modules: Sequence[str]) -> Check:
    """None of FORBIDDEN_PACKAGES may be imported by ``command``."""
    found = sorted({name.partition(".")[0] for name in modules} & set(FORBIDDEN_PACKAGES))
    name = f"{command} imports none of {', '.join(FORBIDDEN_PACKAGES)}"
    if found:
        return Check("FAIL", f"{name}: imports {', '.join(found)}")
    return Check("PASS", f"{name}: {len(modules)} modules, none of them")


def print_table(timings: Sequence[Timing], baseline: Timing) -> None:
    """Case, median, min and the median's ratio to the baseline's median."""
    width = max(len(timing.case.label) for timing in timings)
    print(f"{'case':<{width}}  {'median s':>9}  {'min s':>7}  {'x baseline':>10}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 7}  {'-' * 10}")
    for timing in timings:
        ratio = timing.median / baseline.median
        print(
            f"{timing.case.label:<{width}}  {timing.median:>9.3f}  {timing.best:>7.3f}"
            f"  {ratio:>10.2f}"
        )


@contextmanager
def filled_and_timed(
    options: argparse.Namespace,
    build: Callable[[Path, Mapping[int, Path], Path], list[Case]],
) -> Iterator[tuple[Path, dict[int, Path], Path, list[Timing]]]:
    """Fill a home per size, time the cases ``build`` makes, print the table.

    Yields the work directory, the homes, the byte-code cache and the timings; the
    homes are removed afterwards unless ``--keep-homes``.
    """
    script = console_script()
    sizes: list[int] = options.sizes
    with ExitStack() as stack:
        workdir = Path(
            tempfile.mkdtemp(prefix="tokenctl-bench-")
            if options.keep_homes
            else stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenctl-bench-"))
        )
        homes = {size: workdir / f"home-{size}" for size in sizes}
        pycache = workdir / "pycache"
        print(f"python    {sys.executable} ({platform.python_version()})")
        print(f"tokenctl  {script} (console script, as users run it)")
        print(f"rounds    {options.rounds} timed, after 1 warm-up; order reverses each round")
        for size, home in homes.items():
            print(
                f"filled    {size:>7,} tokens in {fill_home(home, size):.2f} s  ({home})",
                flush=True,
            )
        cases = build(script, homes, pycache)
        print(f"timing    {len(cases)} cases x {options.rounds + 1} runs ...\n", flush=True)
        timings = measure(cases, options.rounds, workdir)
        print_table(timings, timings[0])
        print()
        yield workdir, homes, pycache, timings
        if options.keep_homes:
            print(f"\nhomes kept under {workdir}")


def report(checks: list[Check]) -> int:
    """Print every verdict; the exit status they add up to."""
    for check in checks:
        print(f"{check.verdict}  {check.text}")
    return EXIT_BAR_FAILED if any(check.verdict == "FAIL" for check in checks) else EXIT_OK


def entry(
    parse: Callable[[Sequence[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """A benchmark's entry point: parse, run, and exit 2 when it cannot run."""
    options = parse(argv)
    try:
        return run(options)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_RUN


def run(options: argparse.Namespace) -> int:
    """Fill the homes, time the cases, check the bars and print the report."""
    sizes: list[int] = options.sizes
    with filled_and_timed(options, build_cases) as (workdir, homes, pycache, timings):
        baseline = timings[0]
        checks = [ratio_check(timings, baseline), seconds_check(timings)]
        baseline_modules = imported_modules(
            BASELINE_PROBE, child_environment(None, pycache), workdir
        )
        probe_size = min(sizes)
        for args in (("list",), ("list", "--json")):
            command = f"tokenctl {' '.join(args)}, {probe_size:,} tokens"
            env = child_environment(homes[probe_size], pycache)
            modules = imported_modules(LIST_PROBE, env, workdir, *args)
            checks.append(imports_check(command, modules))
            beyond = packages_beyond(modules, baseline_modules)
            print(
                f"{command}: imports {len(modules)} modules (baseline {len(baseline_modules)});"
                f" packages beyond the baseline's: {', '.join(beyond) or 'none'}"
            )
        print()
        return report(checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return entry(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
