"""Benchmark ``tokenctl renew --all`` against a bare refresh loop on the same OAuth provider.

Starts a private Secret Service (gnome-keyring) and the local OpenID provider
(``tests/peers``), gets ``--tokens`` grants with refresh tokens for tokenctl and as many
for the bare loop (browser logins played by ``OidcServer.browser_login``), fills a
throw-away tokenctl home with them the way ``tokenctl add`` records a login, then times
real subprocesses, interleaved, after one untimed warm-up round:

* ``tokenctl renew --all --json`` (concurrency 8; the definition lets it send 8 refreshes
  to the provider at once, as many as the bare loop), and
* the bare loop ``benchmarks/_refresh_loop.py``: authlib's ``AsyncOAuth2Client`` on httpx2
  refreshing the same kind of tokens with the same concurrency, nothing else (the
  provider's capacity as a client that stores nothing sees it);
* both again over one token (another home, another grant), to tell the start-up (the
  interpreter, imports, discovery, the keyring) from the work per token.

Bars:

* throughput (tokens per second, median run) at least 0.8 times the bare loop's;
* no token lost: every run renewed every token, a last ``tokenctl renew --all`` still
  renews every token with its stored refresh token, and the provider counted no refresh
  grant error.

The secrets are sealed in the inventory under one data key per inventory, which the
(real) Secret Service holds: the script checks that the keyring has that one entry,
however many tokens, and a renewal touches the keyring only to read the key once.

With ``--store openbao`` both homes choose the team store instead (``config.toml``
``[store] kind = "openbao"``, one path per home in the KV mount of a single-node
OpenBao on Raft storage, ``tests/peers/openbao.py``; the children get the root token in
BAO_TOKEN), filled the same way through ``OpenBaoInventory``. No Secret Service is
started and the children keep the failing keyring backend: the team store keeps no data
key, so the keyring check is skipped. Afterwards the script also times KV reads and
writes on the server and counts, from its audit log, the requests of one more ``renew
--all`` over each home: per kind of path, for the whole run and per further token.

Exit status: 0 when every check passes, 1 when one fails, 2 when the benchmark cannot run.
This is a script, not a test; run it by hand (see benchmarks/README.md)::

    python benchmarks/renew_all.py [--tokens 500] [--rounds 5] [--profile DIR]
                                   [--store local|openbao]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    relax_durability,
    report,
)
from team_store_commands import MOUNT, environment, start_server, team_home

from tokenctl.definitions.model import Definition
from tokenctl.definitions.registry import load_definitions
from tokenctl.errors import TokenctlError
from tokenctl.inventory import Inventory
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.models import Actor, Token, TokenSecrets
from tokenctl.oauth.grants import grant_fields, secrets_of
from tokenctl.oauth.provider import grant_from_response
from tokenctl.paths import HOME_ENV, resolve_paths
from tokenctl.secrets.keyring_store import OsKeyring
from tokenctl.services.tokens import CODE_ALPHABET

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the peers live in tests/peers

from tests.peers.oidc_server import (  # noqa: E402
    LOOPBACK_REDIRECT_URI,
    PUBLIC_CLIENT_ID,
    OidcPeerError,
    OidcServer,
    start_oidc_provider,
)
from tests.peers.openbao import OpenBaoError, RaftCluster  # noqa: E402
from tests.peers.secret_service import (  # noqa: E402
    SecretService,
    SecretServiceError,
    SecretServiceUnavailable,
    start_secret_service,
)

#: tokenctl's throughput must be at least this multiple of the bare loop's.
THROUGHPUT_RATIO_LIMIT = 0.8
DEFAULT_TOKENS = 500
DEFAULT_CONCURRENCY = 8
DEFAULT_ROUNDS = 5
#: Browser logins played at once while getting the grants.
LOGIN_WORKERS = 4

DEFINITION = "bench-books"
SCOPES = ("openid", "offline_access", "email", "profile", "invoices:read", "invoices:write")
REQUIRED_SCOPES = ("invoices:read", "invoices:write")
USER, PASSWORD = "alice", "alice-password"
PROVIDER_CONFIG = {"rotate_refresh_token": True}
REFRESH_LOOP = Path(__file__).resolve().parent / "_refresh_loop.py"
#: Imported once before timing, so the timed runs load compiled byte code.
WARM_IMPORTS = (
    "import authlib.integrations.httpx_client, keyring.backends.SecretService,"
    " tokenctl.cli.app, tokenctl.services.renew_all, tokenctl.services.refresh,"
    " tokenctl.render.check, tokenctl.store.openbao.inventory"
)
SEED = 20_240_602
#: With ``--store openbao``: each home's team inventory is at TEAM_ROOT/<home's name>.
TEAM_ROOT = "bench"
#: KV reads and writes timed on the team store's server (its latency, for the breakdown).
KV_SAMPLES = 200


@dataclass
class Run:
    """One timed run: its wall-clock and CPU seconds and how many tokens it renewed."""

    seconds: float
    renewed: int
    loop_seconds: float | None = None  # the bare loop's own timing, without start-up
    problems: dict[str, int] = field(default_factory=dict)  # "outcome: detail" -> count
    cpu_seconds: float = 0.0  # user + system time of the process

    def describe_problems(self) -> str:
        """The outcomes other than a refresh, most frequent first."""
        ranked = sorted(self.problems.items(), key=lambda item: -item[1])
        return "; ".join(f"{count} x {what}" for what, count in ranked)


@dataclass
class Series:
    """Every timed run of one case."""

    label: str
    tokens: int
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median wall-clock seconds."""
        return statistics.median(run.seconds for run in self.runs)

    @property
    def best(self) -> float:
        """Fastest run."""
        return min(run.seconds for run in self.runs)

    @property
    def throughput(self) -> float:
        """Tokens per second of the median run."""
        return self.tokens / self.median

    @property
    def cpu_median(self) -> float:
        """Median CPU seconds (user + system) of the process."""
        return statistics.median(run.cpu_seconds for run in self.runs)

    @property
    def loop_median(self) -> float | None:
        """Median of the bare loop's own timings (without interpreter start and imports)."""
        loops = [run.loop_seconds for run in self.runs if run.loop_seconds is not None]
        return statistics.median(loops) if loops else None


@dataclass(frozen=True)
class Case:
    """One thing to time: the series its runs go to, and how to run it once."""

    series: Series
    run: Callable[[], Run]


@dataclass
class Peers:
    """The Secret Service and the OpenID provider of one benchmark run."""

    secret_service: SecretService
    provider: OidcServer


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of this script."""
    parser = benchmark_parser(
        "Time `tokenctl renew --all` against a bare authlib refresh loop.",
        rounds=DEFAULT_ROUNDS,
        rounds_help=f"timed runs of each case (default {DEFAULT_ROUNDS}), after one untimed"
        " warm-up round; the order reverses every round",
    )
    parser.add_argument(
        "--tokens",
        type=positive_int,
        default=DEFAULT_TOKENS,
        help=f"tokens to renew per run (default {DEFAULT_TOKENS}; at least 2)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"refreshes at once, for both (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--store",
        choices=("local", "openbao"),
        default="local",
        help="local: the homes' SQLite inventories (default); openbao: the team store, on"
        " a single-node OpenBao on Raft storage",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also run `renew --all` once under cProfile and write renew_all.prof to DIR",
    )
    return parser.parse_args(argv)


# -- peers and grants --------------------------------------------------------------------


def start_peers(stack: ExitStack, workdir: Path) -> Peers:
    """Start both peers; ``stack`` stops them, whatever happens."""
    try:
        secret_service = start_secret_service(workdir / "secret-service")
    except (SecretServiceUnavailable, SecretServiceError) as error:
        raise BenchmarkError(f"no Secret Service: {error}") from None
    stack.callback(secret_service.stop)
    return Peers(secret_service, start_provider(stack, workdir))


def start_provider(stack: ExitStack, workdir: Path) -> OidcServer:
    """Start the OpenID provider; ``stack`` stops it, whatever happens."""
    try:
        provider = start_oidc_provider(PROVIDER_CONFIG, workdir / "oidc")
    except OidcPeerError as error:
        raise BenchmarkError(f"no OpenID provider: {error}") from None
    stack.callback(provider.stop)
    return provider


def start_team_store(stack: ExitStack, workdir: Path) -> tuple[RaftCluster, str]:
    """A single-node OpenBao on Raft storage with the KV mount; ``stack`` stops it."""
    server, what = start_server("raft", workdir / "bao")
    stack.callback(server.stop)
    assert isinstance(server, RaftCluster)
    return server, what


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def login_once(provider: OidcServer, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """One authorization code login with PKCE, played by the provider's browser driver.

    Every call uses a new cookie jar, so every login makes a grant of its own (refreshing
    one grant's token cannot disturb another's).
    """
    verifier, challenge = pkce_pair()
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": PUBLIC_CLIENT_ID,
            "redirect_uri": LOOPBACK_REDIRECT_URI,
            "scope": " ".join(SCOPES),
            "state": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    final = provider.browser_login(
        f"{metadata['authorization_endpoint']}?{query}",
        USER,
        PASSWORD,
        follow_to_callback=False,
    )
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(final).query)
    if "code" not in params:
        raise BenchmarkError(f"the login ended without a code: {final}")
    body = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "client_id": PUBLIC_CLIENT_ID,
            "redirect_uri": LOOPBACK_REDIRECT_URI,
            "code_verifier": verifier,
        }
    ).encode()
    request = urllib.request.Request(metadata["token_endpoint"], data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
        grant: dict[str, Any] = json.loads(response.read())
    if not grant.get("refresh_token"):
        raise BenchmarkError("the provider issued no refresh token")
    return grant


def mint_grants(provider: OidcServer, count: int) -> list[dict[str, Any]]:
    """``count`` token responses from as many logins, LOGIN_WORKERS at a time."""
    metadata = provider.metadata()
    with ThreadPoolExecutor(LOGIN_WORKERS) as pool:
        return list(pool.map(lambda _: login_once(provider, metadata), range(count)))


# -- tokenctl's home ---------------------------------------------------------------------


def definition_toml(issuer: str, max_concurrent_requests: int | None = None) -> str:
    """The OAuth definition of the local provider (endpoints by discovery of the issuer).

    ``max_concurrent_requests``: refreshes ``renew --all`` may send it at once (its
    default is 4 per provider, whatever ``--concurrency`` says).
    """
    scopes = ", ".join(f'"{scope}"' for scope in SCOPES)
    required = ", ".join(f'"{scope}"' for scope in REQUIRED_SCOPES)
    limit = (
        ""
        if max_concurrent_requests is None
        else f"max_concurrent_requests = {max_concurrent_requests}\n"
    )
    return (
        f"[definitions.{DEFINITION}]\n"
        'title = "Acme Books (benchmark)"\n'
        'classification = "Accounting"\n'
        'kind = "oauth2"\n\n'
        f"[definitions.{DEFINITION}.oauth2]\n"
        f'issuer = "{issuer}"\n'
        f'client_id = "{PUBLIC_CLIENT_ID}"\n'
        f"scopes = [{scopes}]\n"
        f"required_scopes = [{required}]\n"
        f"{limit}"
    )


def run_tokenctl(script: Path, env: Mapping[str, str], cwd: Path, *args: str) -> str:
    """Run one untimed tokenctl command; its stdout. A failure stops the benchmark."""
    result = subprocess.run(
        (str(script), *args), cwd=cwd, env=dict(env), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BenchmarkError(
            f"tokenctl {' '.join(args)}: exit status {result.returncode}\n{result.stderr}"
        )
    return result.stdout


def oauth_token(
    index: int, response: Mapping[str, Any], definition: Definition, issuer: str, now: datetime
) -> tuple[Token, TokenSecrets]:
    """The record and the secrets ``tokenctl add`` stores after a login with ``response``.

    Built with tokenctl's own ``grant_from_response``, ``secrets_of`` and ``grant_fields``
    (what ``services.tokens._add_oauth`` calls), so ``has_refresh_token``,
    ``secret_set_at``, the scopes and expiries are exactly those of a real login.
    """
    settings = definition.oauth2
    assert settings is not None
    grant = grant_from_response(dict(response), now, settings.scopes, settings)
    token_secrets = secrets_of(grant)
    fields = grant_fields(grant, definition, now, login=True, secrets=token_secrets)
    rng = random.Random(SEED + index)
    code = "".join(rng.choice(CODE_ALPHABET) for _ in range(16))
    token = Token(
        number=0,
        name=f"books-{index:05d}",
        authentication_code="-".join(code[i : i + 4] for i in range(0, 16, 4)),
        definition=definition.name,
        description=f"Invoice upload, administration {index}",
        account=f"{USER}@example.test",
        attributes={"issuer": issuer, "subject": USER},
        **fields,
    )
    return token, token_secrets


def record_logins(
    inventory: Inventory, home: Path, responses: Sequence[Mapping[str, Any]], issuer: str
) -> None:
    """Record one OAuth token per response in ``inventory``, as ``tokenctl add`` stores a login.

    Done in this process, through tokenctl's inventory: the record with its secrets, then
    the ``retrieved`` event. The definition is the one in ``home``'s definitions.toml.
    """
    paths = resolve_paths(None, {HOME_ENV: str(home)})
    definition = load_definitions(paths.definitions_file).require(DEFINITION)
    actor = Actor(user="bench", unit="bench-host")
    for index, response in enumerate(responses, start=1):
        now = datetime.now(UTC)
        token, token_secrets = oauth_token(index, response, definition, issuer, now)
        added = inventory.add(token, actor, now, secrets=token_secrets)
        inventory.record_event(
            added, actor, now, event="retrieved", outcome="ok", detail="benchmark login"
        )


def fill_home(
    home: Path, responses: Sequence[Mapping[str, Any]], issuer: str, keyring: OsKeyring
) -> str:
    """Record one OAuth token per response, its secrets sealed with it; the data key's entry.

    The record and its secrets go in one transaction (the first one makes the inventory's
    data key in ``keyring``).
    """
    paths = resolve_paths(None, {HOME_ENV: str(home)})
    inventory = SqliteInventory(paths.inventory_file, lambda: keyring)
    try:
        relax_durability(inventory)
        record_logins(inventory, home, responses, issuer)
        return inventory.sealed.key_ref
    finally:
        inventory.close()


def team_prefix(home: Path) -> str:
    """The path of ``home``'s team inventory in the KV mount (one per home)."""
    return f"{TEAM_ROOT}/{home.name}"


def fill_team_home(
    home: Path, responses: Sequence[Mapping[str, Any]], issuer: str, server: RaftCluster
) -> str:
    """Record one OAuth token per response in ``home``'s team inventory; where that is.

    Through ``OpenBaoInventory`` with the root token: the secrets are written to their own
    path before the record (OpenBao encrypts them; there is no data key).
    """
    from tokenctl.store.openbao.inventory import OpenBaoInventory

    prefix = team_prefix(home)
    try:
        inventory = OpenBaoInventory(server.address, server.root_token, MOUNT, prefix)
        try:
            record_logins(inventory, home, responses, issuer)
        finally:
            inventory.close()
    except TokenctlError as error:
        raise BenchmarkError(f"filling the team store: {error}") from None
    return f"{MOUNT}/{prefix}"


def keyring_entries(keyring: OsKeyring) -> list[str]:
    """The names of the entries under the ``tokenctl`` service (the Secret Service lists them)."""
    names = keyring.entry_names()
    if names is None:
        raise BenchmarkError("the keyring backend cannot list its entries")
    return sorted(names)


# -- timed runs --------------------------------------------------------------------------


def tokenctl_outcomes(stdout: str) -> tuple[int, dict[str, int]]:
    """From a ``renew --all --json`` document: how many were refreshed, and the rest."""
    refreshed, problems = 0, Counter[str]()
    for item in json.loads(stdout)["renewals"]:
        if item["outcome"] == "refreshed":
            refreshed += 1
        else:
            problems[f"{item['outcome']}: {item['detail']}"] += 1
    return refreshed, dict(problems)


def run_measured(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run ``argv`` to its end; its result, wall-clock seconds and CPU seconds.

    The CPU time (user + system) is what the children waited for meanwhile used: only
    this process, since the peers are not waited for until they stop.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return result, seconds, cpu


def time_tokenctl(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Run:
    """One timed ``tokenctl renew --all --json``; a run that renews not all still counts."""
    result, seconds, cpu = run_measured(argv, env, cwd)
    try:
        renewed, problems = tokenctl_outcomes(result.stdout)
    except (ValueError, KeyError):
        raise BenchmarkError(
            f"tokenctl renew --all: exit status {result.returncode}, no JSON report\n"
            + result.stderr[-2000:]
        ) from None
    return Run(seconds, renewed, problems=problems, cpu_seconds=cpu)


def time_bare_loop(state: Path, env: Mapping[str, str], cwd: Path) -> Run:
    """One timed run of the bare refresh loop over the tokens in ``state``."""
    result, seconds, cpu = run_measured((sys.executable, str(REFRESH_LOOP), str(state)), env, cwd)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise BenchmarkError(
            f"the bare loop: exit status {result.returncode}, no report\n{result.stderr[-2000:]}"
        ) from None
    problems = Counter(failure["error"] for failure in report["failed"])
    return Run(
        seconds,
        int(report["refreshed"]),
        float(report["loop_seconds"]),
        dict(problems),
        cpu_seconds=cpu,
    )


def round_orders(cases: Sequence[Case], rounds: int) -> Iterator[Sequence[Case]]:
    """Every case once per round; the order reverses every round, to cancel drift."""
    for number in range(rounds):
        yield cases if number % 2 == 0 else cases[::-1]


def refresh_errors(provider: OidcServer) -> int:
    """Refresh grant errors the provider has counted since its start."""
    return int(provider.stats().get("grant_error", {}).get("refresh_token", 0))


# -- report ------------------------------------------------------------------------------


def print_table(pairs: Sequence[tuple[Series, Series]]) -> None:
    """Per case: median and min seconds, median CPU seconds, tokens/s, ratio to its bare loop.

    ``pairs``: (tokenctl, bare loop) series over the same number of tokens.
    """
    width = max(len(item.label) for pair in pairs for item in pair)
    print(
        f"{'case':<{width}}  {'median s':>9}  {'min s':>7}  {'cpu s':>6}"
        f"  {'tokens/s':>9}  {'x bare':>7}"
    )
    print(f"{'-' * width}  {'-' * 9}  {'-' * 7}  {'-' * 6}  {'-' * 9}  {'-' * 7}")
    for pair in pairs:
        bare = pair[1]
        for item in pair:
            print(
                f"{item.label:<{width}}  {item.median:>9.2f}  {item.best:>7.2f}"
                f"  {item.cpu_median:>6.2f}  {item.throughput:>9.1f}"
                f"  {item.throughput / bare.throughput:>7.2f}"
            )


def print_breakdown(full: tuple[Series, Series], one: tuple[Series, Series]) -> None:
    """Start-up (the one-token runs) and the time per further token, of both.

    And how fast tokenctl would have to renew each token to meet the bar, given its
    start-up: the bar compares whole runs, start-up included.
    """
    count = full[0].tokens
    per_token = [
        (whole.median - single.median) / (count - 1)
        for whole, single in zip(full, one, strict=True)
    ]
    print(
        f"start-up (the one-token runs): tokenctl {one[0].median:.2f} s, bare loop"
        f" {one[1].median:.2f} s; each further token: tokenctl {per_token[0] * 1000:.2f} ms,"
        f" bare loop {per_token[1] * 1000:.2f} ms"
    )
    allowed = full[1].median / THROUGHPUT_RATIO_LIMIT
    needed = (allowed - one[0].median) / (count - 1)
    print(
        f"to meet {THROUGHPUT_RATIO_LIMIT:.1f}x with its start-up, tokenctl would have to take"
        f" {needed * 1000:.2f} ms per further token (whole run at most {allowed:.2f} s)"
    )


def profile_once(
    script: Path, env: Mapping[str, str], cwd: Path, directory: Path, args: Sequence[str]
) -> None:
    """Run ``renew --all`` once under cProfile; the profile goes to DIR/renew_all.prof."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "renew_all.prof"
    result = subprocess.run(
        (sys.executable, "-m", "cProfile", "-o", str(out), str(script), *args),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
    )
    print(
        f"profile   {out} (exit status {result.returncode}; the main thread only: all"
        " of it on the local store, the team store's inventory steps run on another thread)"
    )


def bare_loop_state(
    path: Path, provider: OidcServer, responses: Sequence[Mapping[str, Any]], concurrency: int
) -> Path:
    """Write the bare loop's state file: the token endpoint and its refresh tokens."""
    path.write_text(
        json.dumps(
            {
                "token_endpoint": provider.metadata()["token_endpoint"],
                "client_id": PUBLIC_CLIENT_ID,
                "concurrency": concurrency,
                "refresh_tokens": [response["refresh_token"] for response in responses],
            }
        )
    )
    return path


def time_rounds(cases: Sequence[Case], rounds: int) -> None:
    """One untimed warm-up run of every case, then ``rounds`` timed rounds; prints every run.

    The warm-up compiles the byte code (into the private cache) and warms the provider.
    """
    for case in cases:
        outcome = case.run()
        print(f"  warm-up  {case.series.label}: {describe(outcome, case.series.tokens)}")
    for order in round_orders(cases, rounds):
        for case in order:
            outcome = case.run()
            case.series.runs.append(outcome)
            print(f"  {case.series.label}: {describe(outcome, case.series.tokens)}", flush=True)


def describe(outcome: Run, count: int) -> str:
    """Seconds, tokens renewed and what happened to the others."""
    problems = f" ({outcome.describe_problems()})" if outcome.problems else ""
    return (
        f"{outcome.seconds:.2f} s ({outcome.cpu_seconds:.2f} s CPU),"
        f" {outcome.renewed}/{count} renewed{problems}"
    )


def verdicts(tokenctl_series: Series, bare_series: Series, final: Run, errors: int) -> list[Check]:
    """The throughput bar and the no-token-lost bar.

    A token is lost when its stored refresh token no longer works: the last ``renew
    --all`` cannot renew it, and the provider counted the reuse as a refresh grant error.
    A timed run that skipped a token (a keyring read failed, say) lost nothing by itself;
    such runs are listed in the text, not judged.
    """
    count = tokenctl_series.tokens
    ratio = tokenctl_series.throughput / bare_series.throughput
    lost = final.renewed != count or errors > 0
    short = [run.renewed for run in tokenctl_series.runs if run.renewed != count]
    short_bare = [run.renewed for run in bare_series.runs if run.renewed != count]
    shortfall = (
        f"; timed runs that renewed fewer: tokenctl {short}, bare {short_bare}"
        if short or short_bare
        else "; every timed run renewed all"
    )
    return [
        Check(
            passed(ratio >= THROUGHPUT_RATIO_LIMIT),
            f"throughput >= {THROUGHPUT_RATIO_LIMIT:.1f}x the bare loop: "
            f"{tokenctl_series.throughput:.1f} / {bare_series.throughput:.1f} tokens/s"
            f" = {ratio:.2f}x",
        ),
        Check(
            passed(not lost),
            f"no token lost: renew --all afterwards renewed {final.renewed}/{count},"
            f" provider refresh grant errors: {errors}{shortfall}",
        ),
    ]


def one_entry_check(
    key_entries: Sequence[str], before: Sequence[str], after: Sequence[str]
) -> Check:
    """The keyring holds each inventory's data key and nothing else, before and after.

    One entry per inventory however many tokens it has, and renewing never adds one.
    """
    expected = sorted(key_entries)
    return Check(
        passed(list(before) == expected and list(after) == expected),
        f"one keyring entry per inventory, whatever its size: {len(expected)} inventories,"
        f" {len(before)} entries before the runs, {len(after)} after",
    )


def fill_homes(
    script: Path,
    env: Mapping[str, str],
    workdir: Path,
    homes: Mapping[Path, Sequence[Mapping[str, Any]]],
    definition: str,
    fill: Callable[[Path, Sequence[Mapping[str, Any]]], str],
    what: str,
) -> list[str]:
    """Fill every home with its grants (definition first); what ``fill`` returned for each.

    ``fill`` records one home's grants (``fill_home``, ``fill_team_home``); ``what`` says
    where the secrets went, for the log.
    """
    source = workdir / "definitions.toml"
    source.write_text(definition)
    made = []
    for home, responses in homes.items():
        home_env = {**env, HOME_ENV: str(home)}
        run_tokenctl(script, home_env, workdir, "definitions", "add", "--file", str(source))
        started = time.perf_counter()
        made.append(fill(home, responses))
        print(
            f"filled    {len(responses)} OAuth token(s), {what}, in"
            f" {time.perf_counter() - started:.1f} s  ({home})",
            flush=True,
        )
    return made


def fill_local(
    script: Path,
    env: Mapping[str, str],
    workdir: Path,
    homes: Mapping[Path, Sequence[Mapping[str, Any]]],
    definition: str,
    secret_service: SecretService,
    issuer: str,
) -> Callable[[], Check]:
    """Fill the local homes; the keyring check to make once the runs are done."""
    # This process makes the data keys, through the same Secret Service.
    os.environ.update(secret_service.env)
    keyring = OsKeyring()
    keyring.ensure_available()
    key_entries = fill_homes(
        script,
        env,
        workdir,
        homes,
        definition,
        lambda home, responses: fill_home(home, responses, issuer, keyring),
        "secrets sealed in the inventory",
    )
    entries_before = keyring_entries(keyring)
    print(f"keyring   entries under service tokenctl: {', '.join(entries_before) or 'none'}")
    return lambda: one_entry_check(key_entries, entries_before, keyring_entries(keyring))


def fill_team(
    script: Path,
    env: Mapping[str, str],
    workdir: Path,
    homes: Mapping[Path, Sequence[Mapping[str, Any]]],
    definition: str,
    server: RaftCluster,
    issuer: str,
) -> Callable[[], Check]:
    """Fill the homes' team inventories (config.toml first); the skipped keyring check."""
    for home in homes:
        team_home(home, server.address, team_prefix(home))
    fill_homes(
        script,
        env,
        workdir,
        homes,
        definition,
        lambda home, responses: fill_team_home(home, responses, issuer, server),
        "secrets in the team store",
    )
    return lambda: Check(
        "SKIP",
        "one keyring entry per inventory: not for the team store (OpenBao encrypts what"
        " it stores, tokenctl keeps no data key; the runs had the failing keyring backend)",
    )


# -- the team store: its latency and the requests of a renewal ---------------------------


def kv_latency(server: RaftCluster, samples: int = KV_SAMPLES) -> tuple[float, float]:
    """Median seconds of a check-and-set KV write and of a KV read, one client, one at a time.

    Through hvac on one HTTP session, as tokenctl calls the team store.
    """
    client = server.client()
    kv = client.secrets.kv.v2
    path = f"{TEAM_ROOT}/latency"
    writes, reads = [], []
    try:
        for version in range(samples):
            started = time.perf_counter()
            kv.create_or_update_secret(path, {"sample": version}, cas=version, mount_point=MOUNT)
            writes.append(time.perf_counter() - started)
            started = time.perf_counter()
            kv.read_secret_version(path, mount_point=MOUNT, raise_on_deleted_version=True)
            reads.append(time.perf_counter() - started)
    finally:
        client.adapter.close()
    return statistics.median(writes), statistics.median(reads)


#: Writers of the capacity measurement, and how long each measures (seconds).
CAPACITY_WRITERS, CAPACITY_SECONDS = (1, 8, 16), 4.0


def kv_write_capacity(server: RaftCluster) -> list[tuple[int, float, float]]:
    """Check-and-set writes a second the server takes from 1, 8 and 16 writers at once.

    Each writer is a thread with its own hvac client, writing its own key in a row for
    :data:`CAPACITY_SECONDS`; per count of writers: (writers, writes per second, this
    process's CPU seconds per write). A renewal on the team store makes 5 writes: the
    figure bounds its renewals a second on this machine, whatever the client does.
    """
    from concurrent.futures import ThreadPoolExecutor

    found = []
    for writers in CAPACITY_WRITERS:
        clients = [server.client() for _ in range(writers)]
        paths = [f"{TEAM_ROOT}/capacity/{writers}/{index}" for index in range(writers)]
        stop = time.monotonic() + CAPACITY_SECONDS
        cpu = time.process_time()
        try:
            with ThreadPoolExecutor(writers) as pool:
                total = sum(pool.map(_write_until, clients, paths, [stop] * writers))
        finally:
            for client in clients:
                client.adapter.close()
        found.append((writers, total / CAPACITY_SECONDS, (time.process_time() - cpu) / total))
    return found


def _write_until(client: Any, path: str, stop: float) -> int:
    """Write ``path`` by check-and-set, version after version, until ``stop``; how often."""
    kv = client.secrets.kv.v2
    written = 0
    while time.monotonic() < stop:
        kv.create_or_update_secret(path, {"n": written}, cas=written, mount_point=MOUNT)
        written += 1
    return written


def request_kind(path: str) -> str:
    """A request's kind: what it names under a team prefix (and the KV API), else its API.

    ``tokenctl/data/bench/home/leases/7`` is ``leases (data)``; ``sys/...`` and
    ``auth/...`` keep their first three segments.
    """
    parts = path.split("/")
    if parts[0] == MOUNT and len(parts) >= 5 and parts[2] == TEAM_ROOT:
        return f"{parts[4]} ({parts[1]})"
    return "/".join(parts[:3])


def audited_requests(log: Path, start: int) -> Counter[str]:
    """The requests in the audit log from byte ``start`` on, by kind and operation."""
    counts = Counter[str]()
    with log.open("rb") as lines:
        lines.seek(start)
        for line in lines:
            entry = json.loads(line)
            if entry.get("type") == "request":
                request = entry["request"]
                counts[f"{request_kind(request['path'])} {request['operation']}"] += 1
    return counts


def enable_audit(server: RaftCluster, log: Path) -> None:
    """Add a file audit device writing to ``log`` to every node's configuration, and load it.

    OpenBao refuses to enable audit devices through the API: they are declared in the
    server's configuration, which a SIGHUP reloads.
    """
    stanza = f'\naudit "file" "file" {{\n  options {{\n    file_path = "{log}"\n  }}\n}}\n'
    for node in server.nodes:
        config = node.base_dir / "server.hcl"  # where start_raft_cluster writes it
        with config.open("a", encoding="utf-8") as hcl:
            hcl.write(stanza)
        if node.pid is not None:
            os.kill(node.pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if "file/" in server.api("GET", "sys/audit").get("data", {}):
                return
        except (OpenBaoError, OSError):
            pass  # reloading: ask again
        time.sleep(0.2)
    raise BenchmarkError(f"the audit device to {log} was not enabled after a SIGHUP")


def count_requests(
    server: RaftCluster,
    log: Path,
    argv: Sequence[str],
    runs: Sequence[tuple[Series, Mapping[str, str]]],
    cwd: Path,
) -> list[Counter[str]]:
    """Enable a file audit device, then one ``renew --all`` per (series, env): its requests.

    After the timed runs: the audit device writes every request and answer to ``log``.
    """
    enable_audit(server, log)
    counted = []
    for series, env in runs:
        start = log.stat().st_size if log.exists() else 0
        outcome = time_tokenctl(argv, env, cwd)
        print(f"  audited  {series.label}: {describe(outcome, series.tokens)}")
        counted.append(audited_requests(log, start))
    return counted


def print_capacity(
    capacity: Sequence[tuple[int, float, float]],
    full: Mapping[str, int],
    count: int,
    bare_throughput: float,
) -> None:
    """The server's check-and-set writes a second, and the renewals a second they allow.

    ``full``: the requests of the ``count``-token run by kind; ``bare_throughput``: the
    bare loop's tokens a second, for the ratio that bound gives.
    """
    writes = sum(n for kind, n in full.items() if not kind.endswith((" read", " list")))
    per_renewal = writes / count
    for writers, per_second, cpu in capacity:
        bound = per_second / per_renewal
        print(
            f"KV capacity, {writers:>2} writer(s): {per_second:.0f} check-and-set writes/s"
            f" ({cpu * 1000:.2f} ms of client CPU each): at {per_renewal:.2f} writes a renewal"
            f" at most {bound:.0f} renewals/s, {bound / bare_throughput:.2f}x the bare loop"
        )


def print_requests(
    one: Counter[str],
    full: Counter[str],
    count: int,
    latency: tuple[float, float],
    per_token: float,
) -> None:
    """The requests of both audited runs, per further token, and what they cost in a row.

    ``latency``: median write and read seconds; ``per_token``: tokenctl's measured
    seconds per further token.
    """
    kinds = sorted(set(one) | set(full), key=lambda kind: (-full[kind], kind))
    further = {kind: (full[kind] - one[kind]) / (count - 1) for kind in kinds}
    heading = "kind (KV API) operation"
    width = max(len(heading), *(len(kind) for kind in kinds))
    print(f"{heading:<{width}}  {'1 token':>7}  {f'{count} tokens':>10}  per further token")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 10}  {'-' * 17}")
    for kind in kinds:
        print(f"{kind:<{width}}  {one[kind]:>7}  {full[kind]:>10}  {further[kind]:>17.2f}")
    total = sum(further.values())
    print(f"{'total':<{width}}  {sum(one.values()):>7}  {sum(full.values()):>10}  {total:>17.2f}")
    reads = sum(n for kind, n in further.items() if kind.endswith((" read", " list")))
    write, read = latency
    in_a_row = (total - reads) * write + reads * read
    print(
        f"KV latency, {KV_SAMPLES} each, one client: check-and-set write median"
        f" {write * 1000:.2f} ms, read median {read * 1000:.2f} ms"
    )
    print(
        f"per further token: {total - reads:.2f} writes + {reads:.2f} reads ="
        f" {in_a_row * 1000:.2f} ms one after another, of tokenctl's {per_token * 1000:.2f} ms"
    )


def run(options: argparse.Namespace) -> int:
    """Start the peers, fill the homes, time the cases, verify and print the report."""
    script = console_script()
    count: int = options.tokens
    if count < 2:
        raise BenchmarkError("--tokens must be at least 2 (one token is the start-up case)")
    team = options.store == "openbao"
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenctl-bench-")))
        home, single_home = workdir / "home", workdir / "home-1"
        pycache = workdir / "pycache"
        print(f"python    {sys.executable} ({platform.python_version()})")
        print(f"tokenctl  {script} (console script, as users run it)")
        if team:
            provider = start_provider(stack, workdir)
            server, what = start_team_store(stack, workdir)
            user_home = workdir / "user-home"  # keeps the children from ~/.vault-token
            user_home.mkdir()
            env = environment(home, pycache, user_home, {"BAO_TOKEN": server.root_token})
            print(f"peers     OpenID provider {provider.issuer} (no Secret Service)")
            print(
                f"store     team: {what} at {server.address}, mount {MOUNT}/,"
                f" paths {team_prefix(home)} and {team_prefix(single_home)}"
            )
        else:
            peers = start_peers(stack, workdir)
            provider = peers.provider
            env = {**child_environment(home, pycache), **peers.secret_service.env}
            print(f"peers     Secret Service (gnome-keyring), OpenID provider {provider.issuer}")

        started = time.perf_counter()
        responses = mint_grants(provider, 2 * count + 2)
        print(
            f"grants    {2 * count + 2} logins in {time.perf_counter() - started:.1f} s"
            f" ({count} + 1 for tokenctl, {count} + 1 for the bare loop)",
            flush=True,
        )
        definition = definition_toml(provider.issuer, max_concurrent_requests=options.concurrency)
        homes = {home: responses[:count], single_home: responses[2 * count : 2 * count + 1]}
        if team:
            keyring_check = fill_team(
                script, env, workdir, homes, definition, server, provider.issuer
            )
        else:
            keyring_check = fill_local(
                script, env, workdir, homes, definition, peers.secret_service, provider.issuer
            )
        state = bare_loop_state(
            workdir / "bare-loop.json", provider, responses[count : 2 * count], options.concurrency
        )
        single_state = bare_loop_state(
            workdir / "bare-loop-1.json", provider, responses[2 * count + 1 :], options.concurrency
        )

        subprocess.run((sys.executable, "-c", WARM_IMPORTS), cwd=workdir, env=env, check=True)
        renew_args = ("renew", "--all", "--json", "--concurrency", str(options.concurrency))
        tokenctl_argv = (str(script), *renew_args)
        single_env = {**env, HOME_ENV: str(single_home)}
        full = (
            Series(f"tokenctl renew --all, {count} tokens", count),
            Series(f"bare authlib loop, {count} tokens", count),
        )
        one = (
            Series("tokenctl renew --all, 1 token", 1),
            Series("bare authlib loop, 1 token", 1),
        )
        cases = [
            Case(full[0], lambda: time_tokenctl(tokenctl_argv, env, workdir)),
            Case(full[1], lambda: time_bare_loop(state, env, workdir)),
            Case(one[0], lambda: time_tokenctl(tokenctl_argv, single_env, workdir)),
            Case(one[1], lambda: time_bare_loop(single_state, env, workdir)),
        ]
        print(
            f"timing    {len(cases)} cases x {options.rounds} rounds after a warm-up round,"
            f" concurrency {options.concurrency}; the order reverses every round ...\n",
            flush=True,
        )
        time_rounds(cases, options.rounds)
        if options.profile is not None:
            profile_once(script, env, workdir, options.profile, renew_args)
        final = time_tokenctl(tokenctl_argv, env, workdir)
        errors = refresh_errors(provider)
        print(f"  afterwards, tokenctl renew --all: {describe(final, count)}")
        if team:  # after the timed runs: the audit device slows the server down
            latency = kv_latency(server)
            capacity = kv_write_capacity(server)
            requests = count_requests(
                server,
                workdir / "bao-audit.log",
                tokenctl_argv,
                [(one[0], single_env), (full[0], env)],
                workdir,
            )
        print(f"load      {', '.join(f'{load:.2f}' for load in os.getloadavg())} (1, 5, 15 min)")
        print()

        print_table([full, one])
        loop = full[1].loop_median
        if loop is not None:
            print(
                f"(the bare loop alone, without interpreter start: median {loop:.2f} s,"
                f" {count / loop:.1f} tokens/s)"
            )
        print_breakdown(full, one)
        if team:
            print()
            per_token = (full[0].median - one[0].median) / (count - 1)
            print_requests(requests[0], requests[1], count, latency, per_token)
            print_capacity(capacity, requests[1], count, full[1].throughput)
        print()
        checks = verdicts(full[0], full[1], final, errors)
        checks.append(keyring_check())
    return report(checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return entry(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
