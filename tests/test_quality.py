"""Static checks that CI enforces: ruff and mypy --strict on src/ (Linux, Windows, macOS)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    located = shutil.which(name)
    if located is None:
        pytest.fail(f"{name} is not installed; install tokenctl with its [test] extra")
    return located


def test_ruff_is_clean():
    result = subprocess.run(
        [_tool("ruff"), "check", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "platform", [None, "win32", "darwin"], ids=["this platform", "windows", "macos"]
)
def test_mypy_strict_is_clean_on_src(platform):
    command = [_tool("mypy")] + (["--platform", platform] if platform else [])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


POSIX_ONLY = {"fcntl", "pwd", "grp", "termios", "tty", "pty", "resource", "posix", "syslog"}


def _module_level_imports(tree: ast.Module) -> list[str]:
    """Modules a file imports when it is imported (not inside a function or class)."""
    found: list[str] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module.split(".")[0])
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    pending += child.body if isinstance(child, ast.ExceptHandler) else [child]
    return found


def test_nothing_posix_only_is_imported_with_a_module():
    offenders = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [
            f"{path.relative_to(ROOT)}: {name}"
            for name in _module_level_imports(tree)
            if name in POSIX_ONLY
        ]
    assert offenders == [], "POSIX-only modules imported at module level (Windows cannot start)"
