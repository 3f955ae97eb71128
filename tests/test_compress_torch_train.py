"""The optional torch training hook: skipped where torch is not installed."""
import numpy as np
import pytest

from compress_fixtures import build, inputs
from onnx_models import cnn, mlp
from harness.compress import onnx_graph as g
from harness.compress.torch_train import available, resolve

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("model", [mlp(), mlp(matmul=True), cnn(batchnorm=True, reshape=True)],
                         ids=["mlp", "mlp-matmul", "cnn"])
def test_interpreter_matches_onnxruntime(model):
    from harness.compress.torch_train import forward_logits
    x = inputs(model, 4)
    with torch.no_grad():
        out = torch.softmax(forward_logits(model, {}, torch.from_numpy(x), torch), 1).numpy()
    np.testing.assert_allclose(out, g.run(model, x), atol=1e-5)


def test_fine_tuned_pruning_keeps_its_zeros(tmp_path):
    from harness.compress.torch_train import train
    model = mlp()
    x = inputs(model, 96)
    y = g.run(model, x).argmax(1)

    def hook(src, dst, project):
        import onnx
        onnx.save(train(g.load(src), x, y, project, epochs=2), str(dst))

    result, _, _ = build(tmp_path, model, "prune-magnitude", {"sparsity": 0.7}, train_hook=hook)
    assert result.info["fine_tuned"] is True and result.info["post_training"] is False
    stats = g.count_params(g.load(result.path))
    assert stats["params"] - stats["nonzero_params"] >= 0.7 * 2720 - 1


def test_resolve():
    assert resolve(None, "digits") is None
    assert (resolve("torch", "digits") is not None) == available()
    with pytest.raises(ValueError):
        resolve("keras", "digits")
