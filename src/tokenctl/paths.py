"""Where tokenctl keeps its files: platformdirs, or one directory given by TOKENCTL_HOME/--home."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

HOME_ENV = "TOKENCTL_HOME"


class Paths(NamedTuple):
    """The directories and files tokenctl reads and writes.

    A named tuple, not a dataclass: ``tokenctl token`` needs it on its quick path, where
    creating a dataclass (~1 ms) is a measurable share of the run.
    """

    config_dir: Path
    data_dir: Path
    home_override: Path | None = None

    @property
    def config_file(self) -> Path:
        """Hand-edited settings (``config.toml``)."""
        return self.config_dir / "config.toml"

    @property
    def definitions_file(self) -> Path:
        """User definitions that extend or override the built-in ones."""
        return self.config_dir / "definitions.toml"

    @property
    def definitions_lock(self) -> Path:
        """Lock file that serialises edits of ``definitions.toml`` across processes."""
        return self.config_dir / ".definitions.lock"

    @property
    def inventory_file(self) -> Path:
        """The SQLite token inventory."""
        return self.data_dir / "inventory.sqlite3"

    @property
    def inventory_key(self) -> str:
        """The inventory as tokenctl 0.x's keyring entries named it: its resolved path."""
        return str(self.inventory_file.resolve())

    @property
    def cache_dir(self) -> Path:
        """Derived data that speeds commands up; safe to delete at any time."""
        return self.data_dir / "cache"

    @property
    def keyring_backend_cache(self) -> Path:
        """The remembered choice of keyring backend."""
        return self.cache_dir / "keyring-backend.json"

    @property
    def definitions_digest(self) -> Path:
        """Kind and refresh margin of every definition, for the quick ``token`` path."""
        return self.cache_dir / "definitions-digest.json"

    @property
    def key_rotation_lock(self) -> Path:
        """Lock that lets one ``tokenctl key rotate`` run at a time."""
        return self.locks_dir / "key-rotate.lock"

    @property
    def locks_dir(self) -> Path:
        """Per-token inter-process locks (refresh serialisation)."""
        return self.data_dir / "locks"


def resolve_paths(home: Path | None, environ: Mapping[str, str]) -> Paths:
    """Pick the directories: ``--home``, then ``TOKENCTL_HOME``, then the platform defaults."""
    chosen = (
        home if home is not None else (Path(environ[HOME_ENV]) if environ.get(HOME_ENV) else None)
    )
    if chosen is not None:
        chosen = chosen.expanduser().absolute()
        return Paths(config_dir=chosen, data_dir=chosen, home_override=chosen)
    import platformdirs

    return Paths(
        config_dir=Path(platformdirs.user_config_dir("tokenctl", appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir("tokenctl", appauthor=False)),
    )
