"""Many processes renewing the same few tokens at once, against a rotating provider.

Starts a private Secret Service (gnome-keyring) and the local OpenID provider with
``{"rotate_refresh_token": true}`` (``tests/peers``): every refresh returns a new refresh
token and consumes the old one, and presenting a consumed one is taken as reuse, answered
with ``invalid_grant``, and revokes the whole grant. It fills a throw-away home with
``--tokens`` OAuth tokens from real logins (as ``renew_all.py`` does), then runs
``--workers`` threads, each of which runs ``--renewals`` real ``tokenctl renew NAME --json``
processes one after the other. Worker ``w`` renews token ``(w + i) % tokens`` in its
``i``-th round, so at any moment several processes renew the same token.

``renew NAME`` refreshes whenever the token has a refresh token (it has no margin rule:
that is ``renew --all``'s and ``token``'s). Under the token's lock it reads the record
again: when another process renewed the token since this one looked it up, it uses that
result ("renewed meanwhile", ``renewed_by: concurrent``) instead of sending the refresh
token it had seen, which the provider would take as reuse.

Bar: every token's stored refresh token is still accepted afterwards. Checked three ways:
the provider counted no refresh grant error, it introspects each stored refresh token as
active, and one more ``tokenctl renew NAME`` per token refreshes with it. Also checked:
every renewal succeeded, and the provider served exactly the refreshes tokenctl reported
(no refresh whose result was dropped).

Exit status: 0 when every check passes, 1 when one fails, 2 when the benchmark cannot run.
This is a script, not a test; run it by hand (see benchmarks/README.md)::

    python benchmarks/overlapping_renewals.py [--workers 8] [--renewals 50] [--tokens 4]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from list_overview import (
    BenchmarkError,
    Check,
    benchmark_parser,
    child_environment,
    console_script,
    entry,
    passed,
    positive_int,
    report,
)
from renew_all import (
    WARM_IMPORTS,
    definition_toml,
    fill_home,
    mint_grants,
    refresh_errors,
    run_tokenctl,
    start_peers,
)

from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.paths import HOME_ENV, resolve_paths
from tokenctl.secrets.keyring_store import OsKeyring

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the peers live in tests/peers

from tests.peers.oidc_server import (  # noqa: E402
    BASIC_CLIENT_ID,
    BASIC_CLIENT_SECRET,
    OidcServer,
)

DEFAULT_WORKERS = 8
DEFAULT_RENEWALS = 50
DEFAULT_TOKENS = 4
#: A renewal that takes longer than this is stuck (the lock waits, the provider answers).
RENEW_TIMEOUT = 120.0


@dataclass(frozen=True)
class Renewal:
    """One ``tokenctl renew NAME --json`` process: what it said and how long it took."""

    worker: int
    name: str
    exit_code: int
    renewed_by: str | None  # "refresh", "concurrent", or None when it failed
    seconds: float
    stderr: str


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of this script."""
    parser = benchmark_parser(
        "Run many `tokenctl renew NAME` processes at once over a few shared tokens.",
        rounds=1,
        rounds_help="times the whole run is repeated, on the same tokens (default 1)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=DEFAULT_WORKERS,
        help=f"renewing processes at once (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--renewals",
        type=positive_int,
        default=DEFAULT_RENEWALS,
        help=f"renewals each worker runs, one after the other (default {DEFAULT_RENEWALS})",
    )
    parser.add_argument(
        "--tokens",
        type=positive_int,
        default=DEFAULT_TOKENS,
        help=f"tokens they share (default {DEFAULT_TOKENS})",
    )
    return parser.parse_args(argv)


# -- renewals ----------------------------------------------------------------------------


def renew_once(script: Path, env: Mapping[str, str], cwd: Path, worker: int, name: str) -> Renewal:
    """Run ``tokenctl renew NAME --json`` and read how it renewed."""
    started = time.perf_counter()
    try:
        result = subprocess.run(
            (str(script), "renew", name, "--json"),
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=RENEW_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"tokenctl renew {name} ran longer than {RENEW_TIMEOUT:g} s") from None
    seconds = time.perf_counter() - started
    renewed_by = None
    if result.returncode == 0:
        try:
            renewed_by = str(json.loads(result.stdout)["token"]["renewed_by"])
        except (ValueError, KeyError, TypeError):
            raise BenchmarkError(
                f"tokenctl renew {name} --json: no renewed_by in\n{result.stdout[:2000]}"
            ) from None
    return Renewal(worker, name, result.returncode, renewed_by, seconds, result.stderr.strip())


def run_workers(
    script: Path,
    env: Mapping[str, str],
    cwd: Path,
    names: Sequence[str],
    options: argparse.Namespace,
) -> tuple[list[Renewal], float]:
    """Every worker's renewals; worker ``w`` renews ``names[(w + i) % len(names)]`` in round ``i``.

    The workers start together (a barrier), so their processes overlap from the first.
    """
    workers: int = options.workers
    barrier = threading.Barrier(workers)

    def work(worker: int) -> list[Renewal]:
        barrier.wait()
        return [
            renew_once(script, env, cwd, worker, names[(worker + index) % len(names)])
            for index in range(options.renewals)
        ]

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        done = [renewal for batch in pool.map(work, range(workers)) for renewal in batch]
    return done, time.perf_counter() - started


# -- the checks afterwards ---------------------------------------------------------------


def stored_refresh_tokens(home: Path, names: Sequence[str]) -> dict[str, str]:
    """Each token's refresh token as tokenctl stored it, opened with tokenctl's inventory."""
    keyring = OsKeyring()
    inventory = SqliteInventory(
        resolve_paths(None, {HOME_ENV: str(home)}).inventory_file, lambda: keyring
    )
    try:
        found = {}
        for name in names:
            stored = inventory.secrets(inventory.resolve(name).number)
            if stored is None or not stored.refresh_token:
                raise BenchmarkError(f"{name}: no refresh token is stored")
            found[name] = stored.refresh_token
        return found
    finally:
        inventory.close()
        keyring.close()


def is_active(provider: OidcServer, token: str) -> bool:
    """Whether the provider's introspection says ``token`` is active.

    Asked as its confidential client; introspection does not consume a refresh token.
    """
    credentials = base64.b64encode(f"{BASIC_CLIENT_ID}:{BASIC_CLIENT_SECRET}".encode()).decode()
    request = urllib.request.Request(
        f"{provider.issuer}/token/introspection",
        data=urllib.parse.urlencode({"token": token, "token_type_hint": "refresh_token"}).encode(),
        headers={"Authorization": f"Basic {credentials}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
        answer: dict[str, Any] = json.loads(response.read())
    return answer.get("active") is True


def refreshes_served(provider: OidcServer) -> int:
    """Refresh grants the provider has answered with new tokens since its counters were reset."""
    return int(provider.stats().get("grant_success", {}).get("refresh_token", 0))


def summarise(renewals: Sequence[Renewal]) -> tuple[Counter[str], list[Renewal]]:
    """How the renewals renewed (``refresh`` / ``concurrent``), and those that failed."""
    ways = Counter(renewal.renewed_by for renewal in renewals if renewal.renewed_by)
    failed = [renewal for renewal in renewals if renewal.exit_code != 0]
    return ways, failed


def describe_failures(failed: Sequence[Renewal]) -> str:
    """The failures grouped by exit status and the last line of their stderr."""
    kinds = Counter(
        f"exit {item.exit_code}: {(item.stderr.splitlines() or ['(no message)'])[-1][:160]}"
        for item in failed
    )
    return "; ".join(f"{count} x {what}" for what, count in kinds.most_common())


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (not empty)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def run(options: argparse.Namespace) -> int:
    """Start the peers, fill the home, run the workers, verify every token, report."""
    script = console_script()
    count: int = options.tokens
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenctl-bench-")))
        home = workdir / "home"
        print(f"python    {sys.executable} ({platform.python_version()})")
        print(f"tokenctl  {script} (console script, as users run it)")
        peers = start_peers(stack, workdir)
        provider = peers.provider
        env = {**child_environment(home, workdir / "pycache"), **peers.secret_service.env}
        print(
            f"peers     Secret Service (gnome-keyring), OpenID provider {provider.issuer}"
            " (rotating refresh tokens, reuse revokes the grant)"
        )
        os.environ.update(peers.secret_service.env)  # this process reads the data key too
        keyring = OsKeyring()
        keyring.ensure_available()
        source = workdir / "definitions.toml"
        source.write_text(definition_toml(provider.issuer))
        run_tokenctl(script, env, workdir, "definitions", "add", "--file", str(source))
        fill_home(home, mint_grants(provider, count), provider.issuer, keyring)
        keyring.close()
        names = [f"books-{index:05d}" for index in range(1, count + 1)]
        subprocess.run((sys.executable, "-c", WARM_IMPORTS), cwd=workdir, env=env, check=True)
        print(
            f"tokens    {count} OAuth tokens from real logins: {', '.join(names)}\n"
            f"running   {options.rounds} x {options.workers} workers x {options.renewals}"
            f" renewals = {options.rounds * options.workers * options.renewals}"
            f" `tokenctl renew NAME --json` processes ...",
            flush=True,
        )

        provider.reset_stats()
        renewals: list[Renewal] = []
        seconds = 0.0
        for _ in range(options.rounds):
            done, took = run_workers(script, env, workdir, names, options)
            renewals += done
            seconds += took
        served = refreshes_served(provider)
        ways, failed = summarise(renewals)
        print(
            f"\nrenewals  {len(renewals)} in {seconds:.1f} s ({len(renewals) / seconds:.1f}/s,"
            f" median {median([item.seconds for item in renewals]):.2f} s each):"
            f" {ways['refresh']} refreshed, {ways['concurrent']} renewed meanwhile by another"
            f" process, {len(failed)} failed"
        )
        if failed:
            print(f"failed    {describe_failures(failed)}")
        errors_during = refresh_errors(provider)
        print(
            f"provider  {served} refreshes served, {errors_during} refresh grant errors"
            " during the run"
        )

        stored = stored_refresh_tokens(home, names)
        inactive = [name for name, token in stored.items() if not is_active(provider, token)]
        finals = [renew_once(script, env, workdir, -1, name) for name in names]
        not_refreshed = [item.name for item in finals if item.renewed_by != "refresh"]
        errors_after = refresh_errors(provider)
        print(
            f"afterwards  introspection: {count - len(inactive)}/{count} stored refresh tokens"
            f" active; one more renew each: {count - len(not_refreshed)}/{count} refreshed;"
            f" refresh grant errors in all: {errors_after}"
        )
        for item in finals:
            if item.renewed_by != "refresh":
                print(f"  {item.name}: exit {item.exit_code}, {item.stderr[-300:]}")
        print()

        checks = [
            Check(
                passed(not inactive and not not_refreshed and errors_after == 0),
                f"every token's stored refresh token still accepted: {count - len(inactive)}/"
                f"{count} active at introspection, {count - len(not_refreshed)}/{count} refreshed"
                f" by one more renew, provider refresh grant errors: {errors_after}",
            ),
            Check(
                passed(not failed),
                f"every renewal succeeded: {len(renewals) - len(failed)}/{len(renewals)}"
                f" ({ways['refresh']} refreshed, {ways['concurrent']} renewed meanwhile)",
            ),
            Check(
                passed(served == ways["refresh"]),
                f"the provider served exactly the refreshes tokenctl reported: {served} served,"
                f" {ways['refresh']} reported",
            ),
        ]
    return report(checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return entry(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
