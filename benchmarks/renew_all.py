"""Benchmark ``tokenctl renew --all`` against a bare refresh loop on the same OAuth provider.

Starts a private Secret Service (gnome-keyring) and the local OpenID provider
(``tests/peers``), gets ``--tokens`` grants with refresh tokens for tokenctl and as many
for the bare loop (browser logins played by ``OidcServer.browser_login``), fills a
throw-away tokenctl home with them the way ``tokenctl add`` records a login, then times
real subprocesses, interleaved:

* ``tokenctl renew --all --json`` (concurrency 8), and
* the bare loop ``benchmarks/_refresh_loop.py``: authlib's ``AsyncOAuth2Client`` on httpx2
  refreshing the same kind of tokens with the same concurrency, nothing else (the
  provider's capacity as a client that stores nothing sees it).

Bars:

* throughput (tokens per second, median run) at least 0.8 times the bare loop's;
* no token lost: every run renewed every token, a last ``tokenctl renew --all`` still
  renews every token with its stored refresh token, and the provider counted no refresh
  grant error.

The secrets are sealed in the inventory under one data key per inventory, which the
(real) Secret Service holds: the script checks that the keyring has that one entry,
however many tokens, and a renewal touches the keyring only to read the key once.
Exit status: 0 when every check passes, 1 when one fails, 2 when the benchmark cannot run.
This is a script, not a test; run it by hand (see benchmarks/README.md)::

    python benchmarks/renew_all.py [--tokens 500] [--rounds 3] [--profile DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
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

from tokenctl.definitions.model import Definition
from tokenctl.definitions.registry import load_definitions
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
    " tokenctl.render.check"
)
SEED = 20_240_602


@dataclass
class Run:
    """One timed run: its wall-clock seconds and how many tokens it renewed."""

    seconds: float
    renewed: int
    loop_seconds: float | None = None  # the bare loop's own timing, without start-up
    problems: dict[str, int] = field(default_factory=dict)  # "outcome: detail" -> count

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
    def loop_median(self) -> float | None:
        """Median of the bare loop's own timings (without interpreter start and imports)."""
        loops = [run.loop_seconds for run in self.runs if run.loop_seconds is not None]
        return statistics.median(loops) if loops else None


@dataclass
class Peers:
    """The Secret Service and the OpenID provider of one benchmark run."""

    secret_service: SecretService
    provider: OidcServer


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of this script."""
    parser = benchmark_parser(
        "Time `tokenctl renew --all` against a bare authlib refresh loop.",
        rounds=3,
        rounds_help="timed runs of each case (default 3); the order alternates every round",
    )
    parser.add_argument(
        "--tokens",
        type=positive_int,
        default=DEFAULT_TOKENS,
        help=f"tokens to renew per run (default {DEFAULT_TOKENS})",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"refreshes at once, for both (default {DEFAULT_CONCURRENCY})",
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
    try:
        provider = start_oidc_provider(PROVIDER_CONFIG, workdir / "oidc")
    except OidcPeerError as error:
        raise BenchmarkError(f"no OpenID provider: {error}") from None
    stack.callback(provider.stop)
    return Peers(secret_service, provider)


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


def definition_toml(issuer: str) -> str:
    """The OAuth definition of the local provider (endpoints by discovery of the issuer)."""
    scopes = ", ".join(f'"{scope}"' for scope in SCOPES)
    required = ", ".join(f'"{scope}"' for scope in REQUIRED_SCOPES)
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


def fill_home(
    home: Path, responses: Sequence[Mapping[str, Any]], issuer: str, keyring: OsKeyring
) -> str:
    """Record one OAuth token per response, its secrets sealed with it; the data key's entry.

    Done in this process, through tokenctl's inventory, as ``tokenctl add`` stores a login:
    the record and its secrets in one transaction (the first one makes the inventory's
    data key in ``keyring``), then the ``retrieved`` event.
    """
    paths = resolve_paths(None, {HOME_ENV: str(home)})
    definition = load_definitions(paths.definitions_file).require(DEFINITION)
    actor = Actor(user="bench", unit="bench-host")
    inventory = SqliteInventory(paths.inventory_file, lambda: keyring)
    try:
        relax_durability(inventory)
        for index, response in enumerate(responses, start=1):
            now = datetime.now(UTC)
            token, token_secrets = oauth_token(index, response, definition, issuer, now)
            added = inventory.add(token, actor, now, secrets=token_secrets)
            inventory.record_event(
                added, actor, now, event="retrieved", outcome="ok", detail="benchmark login"
            )
        return inventory.sealed.key_ref
    finally:
        inventory.close()


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


def time_tokenctl(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Run:
    """One timed ``tokenctl renew --all --json``; a run that renews not all still counts."""
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    try:
        renewed, problems = tokenctl_outcomes(result.stdout)
    except (ValueError, KeyError):
        raise BenchmarkError(
            f"tokenctl renew --all: exit status {result.returncode}, no JSON report\n"
            + result.stderr[-2000:]
        ) from None
    return Run(seconds, renewed, problems=problems)


def time_bare_loop(state: Path, env: Mapping[str, str], cwd: Path) -> Run:
    """One timed run of the bare refresh loop over the tokens in ``state``."""
    started = time.perf_counter()
    result = subprocess.run(
        (sys.executable, str(REFRESH_LOOP), str(state)),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise BenchmarkError(
            f"the bare loop: exit status {result.returncode}, no report\n{result.stderr[-2000:]}"
        ) from None
    problems = Counter(failure["error"] for failure in report["failed"])
    return Run(seconds, int(report["refreshed"]), float(report["loop_seconds"]), dict(problems))


def alternate(first: str, second: str, rounds: int) -> Iterator[tuple[str, str]]:
    """Both cases once per round; which goes first alternates, to cancel drift."""
    for number in range(rounds):
        yield (first, second) if number % 2 == 0 else (second, first)


def refresh_errors(provider: OidcServer) -> int:
    """Refresh grant errors the provider has counted since its start."""
    return int(provider.stats().get("grant_error", {}).get("refresh_token", 0))


# -- report ------------------------------------------------------------------------------


def print_table(series: Sequence[Series], bare: Series) -> None:
    """Case, median and min seconds, tokens per second and the ratio to the bare loop."""
    width = max(len(item.label) for item in series)
    print(f"{'case':<{width}}  {'median s':>9}  {'min s':>7}  {'tokens/s':>9}  {'x bare':>7}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 7}  {'-' * 9}  {'-' * 7}")
    for item in series:
        print(
            f"{item.label:<{width}}  {item.median:>9.2f}  {item.best:>7.2f}"
            f"  {item.throughput:>9.1f}  {item.throughput / bare.throughput:>7.2f}"
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
    print(f"profile   {out} (exit status {result.returncode}; main thread only)")


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


def time_rounds(
    tokenctl_argv: Sequence[str],
    state: Path,
    env: Mapping[str, str],
    cwd: Path,
    options: argparse.Namespace,
) -> tuple[Series, Series]:
    """Both cases once per round, alternating which goes first; prints every run."""
    count: int = options.tokens
    tokenctl_series = Series(f"tokenctl renew --all, {count} tokens", count)
    bare_series = Series(f"bare authlib loop, {count} tokens", count)
    print(
        f"timing    2 cases x {options.rounds} rounds, concurrency {options.concurrency};"
        " the order alternates ...\n",
        flush=True,
    )
    for order in alternate("tokenctl", "bare", options.rounds):
        for case in order:
            if case == "tokenctl":
                series, outcome = tokenctl_series, time_tokenctl(tokenctl_argv, env, cwd)
            else:
                series, outcome = bare_series, time_bare_loop(state, env, cwd)
            series.runs.append(outcome)
            print(f"  {series.label}: {describe(outcome, count)}", flush=True)
    return tokenctl_series, bare_series


def describe(outcome: Run, count: int) -> str:
    """Seconds, tokens renewed and what happened to the others."""
    problems = f" ({outcome.describe_problems()})" if outcome.problems else ""
    return f"{outcome.seconds:.2f} s, {outcome.renewed}/{count} renewed{problems}"


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


def one_entry_check(key_entry: str, before: Sequence[str], after: Sequence[str]) -> Check:
    """The keyring holds the inventory's data key and nothing else, before and after renewing.

    One entry per inventory however many tokens, and a renewal never writes the keyring.
    """
    expected = [key_entry]
    return Check(
        passed(list(before) == expected and list(after) == expected),
        f"one keyring entry for the inventory ({key_entry}): before the runs"
        f" {len(before)}, after {len(after)}",
    )


def run(options: argparse.Namespace) -> int:
    """Start the peers, fill the home, time both cases, verify and print the report."""
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
        print(f"peers     Secret Service (gnome-keyring), OpenID provider {provider.issuer}")

        started = time.perf_counter()
        responses = mint_grants(provider, 2 * count)
        print(
            f"grants    {2 * count} logins in {time.perf_counter() - started:.1f} s"
            f" ({count} for tokenctl, {count} for the bare loop)",
            flush=True,
        )
        # This process makes the data key, through the same Secret Service.
        os.environ.update(peers.secret_service.env)
        keyring = OsKeyring()
        keyring.ensure_available()
        source = workdir / "definitions.toml"
        source.write_text(definition_toml(provider.issuer))
        run_tokenctl(script, env, workdir, "definitions", "add", "--file", str(source))
        started = time.perf_counter()
        key_entry = fill_home(home, responses[:count], provider.issuer, keyring)
        print(
            f"filled    {count} OAuth tokens, secrets sealed in the inventory, in"
            f" {time.perf_counter() - started:.1f} s  ({home})",
            flush=True,
        )
        entries_before = keyring_entries(keyring)
        print(f"keyring   entries under service tokenctl: {', '.join(entries_before) or 'none'}")
        state = bare_loop_state(
            workdir / "bare-loop.json", provider, responses[count:], options.concurrency
        )

        subprocess.run((sys.executable, "-c", WARM_IMPORTS), cwd=workdir, env=env, check=True)
        renew_args = ("renew", "--all", "--json", "--concurrency", str(options.concurrency))
        tokenctl_argv = (str(script), *renew_args)
        tokenctl_series, bare_series = time_rounds(tokenctl_argv, state, env, workdir, options)
        if options.profile is not None:
            profile_once(script, env, workdir, options.profile, renew_args)
        final = time_tokenctl(tokenctl_argv, env, workdir)
        errors = refresh_errors(provider)
        print(f"  afterwards, tokenctl renew --all: {describe(final, count)}")
        print()

        print_table([tokenctl_series, bare_series], bare_series)
        loop = bare_series.loop_median
        if loop is not None:
            print(
                f"(the bare loop alone, without interpreter start: median {loop:.2f} s,"
                f" {count / loop:.1f} tokens/s)"
            )
        entries_after = keyring_entries(keyring)
        print()
        checks = verdicts(tokenctl_series, bare_series, final, errors)
        checks.append(one_entry_check(key_entry, entries_before, entries_after))
    return report(checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return entry(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
