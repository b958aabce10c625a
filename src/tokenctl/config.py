"""``config.toml``: the few settings a user may change by hand."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tokenctl.errors import ConfigError, UsageError
from tokenctl.timeutil import parse_duration

DEFAULT_EXPIRING_WINDOW = timedelta(days=7)
KNOWN_KEYS = {"unit", "expiring_window"}


@dataclass(frozen=True)
class Config:
    """Settings from ``config.toml``; every field has a default."""

    unit: str | None = None
    expiring_window: timedelta = DEFAULT_EXPIRING_WINDOW


def read_toml(path: Path) -> dict[str, object]:
    """Read a hand-edited TOML file; a missing one is empty.

    Whatever is wrong with the file (bad syntax, not UTF-8, binary, nested too deep for
    the parser, unreadable) is a :class:`ConfigError` that names it.
    """
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        problem = f"invalid TOML: {error}"
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text (byte {error.start}); is it a binary file?"
    except RecursionError:
        problem = "nested too deeply to read"
    except OSError as error:
        problem = f"cannot be read: {error.strerror or error}"
    raise ConfigError(
        f"{path}: {problem}", hint=f"fix {path.name} (UTF-8 TOML), or move it away"
    ) from None


def load_config(path: Path) -> Config:
    """Load and validate ``config.toml``; a missing file gives the defaults."""
    raw = read_toml(path)
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting {unknown[0]!r}",
            hint=f"known settings: {', '.join(sorted(KNOWN_KEYS))}",
        )
    unit = raw.get("unit")
    if unit is not None and (not isinstance(unit, str) or not unit.strip()):
        raise ConfigError(f"{path}: setting 'unit' must be a non-empty string")
    window_text = raw.get("expiring_window")
    window = DEFAULT_EXPIRING_WINDOW
    if window_text is not None:
        if not isinstance(window_text, str):
            raise ConfigError(f"{path}: setting 'expiring_window' must be a duration like \"7d\"")
        try:
            window = parse_duration(window_text)
        except UsageError as error:
            raise ConfigError(f"{path}: setting 'expiring_window': {error}") from None
    return Config(unit=unit, expiring_window=window)
