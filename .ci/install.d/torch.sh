#!/bin/sh
# The runner's PyTorch runtime (tests/test_runner_torch.py, benchmarks/gpu_check.py): the CPU
# wheel. Pinned: an unpinned `torch` downloads the CUDA build (gigabytes). A machine with the
# wheel on disk installs it from there; without torch those tests skip with the reason.
set -e
wheel=/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
if [ -f "$wheel" ]; then
    python -m pip install --quiet "$wheel"
else   # pinned: pip takes the machine's own copy where there is one; never fatal (the tests skip)
    python -m pip install --quiet "torch==2.13.0" || echo "torch.sh: torch 2.13.0 not installed; its tests skip"
fi
