#!/bin/sh
# pytest-benchmark's --benchmark-histogram needs pygal; tests/test_pbench_runs.py checks the
# per-device histograms when it is there.
set -e
python -m pip install --quiet "pytest-benchmark[histogram]>=5"
