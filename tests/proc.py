"""Run tokenctl as a real subprocess, the way users and CI jobs do."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Proc:
    """A finished tokenctl process."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def tokenctl(
    *args: str,
    home: Path,
    env: Mapping[str, str],
    input: str | None = None,
    timeout: float = 60,
) -> Proc:
    """Run ``python -m tokenctl ARGS`` with ``TOKENCTL_HOME=home`` and no terminal."""
    command = [sys.executable, "-m", "tokenctl", *args]
    completed = subprocess.run(
        command,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env={**env, "TOKENCTL_HOME": str(home)},
        timeout=timeout,
        check=False,
    )
    return Proc(list(args), completed.returncode, completed.stdout, completed.stderr)
