# Thin on purpose: the harness's pytest plugin is loaded through its `pytest11` entry
# point (pyproject.toml), so `pytest suites/ --device NAME` works from the repo root.
