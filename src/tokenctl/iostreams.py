"""Standard streams, terminal detection, colour and prompts, injected into every command.

stdout carries data; stderr carries status, warnings, prompts and progress. Prompts are
only shown when stdin and stderr are terminals; otherwise the caller names the flag
that answers the question.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from tokenctl.errors import UsageError
from tokenctl.textsafe import safe_line, safe_text

if TYPE_CHECKING:
    from rich.console import Console


#: Exit status when the reader of stdout went away (``tokenctl list | head -1``): 128 + SIGPIPE,
#: what a shell reports for a program that SIGPIPE ended.
STDOUT_CLOSED = 141


def discard_stdout() -> None:
    """Point stdout at the null device once its reader has gone (see docs/exit-codes.md).

    As the Python documentation advises (signal module, "Note on SIGPIPE"): then the
    interpreter's last flush of what is still buffered does not fail again and print
    "Exception ignored ... BrokenPipeError" on stderr.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - stdout is no file
        pass


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _hidden_prompt(label: str, stream: TextIO) -> str:
    import getpass

    return getpass.getpass(f"{safe_line(label)}: ", stream=stream)


@dataclass
class IOStreams:
    """The three streams plus what we know about them."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    stdin_tty: bool = False
    stdout_tty: bool = False
    stderr_tty: bool = False
    color: bool = False
    width: int | None = None
    hidden_prompt: Callable[[str, TextIO], str] = _hidden_prompt
    _out_console: Console | None = field(default=None, init=False, repr=False)
    _err_console: Console | None = field(default=None, init=False, repr=False)

    @classmethod
    def system(cls, environ: Mapping[str, str]) -> IOStreams:
        """The process's real streams; colour unless NO_COLOR is set or stdout is a pipe."""
        stdout_tty = _is_tty(sys.stdout)
        return cls(
            stdin=sys.stdin,
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdin_tty=_is_tty(sys.stdin),
            stdout_tty=stdout_tty,
            stderr_tty=_is_tty(sys.stderr),
            color=stdout_tty and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb",
        )

    @property
    def can_prompt(self) -> bool:
        """True when a person can answer: stdin and stderr are terminals."""
        return self.stdin_tty and self.stderr_tty

    def _console(self, stream: TextIO, tty: bool) -> Console:
        from rich.console import Console

        return Console(
            file=stream,
            force_terminal=tty,
            no_color=not self.color,
            color_system="auto" if self.color else None,
            highlight=False,
            soft_wrap=False,
            width=self.width,
        )

    @property
    def out(self) -> Console:
        """A rich console on stdout (for TTY output only)."""
        if self._out_console is None:
            self._out_console = self._console(self.stdout, self.stdout_tty)
        return self._out_console

    @property
    def err(self) -> Console:
        """A rich console on stderr for status, warnings and prompts."""
        if self._err_console is None:
            self._err_console = self._console(self.stderr, self.stderr_tty)
        return self._err_console

    def write(self, text: str) -> None:
        """Write data to stdout as it is."""
        self.stdout.write(text)

    def status(self, message: str) -> None:
        """A status line on stderr: plain text, no markup, control characters escaped.

        Line breaks and TABs are kept (see tokenctl.textsafe.safe_text).
        """
        self.stderr.write(f"{safe_text(message)}\n")

    def warn(self, message: str) -> None:
        """A warning on stderr: one line, control characters escaped."""
        message = safe_line(message)
        if self.stderr_tty and self.color:
            from rich.text import Text

            self.err.print(Text(f"warning: {message}", style="bold yellow"))
        else:
            self.stderr.write(f"warning: {message}\n")

    def confirm(self, question: str, *, flag: str) -> bool:
        """Ask a yes/no question on a terminal; without one, fail and name ``flag``."""
        if not self.can_prompt:
            raise UsageError(
                f"{question} (no terminal to ask on)", hint=f"pass {flag} to answer yes"
            )
        self.stderr.write(f"{safe_line(question)} [y/N]: ")
        self.stderr.flush()
        answer = self.stdin.readline().strip().lower()
        return answer in {"y", "yes"}

    def read_line(self, label: str) -> str:
        """One line from stdin, stripped: typed after ``label`` on a terminal, else piped in.

        For answers a script may pipe in (paste mode's redirected URL); a question that
        only a person answers goes through :meth:`prompt` or :meth:`choose`.
        """
        if self.can_prompt:
            self.stderr.write(f"{safe_line(label)}: ")
            self.stderr.flush()
        return self.stdin.readline().strip()

    def prompt(self, label: str, *, flag: str, default: str | None = None) -> str:
        """Ask for one line on a terminal; without one, fail and name ``flag``.

        An empty answer is ``default`` when there is one (shown as ``[default]``).
        """
        if not self.can_prompt:
            raise UsageError(f"{label} (no terminal to ask on)", hint=f"pass {flag}")
        shown = label if default is None else f"{label} [{default}]"
        return self.read_line(shown) or (default or "")

    def choose(
        self,
        question: str,
        options: Sequence[str],
        *,
        flag: str,
        default: int = 0,
        item: str = "choice",
    ) -> int:
        """Let the user pick one of ``options`` by number on a terminal; the index picked.

        Without a terminal, fail and name ``flag``. An empty answer picks ``default``; an
        answer that is no listed number fails (``no {item} number ...``), naming ``flag``.
        """
        if not self.can_prompt:
            raise UsageError(f"{question} (no terminal to ask on)", hint=f"pass {flag}")
        for number, option in enumerate(options, 1):
            self.status(f"  {number}. {safe_line(option)}")
        answer = self.prompt(question, flag=flag, default=str(default + 1))
        if answer.isdigit() and 1 <= int(answer) <= len(options):
            return int(answer) - 1
        raise UsageError(f"no {item} number {answer!r}", hint=f"pass {flag}")

    def read_secret(self, label: str, *, from_stdin: bool, flag: str, required: bool) -> str | None:
        """Read a secret from stdin (``from_stdin``) or a hidden prompt; never from argv."""
        if from_stdin and not self.stdin_tty:
            value = self.stdin.read().rstrip("\r\n")
        elif self.can_prompt:
            suffix = "" if required else " (leave empty for none)"
            value = self.hidden_prompt(f"{label}{suffix}", self.stderr)
        elif required:
            raise UsageError(
                f"the {label} is needed and there is no terminal to prompt on",
                hint=f"pipe it in with {flag}",
            )
        else:
            return None
        if not value:
            if required:
                raise UsageError(f"the {label} is empty", hint=f"give the {label} with {flag}")
            return None
        return value
