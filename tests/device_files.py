"""Device YAML files for the inventory tests: one written into a folder, and the load that
refuses it with the file and the field first."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.inventory import load_device_file


def write_device(folder: Path, name: str, text: str) -> Path:
    """`text` as folder/NAME.yaml (its stem is the device's name)."""
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def assert_refused(path: Path, field: str, words: str) -> None:
    """Loading `path` fails with a message that starts with the file and the field
    ("PATH: FIELD: ") and says `words`."""
    with pytest.raises(ConfigError) as info:
        load_device_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert words in message, message
