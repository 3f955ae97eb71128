"""The measurement document: what every device kind returns from one run, validated here once.

The on-device runner (harness/ondevice/runner.py) writes it; the serial kind builds the same
document from the MLPerf Tiny protocol; a third-party kind must return it too. Fields
(docs/measurement.md has the full table):

    ok: true, schema: 1 | 2
    latencies_ns      [int >= 0, ...]  per-inference latencies of the timed window(s)
    round_sizes       [int >= 1, ...]  optional: how latencies_ns splits into rounds taken
                                       inside this one run (an MCU's MLPerf windows); absent:
                                       the run is one round
    timings_ms        {import, load, init, first_inference, warmup_total: float}
    memory            {peak_rss_kb, load_growth_kb, hwm_kb, flash_bytes, ram_bytes, ...}
    accuracy          null | {top1: 0..1, correct: int, n: int}
    loop              {iterations, wall_ns, stop_reason}
    window            {start_unix_s, end_unix_s}
    machine           (schema 2) {before: snapshot, after: snapshot}: harness/machine.py
    host, runtime, numpy_version, runner_version, settings, model, emulated: provenance

Past the door the rest of the harness trusts these types.
"""
from __future__ import annotations

import math
from numbers import Real

from .errors import DeviceError

SCHEMA_VERSIONS = (1, 2)
# memory figures the Measurement reads (a kind may add detail beside them, e.g. ELF sections)
MEMORY_NUMBERS = ("peak_rss_kb", "load_growth_kb", "flash_bytes", "ram_bytes", "arena_bytes")


class DocumentError(DeviceError):
    """A device returned a document that breaks the contract."""


def _fail(source: str, field: str, expected: str, got) -> DocumentError:
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return DocumentError(f"{source}: measurement document: {field}: expected {expected}, got {shown}")


def _number(x) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(float(x))


def validate(raw, source: str) -> dict:
    """Return `raw` when it meets the contract; raise DocumentError naming the field."""
    if not isinstance(raw, dict):
        raise _fail(source, "(document)", "a JSON object", type(raw).__name__)
    if raw.get("ok") is not True:
        raise _fail(source, "ok", "true (a failed run is reported as an error, not a result)", raw.get("ok"))
    if raw.get("schema") not in SCHEMA_VERSIONS:
        raise _fail(source, "schema", f"one of {list(SCHEMA_VERSIONS)}", raw.get("schema"))
    samples = raw.get("latencies_ns")
    if not isinstance(samples, list) or not samples:
        raise _fail(source, "latencies_ns", "a non-empty list of nanoseconds", samples)
    for i, value in enumerate(samples):
        if not _number(value) or value < 0:
            raise _fail(source, f"latencies_ns[{i}]", "a finite number >= 0", value)
    sizes = raw.get("round_sizes")
    if sizes is not None:
        if (not isinstance(sizes, list) or not sizes
                or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in sizes)):
            raise _fail(source, "round_sizes", "a list of counts >= 1", sizes)
        if sum(sizes) != len(samples):
            raise _fail(source, "round_sizes", f"counts adding up to the {len(samples)} latencies", sizes)
    for key in ("timings_ms", "memory", "loop", "window", "machine", "host", "runtime", "settings", "model"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise _fail(source, key, "an object", raw[key])
    for key, value in (raw.get("timings_ms") or {}).items():
        if value is not None and not _number(value):
            raise _fail(source, f"timings_ms.{key}", "a number of milliseconds", value)
    for key in MEMORY_NUMBERS:
        value = (raw.get("memory") or {}).get(key)
        if value is not None and not _number(value):
            raise _fail(source, f"memory.{key}", "a number", value)
    accuracy = raw.get("accuracy")
    if accuracy is not None:
        if not isinstance(accuracy, dict):
            raise _fail(source, "accuracy", "null or an object", accuracy)
        top1 = accuracy.get("top1")
        if top1 is not None and (not _number(top1) or not 0 <= top1 <= 1):
            raise _fail(source, "accuracy.top1", "a fraction 0..1", top1)
        n = accuracy.get("n")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise _fail(source, "accuracy.n", "a count", n)
    machine = raw.get("machine")
    if machine is not None:
        for edge in ("before", "after"):
            if machine.get(edge) is not None and not isinstance(machine[edge], dict):
                raise _fail(source, f"machine.{edge}", "an object", machine[edge])
    if raw.get("profile") is not None:
        from .profile import validate as validate_profile   # harness.profile defines the format

        validate_profile(raw["profile"], source)
    if raw.get("emulated") is not None and not isinstance(raw["emulated"], bool):
        raise _fail(source, "emulated", "true or false", raw["emulated"])
    return raw
