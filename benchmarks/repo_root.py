"""Where this checkout is, for the scripts in benchmarks/ (`python benchmarks/x.py` puts
this folder first on sys.path; `pytest benchmarks/` does the same for its test files).

Not named paths.py: tests/paths.py is `paths`, and several scripts put tests/ on sys.path
and import test helpers that `from paths import ...` its other names.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
