r"""Text that is safe to show on a terminal: control characters made visible.

Descriptions, account names from a provider's id token and a provider's error texts are
data that someone else chose. Written to a terminal as they are, an ESC, CSI (0x9b) or
OSC sequence in them can clear the screen, retitle the window, hide text or forge output,
and a line break or TAB can forge a line or a field of the tab-separated output. Every
renderer and every stderr message passes data values through :func:`safe_line` (or, for
text that has lines of its own, :func:`safe_text`) before writing them; ``--json`` keeps
the exact value (JSON escapes control characters, see :func:`safe_json`).

The neutralised form is Python's escape notation: ``\x1b``, ``\x9b``, ``\t``, ``\n``,
``\r``. It is plain ASCII, so it shows on any terminal and code page (U+FFFD would not
on a legacy Windows console), it says which character was there (useful when a
provider's message is garbled), and it is what ``repr`` shows for names in messages.
Backslashes themselves are left alone, so Windows paths stay readable; the exact value is
always available with ``--json``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

#: Invisible format characters that reorder or hide text (bidirectional overrides and
#: isolates, zero-width characters, line and paragraph separators, the BOM): a name can
#: otherwise read as another one ("Trojan Source", CVE-2021-42574).
_INVISIBLE = "\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
#: C0 controls (with TAB and line feed), DEL, the C1 controls (0x80-0x9f), the invisible.
_UNSAFE_IN_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")
#: The same, but TAB and line feed are the text's own layout.
_UNSAFE_IN_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")
#: What a clean TAB-separated line may not hold: TAB only between the fields.
_UNSAFE_BESIDE_TAB = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_INVISIBLE}]")
#: What the json module leaves unescaped (with ensure_ascii=False): DEL and C1.
_C1 = re.compile("[\x7f-\x9f]")
_C1_CHARACTERS = tuple(map(chr, range(0x7F, 0xA0)))
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    code = ord(character)
    return _NAMED.get(character) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def safe_line(value: str) -> str:
    """A single-line value for a terminal or a pipe: every control character escaped.

    TAB and line breaks are escaped too: a value must not start a new line or a new
    field of the tab-separated output.
    """
    if _UNSAFE_IN_LINE.search(value) is None:  # the common case: no copy
        return value
    return _UNSAFE_IN_LINE.sub(_escape, value)


def safe_text(value: str) -> str:
    """Multi-line text (a status message, a setup note) made safe for a terminal.

    As :func:`safe_line`, but TAB and line feed are kept: they lay the text out and
    cannot move the cursor anywhere else.
    """
    if _UNSAFE_IN_TEXT.search(value) is None:
        return value
    return _UNSAFE_IN_TEXT.sub(_escape, value)


def safe_row(values: Sequence[str | None]) -> str:
    """TAB-separated fields, each a :func:`safe_line` (``None`` is an empty field)."""
    line = "\t".join([value or "" for value in values])
    # Hot (`list` in a pipe, a line per token): one scan of the whole line in the common case.
    if _UNSAFE_BESIDE_TAB.search(line) is None and line.count("\t") == len(values) - 1:
        return line
    return "\t".join([safe_line(value or "") for value in values])


def safe_json(document: str) -> str:
    r"""A JSON text with DEL and the C1 controls written as ``\u007f`` to ``\u009f``.

    The json module escapes only the C0 controls; a raw CSI (0x9b) in a string would reach
    a terminal that shows ``--json``. The escape parses back to the exact same value.
    """
    # 33 substring searches are ~10x faster than one regex scan of a large document
    # (`list --json` of 10,000 tokens: ~5 ms against ~45 ms); the regex runs only on a hit.
    if not any(character in document for character in _C1_CHARACTERS):
        return document
    return _C1.sub(lambda match: f"\\u{ord(match.group()):04x}", document)


def _ansi_c_quote(word: str) -> str:
    """``$'...'``-quote a word (bash, zsh, ksh; POSIX.1-2024).

    Its control characters become escapes that the shell turns back into the very same
    characters.
    """
    out = []
    for character in word:
        code = ord(character)
        if character in ("\\", "'"):
            out.append("\\" + character)
        elif character in _NAMED:
            out.append(_NAMED[character])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0x80 <= code <= 0x9F or _UNSAFE_IN_LINE.match(character):
            # \u is the character (UTF-8); \x9b would be a lone byte
            out.append(f"\\u{code:04x}")
        else:
            out.append(character)
    return "$'" + "".join(out) + "'"


def shell_join(words: Sequence[str]) -> str:
    """A command line to print for copying, as :func:`shlex.join` makes it.

    Except that a word with a control character is ``$'...'``-quoted: the line then holds
    no control character, and the shell still recreates the word exactly.
    """
    return " ".join(
        _ansi_c_quote(word) if _UNSAFE_IN_LINE.search(word) else shlex.quote(word) for word in words
    )
