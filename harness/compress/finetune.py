"""Fine-tuning through a model manifest's training hook, when there is one.

The hook is model-specific (the demo zoo's needs torch, an optional extra); a technique only
says which constraint its weights must keep while training, as a projection:

    ctx.train_hook(in_path, out_path, project) -> None

The hook trains the ONNX model at ``in_path`` on its own training data (never the test
split) and writes the trained ONNX model to ``out_path``. After every optimizer step it
calls ``project(weights)`` with {initializer name: np.ndarray} of the trainable weights and
loads back what it returns: a pruned layer re-applies its zero mask, a clustered layer its
shared values, a ternary layer its {-Wn, 0, +Wp} (projected gradient descent). Without a
hook the variant is post-training and the BuildResult says ``post_training: true``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import onnx


def fine_tune(ctx, model, project, enabled=True):
    """Train ``model`` under ``project`` when the manifest has a hook; else return it unchanged.

    Returns (model, info) with info = {"fine_tuned": bool, "post_training": bool}.
    """
    if not enabled or ctx.train_hook is None:
        return model, {"fine_tuned": False, "post_training": True}
    with tempfile.TemporaryDirectory(prefix="harness-finetune-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(src))
        ctx.train_hook(src, dst, project)
        tuned = onnx.load(str(dst))
    # the last step's projection is applied once more so the constraint holds exactly
    from .onnx_graph import get_array, set_array
    names = [t.name for t in tuned.graph.initializer]
    projected = project({n: get_array(tuned, n) for n in names})
    for name, value in projected.items():
        set_array(tuned, name, value)
    return tuned, {"fine_tuned": True, "post_training": False}
