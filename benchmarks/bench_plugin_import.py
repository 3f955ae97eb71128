"""What the harness's pytest plugin costs a pytest run that does not benchmark.

    python benchmarks/bench_plugin_import.py            # 5 runs each, median
    python benchmarks/bench_plugin_import.py --runs 11

The pytest11 entry point loads the plugin into every pytest run of an environment that
has the harness installed, also a project's unrelated unit tests. This script runs pytest
on one plain test in a temporary folder, in fresh interpreters, and prints:

- the time to import the plugin and its parts in a fresh interpreter that already has
  pytest (what the entry point adds to every run);
- the largest harness.* imports in a real pytest run, from `python -X importtime` (the
  cumulative microseconds of every harness.* module whose importer is not itself a harness
  module, so the third-party modules they pull in count; pytest's assertion rewriting loads
  the plugin modules themselves without an importtime line);
- which heavy modules (sqlalchemy, pandas, plotly, onnx, numpy, ...) the run imported;
- the wall time of the whole pytest run with the plugin and with `-p no:harness`.

Figures, not asserts (tests/test_plugin_import.py asserts only what cannot flake: that the
heavy modules stay out). Wall times move with the machine's load.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT
# (pytest_benchmark is loaded by its own entry point, with or without the harness)
HEAVY = ("sqlalchemy", "pandas", "plotly", "onnx", "onnxruntime", "numpy", "scipy", "sklearn", "yaml",
         "paramiko")
PLAIN_TEST = "def test_plain():\n    assert 1 + 1 == 2\n"
# Prints the heavy modules present when pytest ends (a conftest, so it needs no plugin).
CONFTEST = ("import sys\n\ndef pytest_unconfigure(config):\n"
            f"    print('HEAVY-LOADED:', ','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def harness_import_us(importtime_text: str) -> tuple[int, list]:
    """Sum of the cumulative times of harness.* imports not made by another harness module."""
    pending, top = [], []   # importtime prints children before their parent, one level deeper
    for line in importtime_text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        cumulative, depth, name = int(match.group(2)), len(match.group(3)), match.group(4)
        children = [p for p in pending if p[0] > depth]
        pending = [p for p in pending if p[0] <= depth]
        is_harness = name == "harness" or name.startswith("harness.")
        for child in children:
            if child[1] and not is_harness:
                top.append(child[2:])
        pending.append((depth, is_harness, name, cumulative))
    top += [p[2:] for p in pending if p[1]]
    return sum(us for _, us in top), sorted(top, key=lambda t: -t[1])


# A fresh interpreter: pytest first (every run pays it anyway), then the plugin and its parts.
DIRECT = """
import importlib, time, pytest
start = time.perf_counter()
plugin = importlib.import_module("harness.plugin")
for name in plugin.pytest_plugins:
    importlib.import_module(name)
print(time.perf_counter() - start)
"""


def direct_import_s() -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", DIRECT], env=env, capture_output=True, text=True, timeout=300,
                          check=True)
    return float(proc.stdout.strip())


def pytest_run(folder: Path, *extra: str, importtime: bool = False) -> tuple[float, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable] + (["-X", "importtime"] if importtime else []) + \
        ["-m", "pytest", str(folder), "-q", "-p", "no:cacheprovider", "-s", *extra]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"pytest failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return wall, proc.stdout, proc.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_plain.py").write_text(PLAIN_TEST)
        (folder / "conftest.py").write_text(CONFTEST)
        direct = [direct_import_s() for _ in range(args.runs)]
        imports, heavy = [], ""
        for _ in range(args.runs):
            _, out, err = pytest_run(folder, importtime=True)
            total, top = harness_import_us(err)
            imports.append(total)
            heavy = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                          if line.startswith("HEAVY-LOADED:")), "?")
        with_plugin = [pytest_run(folder)[0] for _ in range(args.runs)]
        without = [pytest_run(folder, "-p", "no:harness")[0] for _ in range(args.runs)]
    print(f"plugin import after pytest (harness.plugin and its parts), median of {args.runs}: "
          f"{statistics.median(direct):.3f} s")
    print(f"harness.* imports in a pytest run (-X importtime), median: {statistics.median(imports) / 1e6:.3f} s; "
          "largest, last run:")
    print("  " + ", ".join(f"{name} {us / 1e3:.0f} ms" for name, us in top[:5]))
    print(f"heavy modules loaded by a non-benchmark run: {heavy or 'none'}")
    print(f"pytest wall time, one plain test: {statistics.median(with_plugin):.3f} s with the plugin, "
          f"{statistics.median(without):.3f} s with -p no:harness "
          f"(difference {statistics.median(with_plugin) - statistics.median(without):+.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
