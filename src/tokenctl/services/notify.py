"""Webhook notices: ``notify add/list/remove/test``, and what ``check`` and ``renew --all`` send.

A notice is sent when a token's state changed since the last notice about it (kept in
the inventory per webhook and channel, :class:`~tokenctl.models.NoticeMark`), so that a
cron job every 5 minutes reports a failure once, and its recovery once. Delivery never
changes the exit code of the command that sends: a webhook that does not take a notice
is named on stderr, and its notice stays unsent, so the next run tries again.

Each body is signed as Stripe signs its webhooks: ``X-Tokenctl-Signature:
t=TIMESTAMP,v1=HEX``, HEX the HMAC-SHA256 of ``TIMESTAMP.BODY`` under the webhook's
signing secret (kept in the secret store, never in config.toml). See docs/monitoring.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tokenctl.config import Webhook, webhook_url_problem
from tokenctl.context import AppContext
from tokenctl.errors import NotFoundError, TokenctlError, UsageError
from tokenctl.models import Status, Token
from tokenctl.timeutil import to_iso

if TYPE_CHECKING:
    from tokenctl.services.check import CheckReport
    from tokenctl.services.renew_all import BulkReport

#: The version of the notice body (docs/json.md, "webhook notice").
NOTICE_SCHEMA_VERSION = 1
#: The signature header (Stripe's scheme under tokenctl's name).
SIGNATURE_HEADER = "X-Tokenctl-Signature"
#: Seconds one delivery attempt may take in all (connect, send, answer).
TIMEOUT = 5.0
#: Attempts per notice; the waits between them double from BACKOFF seconds.
ATTEMPTS = 3
BACKOFF = 0.5
#: Seconds one webhook's notices may take in a run; the rest wait for the next run.
RECEIVER_BUDGET = 20.0


class NoticeEvent(StrEnum):
    """What a notice reports (the body's ``event``)."""

    EXPIRING = "expiring"  # the connection ends within the expiring window
    FAILING = "failing"  # expired, invalid, insufficient, or no secret stored
    RENEWAL_FAILED = "renewal_failed"  # renew --all could not refresh it
    LOGIN_NEEDED = "login_needed"  # renew --all: only a new login renews it
    RECOVERED = "recovered"  # what an earlier notice reported is over
    TEST = "test"  # notify test


class Channel(StrEnum):
    """Which command's findings a notice reports; each keeps its own last notice."""

    CHECK = "check"
    RENEW = "renew"


@dataclass(frozen=True)
class Observation:
    """What a command found about one token: ``state`` ``None`` when nothing is wrong."""

    token: Token
    channel: Channel
    state: str | None
    event: NoticeEvent | None
    status: Status
    detail: str
    fix: str | None


@dataclass(frozen=True)
class Notice:
    """One notice to send; :meth:`body` is what a webhook receives."""

    id: str
    event: NoticeEvent
    at: datetime
    source: str
    unit: str
    token: Token | None = None
    status: Status | None = None
    detail: str = ""
    fix: str | None = None
    previous: str | None = None

    def body(self) -> bytes:
        """The JSON body, UTF-8 (docs/json.md, "webhook notice")."""
        token = self.token
        document = {
            "schema_version": NOTICE_SCHEMA_VERSION,
            "id": self.id,
            "event": self.event.value,
            "at": to_iso(self.at),
            "source": self.source,
            "unit": self.unit,
            "number": token.number if token else None,
            "name": token.name if token else None,
            "definition": token.definition if token else None,
            "tenant": _tenant(token) if token else None,
            "status": self.status.value if self.status else None,
            "detail": self.detail or None,
            "previous": self.previous,
            "fix": self.fix,
            "text": self.text(),
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def text(self) -> str:
        """One line Slack and Microsoft Teams show as it is (``&``, ``<``, ``>`` escaped)."""
        token = self.token
        if token is None:
            line = f"tokenctl on {self.unit}: a test notice; this webhook works."
        else:
            what = {
                NoticeEvent.EXPIRING: "expires soon",
                NoticeEvent.FAILING: "is failing",
                NoticeEvent.RENEWAL_FAILED: "could not be renewed",
                NoticeEvent.LOGIN_NEEDED: "needs a new login",
                NoticeEvent.RECOVERED: "is fine again",
                NoticeEvent.TEST: "test",
            }[self.event]
            line = f"tokenctl on {self.unit}: token {token.name} (#{token.number}, "
            line += f"{token.definition}) {what}"
            line += f": {self.detail}" if self.detail else ""
            line += f". Fix: {self.fix}" if self.fix else "."
        # Slack reads <...> as a link or a mention (<!channel>): a token's name must not.
        return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tenant(token: Token) -> str | None:
    return token.attributes.get("tenant") or token.attributes.get("tenants") or None


def receiver_key(url: str) -> str:
    """The webhook as the secret store and the notice marks name it: a digest of its URL.

    Never the URL itself: a Slack or Teams webhook URL is a credential.
    """
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]


def shown_url(url: str) -> str:
    """The URL as output shows it: scheme, host and port, and the last 4 characters.

    An incoming webhook's URL carries its credential in the path; enough is shown to
    tell two apart, not to post to one.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    rest = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    tail = f"/…{rest[-4:]}" if len(rest) > 4 else f"/{rest}"
    return f"{parts.scheme}://{host}{port}{tail}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Tokenctl-Signature`` value: ``t=TIMESTAMP,v1=HMAC-SHA256(TIMESTAMP.BODY)``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# -- notify add / list / remove -------------------------------------------------------


@dataclass(frozen=True)
class WebhookView:
    """A configured webhook as ``notify list`` shows it (never its full URL or secret)."""

    number: int
    shown: str
    receiver: str
    signed: bool


@dataclass(frozen=True)
class AddResult:
    """What ``notify add`` did."""

    shown: str
    signed: bool
    added: bool  # False: it was there already (its secret may have been replaced)


def _config_document(ctx: AppContext) -> dict[str, Any]:
    from tokenctl.config import load_config, read_toml

    load_config(ctx.paths.config_file)  # a broken config.toml is reported, not rewritten
    return dict(read_toml(ctx.paths.config_file))


def _write_config(ctx: AppContext, document: dict[str, Any]) -> None:
    """Replace config.toml with ``document``: its other settings kept, readers see either."""
    import tomli_w

    from tokenctl.fsutil import write_private_atomic

    if not document.get("webhooks"):
        document.pop("webhooks", None)
    write_private_atomic(ctx.paths.config_file, tomli_w.dumps(document).encode("utf-8"))


def add_webhook(ctx: AppContext, url: str, *, secret_from_stdin: bool) -> AddResult:
    """Add ``url`` to config.toml; with ``secret_from_stdin`` its signing secret to the store.

    The secret goes first: a store that refuses it leaves config.toml as it was.
    Adding a webhook that is there already changes nothing but its secret, if given.
    """
    problem = webhook_url_problem(url)
    if problem is not None:
        raise UsageError(
            f"the webhook URL is refused: {problem}",
            hint="give an https:// URL (plain http:// only to 127.0.0.1, ::1 or localhost)",
        )
    document = _config_document(ctx)
    entries = [dict(item) for item in document.get("webhooks", [])]
    existing = next((item for item in entries if item.get("url") == url), None)
    if secret_from_stdin:
        ctx.inventory.ensure_secrets_writable()
        secret = ctx.io.read_secret(
            "signing secret", from_stdin=True, flag="--secret-stdin", required=True
        )
        assert secret is not None  # required
        ctx.inventory.set_webhook_secret(receiver_key(url), secret)
    if existing is None:
        entries.append({"url": url, "signed": secret_from_stdin})
    elif secret_from_stdin:
        existing["signed"] = True
    signed = bool((existing or entries[-1]).get("signed"))
    if existing is None or secret_from_stdin:
        document["webhooks"] = entries
        _write_config(ctx, document)
    return AddResult(shown_url(url), signed, added=existing is None)


def list_webhooks(ctx: AppContext) -> list[WebhookView]:
    """The webhooks in config.toml, numbered from 1 in their order."""
    return [
        WebhookView(number, shown_url(hook.url), receiver_key(hook.url), hook.signed)
        for number, hook in enumerate(ctx.config.webhooks, start=1)
    ]


def _find(ctx: AppContext, ref: str) -> Webhook:
    """The configured webhook ``ref`` names: its URL, or its number in ``notify list``."""
    hooks = ctx.config.webhooks
    for hook in hooks:
        if hook.url == ref:
            return hook
    if ref.isdigit() and 1 <= int(ref) <= len(hooks):
        return hooks[int(ref) - 1]
    raise NotFoundError(
        "no such webhook in config.toml",
        hint="give its URL or its number from `tokenctl notify list`",
    )


def remove_webhook(ctx: AppContext, ref: str) -> WebhookView:
    """Remove the webhook ``ref`` names from config.toml, and on the local store its secret.

    The secret goes first: a store that refuses leaves config.toml as it was, so the
    command can be run again. On the team store the secret is shared: other machines'
    config.toml may still name the webhook, so it stays (``notify add`` replaces it).
    """
    hook = _find(ctx, ref)
    receiver = receiver_key(hook.url)
    had_secret = False
    if hook.signed and not ctx.inventory.remote:
        had_secret = ctx.inventory.delete_webhook_secret(receiver)
    document = _config_document(ctx)
    document["webhooks"] = [
        item for item in document.get("webhooks", []) if item.get("url") != hook.url
    ]
    _write_config(ctx, document)
    return WebhookView(0, shown_url(hook.url), receiver, had_secret)


# -- delivery ---------------------------------------------------------------------------


@dataclass
class _Outbox:
    """One webhook's notices of this run, and what came of them."""

    hook: Webhook
    secret: str | None
    notices: list[tuple[Notice, Observation | None, str | None]] = field(default_factory=list)
    delivered: int = 0
    problem: str | None = None


def _attempt(
    client: Any, hook: Webhook, secret: str | None, notice: Notice, now: int
) -> str | None:
    """POST ``notice`` once; ``None`` when taken, else why not (``retry:`` when worth it)."""
    import httpx2

    body = notice.body()
    headers = {"Content-Type": "application/json", "User-Agent": "tokenctl"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret, now, body)
    try:
        response = client.post(hook.url, content=body, headers=headers)
    except httpx2.TimeoutException:
        return f"retry:no answer within {TIMEOUT:g} s"
    except httpx2.HTTPError as error:
        return f"retry:{type(error).__name__}"
    except Exception as error:  # an invalid URL, anything else: never the run's failure
        # Only its type: the message may hold the URL, which is itself a credential.
        return type(error).__name__
    status = response.status_code
    if 200 <= status < 300:
        return None
    # Busy or broken now: worth another attempt. A refusal (404, 403, a redirect) is not.
    prefix = "retry:" if status == 429 or status >= 500 else ""
    return f"{prefix}HTTP {status}"


def _deliver(ctx: AppContext, box: _Outbox, client: Any) -> None:
    """Send ``box``'s notices in order, each with retries, until one fails or time is up."""
    started = ctx.monotonic()
    over = f"more than {RECEIVER_BUDGET:g} s"
    for notice, _observation, _previous in box.notices:
        problem: str | None = None
        for attempt in range(ATTEMPTS):
            wait = BACKOFF * 2 ** (attempt - 1) if attempt else 0.0
            # An attempt may take TIMEOUT: start one only if it ends within the budget.
            if ctx.monotonic() - started + wait + TIMEOUT > RECEIVER_BUDGET:
                problem = problem or over
                break
            if wait:
                ctx.sleep(wait)
            problem = _attempt(client, box.hook, box.secret, notice, int(ctx.now().timestamp()))
            if problem is None or not problem.startswith("retry:"):
                break
        if problem is not None:
            box.problem = problem.removeprefix("retry:")
            return
        box.delivered += 1


def _client(ctx: AppContext) -> Any:
    """An httpx2 client under the context's transport (tests), each request bounded."""
    import httpx2

    from tokenctl.oauth.http import DeadlineTransport

    inner = ctx.http_transport if isinstance(ctx.http_transport, httpx2.BaseTransport) else None
    # Plain http is allowed only to this machine: never through an environment proxy.
    return httpx2.Client(
        transport=DeadlineTransport(TIMEOUT, inner, loopback_direct=True),
        timeout=TIMEOUT,
        follow_redirects=False,
    )


def _send_all(ctx: AppContext, boxes: Sequence[_Outbox]) -> None:
    """Deliver every webhook's notices, the webhooks at the same time (none waits for another)."""
    from concurrent.futures import ThreadPoolExecutor

    busy = [box for box in boxes if box.notices]
    if not busy:
        return
    with _client(ctx) as client, ThreadPoolExecutor(len(busy)) as pool:
        for box, future in [(box, pool.submit(_deliver, ctx, box, client)) for box in busy]:
            try:
                future.result()
            except Exception as error:  # what is not delivered is put back by the caller
                box.problem = box.problem or type(error).__name__


def _secret_of(ctx: AppContext, hook: Webhook) -> tuple[bool, str | None]:
    """``(usable, secret)``: an unsigned webhook has none; a signed one needs its secret."""
    if not hook.signed:
        return True, None
    try:
        secret = ctx.inventory.webhook_secret(receiver_key(hook.url))
    except TokenctlError as error:
        ctx.io.warn(f"webhook {shown_url(hook.url)}: notices not sent: {error.message}")
        return False, None
    if secret is None:
        ctx.io.warn(
            f"webhook {shown_url(hook.url)}: notices not sent: its signing secret is not in "
            "this store; store it with `tokenctl notify add URL --secret-stdin`"
        )
        return False, None
    return True, secret


def _notice(ctx: AppContext, seen: Observation, previous: str | None, source: str) -> Notice:
    """The notice of one change: ``seen``'s event, or ``recovered`` when nothing is wrong."""
    import uuid

    if seen.state is None:
        event = NoticeEvent.RECOVERED
        detail = f"no longer {previous.replace(':', ': ')}" if previous else ""
        fix = None
    else:
        assert seen.event is not None
        event, detail, fix = seen.event, seen.detail, seen.fix
    return Notice(
        id=str(uuid.uuid4()),
        event=event,
        at=ctx.now(),
        source=source,
        unit=ctx.config.unit or ctx.host_name(),
        token=seen.token,
        status=seen.status,
        detail=detail,
        fix=fix,
        previous=previous,
    )


def send_notices(ctx: AppContext, observations: Iterable[Observation], source: str) -> None:
    """Notify each webhook of every token whose state changed since its last notice.

    Each notice is claimed (its mark set, atomically) before it is sent, so two machines
    sharing the team store never both send it, and put back when it could not be
    delivered, so the next run sends it again. Nothing here raises: whatever goes wrong
    is one line on stderr, and the command's outcome and exit code stay as they were.
    """
    hooks = ctx.config.webhooks
    if not hooks:
        return  # no webhooks: the inventory's notice marks are never read
    seen = list(observations)
    try:
        marks = {(mark.number, mark.key): mark.state for mark in ctx.inventory.notices()}
    except TokenctlError as error:
        ctx.io.warn(f"webhooks: no notices sent: {error.message}")
        return
    boxes: list[_Outbox] = []
    claimed: list[tuple[int, str, str | None, str | None]] = []
    # One notice per token, channel and change, the same (its id too) in every webhook's
    # copy: a receiver fed by two webhooks can drop the repeat.
    notices: dict[tuple[int, str, str | None, str | None], Notice] = {}
    try:
        for hook in hooks:
            receiver = receiver_key(hook.url)
            changed = []
            for item in seen:
                key = f"{receiver}/{item.channel.value}"
                previous = marks.get((item.token.number, key))
                if previous != item.state:
                    changed.append((item, key, previous))
            if not changed:
                continue
            usable, secret = _secret_of(ctx, hook)
            if not usable:
                continue
            box = _Outbox(hook, secret)
            for item, key, previous in changed:
                now = ctx.now()
                if ctx.inventory.mark_notice(item.token.number, key, previous, item.state, now):
                    claimed.append((item.token.number, key, previous, item.state))
                    same = (item.token.number, item.channel.value, previous, item.state)
                    if same not in notices:
                        notices[same] = _notice(ctx, item, previous, source)
                    box.notices.append((notices[same], item, previous))
                # else: another process has just sent it (or taken it back): not ours
            boxes.append(box)
    except TokenctlError as error:
        ctx.io.warn(f"webhooks: notices not sent: {error.message}")
        _put_back(ctx, claimed)
        return
    _send_all(ctx, boxes)
    undelivered: list[tuple[int, str, str | None, str | None]] = []
    for box in boxes:
        receiver = receiver_key(box.hook.url)
        for _sent, unsent, previous in box.notices[box.delivered :]:
            assert unsent is not None
            key = f"{receiver}/{unsent.channel.value}"
            undelivered.append((unsent.token.number, key, previous, unsent.state))
        left = len(box.notices) - box.delivered
        if box.problem is not None:
            ctx.io.warn(
                f"webhook {shown_url(box.hook.url)}: {left} notice(s) not delivered "
                f"({box.problem}); the next run tries again"
            )
    _put_back(ctx, undelivered)


def _put_back(ctx: AppContext, claimed: Iterable[tuple[int, str, str | None, str | None]]) -> None:
    """Undo the marks of notices not delivered: the next run finds them unsent."""
    failed: list[int] = []
    reason = ""
    for number, key, previous, state in claimed:
        try:
            ctx.inventory.mark_notice(number, key, state, previous, ctx.now())
        except TokenctlError as error:  # go on: each mark put back is a notice kept
            failed.append(number)
            reason = error.message
    if failed:
        tokens = ", ".join(f"#{number}" for number in sorted(set(failed)))
        ctx.io.warn(
            f"webhooks: {len(failed)} undelivered notice(s) (token {tokens}) may not be sent "
            f"again: {reason}"
        )


# -- what check and renew --all found ---------------------------------------------------


def check_observations(ctx: AppContext, report: CheckReport) -> list[Observation]:
    """Each token ``check`` looked at: a finding's state, or ``None`` (nothing wrong)."""
    from tokenctl.services.check import Severity

    found = {f.view.token.number: f for f in report.findings}
    observations = []
    for token in (view.token for view in report.views):
        finding = found.get(token.number)
        if finding is None:
            observations.append(
                Observation(token, Channel.CHECK, None, None, _status(ctx, token), "", None)
            )
            continue
        status = finding.view.status
        if finding.severity is Severity.EXPIRING:
            state, event = "expiring", NoticeEvent.EXPIRING
        else:
            kind = "secret-missing" if finding.view.token.secret_set_at is None else status.value
            state, event = f"failing:{kind}", NoticeEvent.FAILING
        observations.append(
            Observation(
                finding.view.token, Channel.CHECK, state, event, status, finding.reason, finding.fix
            )
        )
    return observations


def renewal_observations(ctx: AppContext, report: BulkReport) -> list[Observation]:
    """Each token ``renew --all`` tried: failed, needs a login, or renewed (``None``)."""
    from tokenctl.services.renew_all import BulkOutcome

    observations = []
    for item in report.items:
        token = item.token
        if item.outcome in (BulkOutcome.REFRESHED, BulkOutcome.CONCURRENT):
            state, event = None, None
        elif item.outcome is BulkOutcome.NEEDS_LOGIN:
            state, event = "login-needed", NoticeEvent.LOGIN_NEEDED
        elif item.outcome is BulkOutcome.FAILED or item.unusable:
            state, event = "renewal-failed", NoticeEvent.RENEWAL_FAILED
        else:
            continue  # deferred to keep a provider's limit, still usable: nothing to say
        observations.append(
            Observation(
                token, Channel.RENEW, state, event, _status(ctx, token), item.detail, item.fix
            )
        )
    return observations


def _status(ctx: AppContext, token: Token) -> Status:
    from tokenctl.services.tokens import view_of

    return view_of(ctx, token, ctx.now()).status


# -- notify test ------------------------------------------------------------------------


@dataclass(frozen=True)
class TestOutcome:
    """One webhook's answer to ``notify test``: ``problem`` ``None`` when it took it."""

    shown: str
    signed: bool
    problem: str | None


def test_webhooks(ctx: AppContext, ref: str | None) -> list[TestOutcome]:
    """Send a test notice to every webhook (or the one ``ref`` names); nothing is marked."""
    import uuid

    hooks = [_find(ctx, ref)] if ref is not None else list(ctx.config.webhooks)
    if not hooks:
        raise NotFoundError(
            "no webhook is configured", hint="add one with `tokenctl notify add URL`"
        )
    unit = ctx.config.unit or ctx.host_name()
    boxes: list[_Outbox] = []
    outcomes: dict[str, str | None] = {}
    for hook in hooks:
        usable, secret = _secret_of(ctx, hook)
        if not usable:
            outcomes[hook.url] = "its signing secret could not be read"
            continue
        notice = Notice(str(uuid.uuid4()), NoticeEvent.TEST, ctx.now(), "notify test", unit)
        boxes.append(_Outbox(hook, secret, [(notice, None, None)]))
    _send_all(ctx, boxes)
    for box in boxes:
        outcomes[box.hook.url] = box.problem
    return [TestOutcome(shown_url(h.url), h.signed, outcomes[h.url]) for h in hooks]
