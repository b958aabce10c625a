"""Where the team store keeps each thing in its KV version 2 mount: the path names only.

Under the team's prefix ``P``::

    P/meta                      {"format": 1, "inventory_id": ...}, made create-only
    P/counter                   {"next": N}: token numbers, allocated by check-and-set
    P/records/<page>            {"tokens": {"<number>": record}}, PAGE_SIZE tokens a page
    P/names/<enc(name)>         {"number": N}: a name's owner, made create-only
    P/codes/<enc(code)>         {"number": N}: an authentication code's owner
    P/history/<number>          {"events": [...], "archived": [first ids]}: the newest
                                events, appended by check-and-set
    P/history/<number>/<first>  {"events": [...]}: HISTORY_CHUNK older events, create-only
    P/secrets/<definition>/<number>             the token's secrets
    P/clients/<definition>/<enc(client id)>     {"client_secret": ...}
    P/leases/<number>           {"holder": ..., "ttl": s, "expires_at": ...}: who refreshes
                                the token now, taken by check-and-set (create-only first)
    P/budgets/<enc(budget)>     {"calls": [times]}: the token calls of one app and account
                                in the last day, counted by check-and-set (every machine's)
    P/notices/<number>          {"notices": {"<receiver>/<channel>": {"state", "at"}}}: the
                                last webhook notice about the token, by check-and-set;
                                removed when nothing is left to report
    P/webhooks/<receiver>       {"secret": ...}: a webhook's signing secret (the receiver
                                is a digest of its URL, never the URL)

Records (no secrets) and secrets are under separate paths so that a policy may grant
one and deny the other; the secrets are grouped by the token's definition, so that a
policy may grant the secrets of one definition's tokens only (``P/secrets/xero/*``). A
definition's name is a path segment as it is (lower-case letters, digits, ``.``, ``_``,
``-``): policies name it plainly. A name that is not (none tokenctl makes) is encoded
behind a ``~``, which no definition name holds.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from tokenctl.definitions.model import NAME_PATTERN
from tokenctl.errors import UsageError

#: The layout version written to ``meta``; a store of a newer format is refused.
FORMAT = 1
#: Token records per page: ``list`` reads one key per page, not one per token. A page
#: is written whole: 2 JSON strings a record, far below OpenBao's 1,000 a request.
PAGE_SIZE = 100
#: History events per archived chunk; a token's current history key holds up to twice
#: as many (each appended event rewrites it, so it must stay small and under the limit).
HISTORY_CHUNK = 100


def encode_segment(text: str) -> str:
    """``text`` as one path segment: URL-safe base64 of its UTF-8, without padding.

    Names and codes may hold ``/``, spaces or anything else; the encoding keeps each one
    a single key, and two different texts never share one. The empty text, whose
    encoding would be empty, is ``=`` (never the encoding of anything else).
    """
    if not text:
        return "="
    raw = text.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def definition_segment(definition: str) -> str:
    """The path segment of a definition's secrets: its name, when it is a valid one.

    Every definition's name is (:data:`NAME_PATTERN`: never ``.`` or ``..``, no ``/``),
    so policies can grant ``P/secrets/<name>/*``. Any other text, such as a record's
    definition from elsewhere, is ``~`` and its :func:`encode_segment`: one segment,
    never a valid name's.
    """
    if re.match(NAME_PATTERN, definition):
        return definition
    return "~" + encode_segment(definition)


def page_of(number: int) -> int:
    """The records page that holds token ``number`` (numbers start at 1)."""
    return (number - 1) // PAGE_SIZE


def normal_path(text: str, *, what: str) -> str:
    """A mount or prefix without surrounding slashes; refused when it names no path.

    ``what`` names the setting in the message (``mount``, ``path``).
    """
    segments = text.strip().strip("/").split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise UsageError(
            f"the team store {what} {text!r} is not a path",
            hint=f"give the {what} as one or more names separated by '/', such as 'tokenctl'",
        )
    return "/".join(segments)


@dataclass(frozen=True)
class Layout:
    """The paths of one team inventory, under ``prefix`` in its mount."""

    prefix: str

    @property
    def meta(self) -> str:
        """The inventory's format and id."""
        return f"{self.prefix}/meta"

    @property
    def counter(self) -> str:
        """The next token number."""
        return f"{self.prefix}/counter"

    @property
    def records(self) -> str:
        """The folder of the records pages."""
        return f"{self.prefix}/records"

    def page(self, page: int) -> str:
        """One page of records."""
        return f"{self.prefix}/records/{page}"

    @property
    def names(self) -> str:
        """The folder of the name keys."""
        return f"{self.prefix}/names"

    def name(self, name: str) -> str:
        """The key that says which token is named ``name``."""
        return f"{self.prefix}/names/{encode_segment(name)}"

    @property
    def codes(self) -> str:
        """The folder of the authentication code keys."""
        return f"{self.prefix}/codes"

    def code(self, code: str) -> str:
        """The key that says which token has the authentication code ``code``."""
        return f"{self.prefix}/codes/{encode_segment(code)}"

    @property
    def histories(self) -> str:
        """The folder of the token histories."""
        return f"{self.prefix}/history"

    def history(self, number: int) -> str:
        """The newest history events of token ``number``."""
        return f"{self.prefix}/history/{number}"

    def history_chunk(self, number: int, first: int) -> str:
        """Older history events of token ``number``, from event id ``first`` on."""
        return f"{self.prefix}/history/{number}/{first}"

    @property
    def all_secrets(self) -> str:
        """The folder of the token secrets."""
        return f"{self.prefix}/secrets"

    def definition_secrets(self, definition: str) -> str:
        """The folder of the secrets of the tokens of ``definition``."""
        return f"{self.prefix}/secrets/{definition_segment(definition)}"

    def secrets(self, definition: str, number: int) -> str:
        """The secrets of token ``number``, whose definition is ``definition``."""
        return f"{self.definition_secrets(definition)}/{number}"

    def lease(self, number: int) -> str:
        """The refresh lease of token ``number``."""
        return f"{self.prefix}/leases/{number}"

    def budget(self, budget: str) -> str:
        """The token calls counted for one app and account (a definition's limits)."""
        return f"{self.prefix}/budgets/{encode_segment(budget)}"

    def client(self, definition: str, client_id: str) -> str:
        """The client secret of ``client_id`` in ``definition``."""
        segment = definition_segment(definition)
        return f"{self.prefix}/clients/{segment}/{encode_segment(client_id)}"

    @property
    def all_notices(self) -> str:
        """The folder of the webhook notice marks."""
        return f"{self.prefix}/notices"

    def notices(self, number: int) -> str:
        """The last webhook notices sent about token ``number``."""
        return f"{self.prefix}/notices/{number}"

    def webhook(self, receiver: str) -> str:
        """The signing secret of the webhook ``receiver`` (a digest of its URL)."""
        return f"{self.prefix}/webhooks/{encode_segment(receiver)}"
