"""Where a harness project lives: the folder its default paths (devices/, models/,
reports/, the variant cache) are relative to, found from wherever a command is started.

`harness runs` typed in a subfolder must read the project's store, not make an empty one
beside the user; pytest finds its rootdir the same way (walking up to its ini file).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

# A pyproject.toml that is the harness (its own repository) or names it as a dependency.
_DECLARES_HARNESS = re.compile(r"""["']edge-harness(?:["'\[<>=!~ ;]|$)""", re.MULTILINE)
INVENTORY_DIR = "devices"


def declares_harness(pyproject: Path) -> bool:
    try:
        text = pyproject.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(_DECLARES_HARNESS.search(text))


def holds_inventory(folder: Path) -> bool:
    """A `devices/` folder of device YAML files (not, say, a Python package named devices)."""
    inventory = folder / INVENTORY_DIR
    return inventory.is_dir() and any(p.suffix in (".yaml", ".yml") for p in inventory.iterdir())


def find_root(start: Optional[Path] = None) -> Optional[Path]:
    """The nearest folder at or above `start` (default: the current directory) holding a
    `devices/` inventory or a pyproject.toml that declares the harness; None when none does."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if holds_inventory(folder) or declares_harness(folder / "pyproject.toml"):
            return folder
    return None


def project_root(start: Optional[Path] = None) -> Path:
    """find_root(), or the current directory outside any project (its defaults then say
    what is missing, as before)."""
    return find_root(start) or Path(start if start is not None else Path.cwd()).resolve()
