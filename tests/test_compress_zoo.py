"""Every technique on the committed demo models (skipped where the zoo files are absent)."""

import numpy as np
import pytest

from compress_fixtures import build
from harness.compress import onnx_graph as g
from paths import MODELS

ZOO = [MODELS / "digits_mlp.onnx", MODELS / "digits_cnn.onnx"]
RECIPES = [("prune-magnitude", {"sparsity": 0.5}), ("prune-structured", {"ratio": 0.25}),
           ("deep-compression", {"sparsity": 0.5}), ("fixed-point", {}), ("low-rank", {"energy": 0.95}),
           ("ternary", {}), ("mixed-precision", {"budget": 0.5})]


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
@pytest.mark.parametrize("name,params", RECIPES, ids=[r[0] for r in RECIPES])
def test_technique_on_zoo_model(tmp_path, path, name, params):
    if not path.exists():
        pytest.skip("zoo model not present")
    result, base, x = build(tmp_path, g.load(path), name, params)
    out = g.run(g.load(result.path), x)
    assert out.shape == (len(x), 10) and np.allclose(out.sum(1), 1, atol=1e-4)
    if name == "low-rank":      # node overhead can outweigh a few saved weights in the file
        assert g.count_params(g.load(result.path))["params"] <= g.count_params(g.load(base))["params"]
    else:
        assert (result.storage_bytes or result.path.stat().st_size) < base.stat().st_size
    assert result.info["post_training"] is True
