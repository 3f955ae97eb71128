"""Small helpers shared by the sysfs meters (INA3221, RAPL, hwmon)."""
from __future__ import annotations

from .base import MeterError


def read_number(source, path: str) -> float:
    """A sysfs file holding one number."""
    text = source.read_text(path).strip()
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        raise ValueError(f"{path}: expected a number, got {text[:40]!r}") from None


def unreadable(label: str, exc: OSError, hint: str = "") -> str:
    """The message for a file the harness may not read."""
    path = getattr(exc, "filename", None) or str(exc)
    msg = f"{label}: permission denied reading {path}"
    return msg + (f"; {hint}" if hint else "; run the harness (or the board's sidecar) with permission to read it")


def require_found(label: str, what: str, wanted: list, found, where: str = "") -> None:
    """A MeterError unless there is something `wanted` and all of it is among `found`; it
    names what is missing (or says there is nothing to read) and what was found."""
    missing = [w for w in wanted if w not in found]
    if wanted and not missing:
        return
    head = f"{what} {missing} not found" if missing else f"no {what}"
    raise MeterError(f"{label}: {head}{where}; found: {', '.join(found) or 'none'}")
