"""Re-make the demo model zoo: two small digits classifiers as ONNX and TFLite files.

Run from the repository root with the zoo virtualenv (torch + tensorflow-cpu, never the
harness's own environment):

    /opt/zoo-venv/bin/python models/make_zoo.py

Trains with PyTorch (CPU, fixed seeds) on harness.datasets.digits_split()["train"],
exports ONNX (opset 17, static batch 1), rebuilds the same network in Keras with the
trained weights copied in, checks Keras against onnxruntime on the test digits, and
converts to TFLite fp32, fp16 (float16 weights, float32 I/O) and full int8 (int8
weights, activations, input and output; calibrated on the "calibration" part only).

Writes into models/:
    digits_cnn.onnx  digits_cnn_fp32.tflite  digits_cnn_fp16.tflite  digits_cnn_int8.tflite
    digits_mlp.onnx  digits_mlp_fp32.tflite  digits_mlp_fp16.tflite  digits_mlp_int8.tflite
"""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bit-stable float kernels

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from harness.datasets import digits_split  # noqa: E402

SEED = 0
OPSET = 17
EPOCHS = {"cnn": 80, "mlp": 60}
BATCH = 32
LR = {"cnn": 1e-2, "mlp": 3e-3}


# ----------------------------------------------------------------------------- torch


class DigitsCNN(nn.Module):
    """NCHW [1,1,8,8] -> [1,10] probabilities. Ops an int8 MCU engine implements."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool1 = nn.MaxPool2d(2)  # 8x8 -> 4x4
        self.conv2 = nn.Conv2d(8, 16, 1)
        self.pool2 = nn.AvgPool2d(2)  # 4x4 -> 2x2
        self.fc = nn.Linear(16 * 2 * 2, 10)
        self.with_softmax = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.clamp(self.dw(x), 0.0, 6.0)  # ReLU6
        x = self.pool1(x)
        x = torch.relu(self.conv2(x))
        x = self.pool2(x)
        x = torch.flatten(x, 1)  # NCHW order: index = c*4 + h*2 + w
        x = self.fc(x)
        return torch.softmax(x, dim=1) if self.with_softmax else x


class DigitsMLP(nn.Module):
    """[1,64] -> [1,10] probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, 10)
        self.with_softmax = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        x = self.fc3(x)
        return torch.softmax(x, dim=1) if self.with_softmax else x


def seed_everything(seed: int = SEED) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def as_input(kind: str, x: np.ndarray) -> np.ndarray:
    """(n, 64) in [0,1] -> the model's input layout (NCHW for the torch/ONNX CNN)."""
    return x.reshape(-1, 1, 8, 8) if kind == "cnn" else x


def train(kind: str, split) -> nn.Module:
    seed_everything()
    model = DigitsCNN() if kind == "cnn" else DigitsMLP()
    model.with_softmax = False
    x = torch.from_numpy(as_input(kind, split["train"].x))
    y = torch.from_numpy(split["train"].y)
    opt = torch.optim.Adam(model.parameters(), lr=LR[kind])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS[kind])
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS[kind]):
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(BATCH):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    model.with_softmax = True
    with torch.no_grad():
        for part in ("train", "test"):
            p = model(torch.from_numpy(as_input(kind, split[part].x))).argmax(1).numpy()
            print(f"  torch {kind} {part} top-1 = {(p == split[part].y).mean():.4f}")
    return model


def export_onnx(kind: str, model: nn.Module, path: Path) -> None:
    import onnx

    shape = (1, 1, 8, 8) if kind == "cnn" else (1, 64)
    dummy = torch.zeros(shape, dtype=torch.float32)
    torch.onnx.export(
        model, (dummy,), str(path), input_names=["input"], output_names=["probabilities"],
        opset_version=OPSET, dynamo=False, do_constant_folding=True,
    )
    m = onnx.load(str(path))
    m.producer_name = "harness models/make_zoo.py (torch " + torch.__version__.split("+")[0] + ")"
    m.doc_string = f"digits-{kind}: sklearn digits 8x8 classifier, input in [0,1], softmax output"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))
    dims = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    print(f"  {path.name}: ir_version={m.ir_version} opset={m.opset_import[0].version} "
          f"in={[(i.name, dims(i)) for i in m.graph.input]} "
          f"out={[(o.name, dims(o)) for o in m.graph.output]} "
          f"ops={[n.op_type for n in m.graph.node]}")


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": row[None]})[0] for row in x])


# ----------------------------------------------------------------------------- keras


def keras_model(kind: str, batch: int | None):
    import keras
    from keras import layers

    if kind == "cnn":
        inp = keras.Input(shape=(8, 8, 1), batch_size=batch, name="input")
        x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
        x = layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(x)
        x = layers.MaxPooling2D(2, name="pool1")(x)
        x = layers.Conv2D(16, 1, activation="relu", name="conv2")(x)
        x = layers.AveragePooling2D(2, name="pool2")(x)
        x = layers.Flatten(name="flatten")(x)  # NHWC order: index = (h*2 + w)*16 + c
        x = layers.Dense(10, name="fc")(x)
    else:
        inp = keras.Input(shape=(64,), batch_size=batch, name="input")
        x = layers.Dense(32, activation="relu", name="fc1")(inp)
        x = layers.Dense(16, activation="relu", name="fc2")(x)
        x = layers.Dense(10, name="fc3")(x)
    out = layers.Softmax(name="probabilities")(x)
    return keras.Model(inp, out, name=f"digits_{kind}")


def copy_weights(kind: str, torch_model: nn.Module, km) -> None:
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in torch_model.state_dict().items()}
    if kind == "cnn":
        # Conv2D kernel: torch OIHW -> keras HWIO.
        km.get_layer("conv1").set_weights([sd["conv1.weight"].transpose(2, 3, 1, 0), sd["conv1.bias"]])
        # DepthwiseConv2D kernel: torch (C, 1, H, W) -> keras (H, W, C, depth_multiplier=1).
        km.get_layer("dw").set_weights([sd["dw.weight"].transpose(2, 3, 0, 1), sd["dw.bias"]])
        km.get_layer("conv2").set_weights([sd["conv2.weight"].transpose(2, 3, 1, 0), sd["conv2.bias"]])
        # Dense after flatten: torch column c*4 + h*2 + w  ->  keras row (h*2 + w)*16 + c.
        w = sd["fc.weight"].reshape(10, 16, 2, 2)  # (out, c, h, w)
        w = w.transpose(2, 3, 1, 0).reshape(2 * 2 * 16, 10)  # (h, w, c, out) -> (64, out)
        km.get_layer("fc").set_weights([w, sd["fc.bias"]])
    else:
        for name in ("fc1", "fc2", "fc3"):
            km.get_layer(name).set_weights([sd[f"{name}.weight"].T, sd[f"{name}.bias"]])


def keras_input(kind: str, x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, 8, 8, 1) if kind == "cnn" else x


# ----------------------------------------------------------------------------- tflite


def convert(km, kind: str, mode: str, calibration: np.ndarray) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(km)
    if mode == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        calib = keras_input(kind, calibration).astype(np.float32)

        def representative():
            for row in calib:
                yield [row[None]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    it = tf.lite.Interpreter(model_path=str(path))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for row in x:
        row = row[None]
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            row = np.clip(np.round(row / s + z), -128, 127).astype(np.int8)
        it.set_tensor(i["index"], row)
        it.invoke()
        y = it.get_tensor(o["index"])
        if o["dtype"] == np.int8:
            s, z = o["quantization"]
            y = (y.astype(np.float32) - z) * s
        outs.append(y)
    return np.concatenate(outs)


# ----------------------------------------------------------------------------- main


def make(kind: str, split) -> None:
    import tensorflow as tf

    print(f"== digits-{kind}")
    model = train(kind, split)
    onnx_path = HERE / f"digits_{kind}.onnx"
    export_onnx(kind, model, onnx_path)

    test = split["test"]
    p_onnx = run_onnx(onnx_path, as_input(kind, test.x))
    with torch.no_grad():
        p_torch = model(torch.from_numpy(as_input(kind, test.x))).numpy()
    print(f"  onnx vs torch max|diff| = {np.abs(p_onnx - p_torch).max():.2e}")

    tf.keras.utils.set_random_seed(SEED)
    km_check, km = keras_model(kind, None), keras_model(kind, 1)
    copy_weights(kind, model, km_check)
    km.set_weights(km_check.get_weights())
    p_keras = km_check.predict(keras_input(kind, test.x), verbose=0, batch_size=64)
    diff = np.abs(p_keras - p_onnx).max()
    print(f"  keras vs onnx max|diff| = {diff:.2e}")
    if not diff < 1e-5:
        raise SystemExit(f"digits-{kind}: Keras and ONNX disagree (max |diff| {diff:.2e} >= 1e-5)")

    for mode in ("fp32", "fp16", "int8"):
        path = HERE / f"digits_{kind}_{mode}.tflite"
        path.write_bytes(convert(km, kind, mode, split["calibration"].x))
        p = run_tflite(path, keras_input(kind, test.x))
        acc = (p.argmax(1) == test.y).mean()
        agree = (p.argmax(1) == p_onnx.argmax(1)).mean()
        print(f"  {path.name}: {path.stat().st_size} B, test top-1 {acc:.4f}, "
              f"agrees with onnx on {agree:.4f}, max|diff| {np.abs(p - p_onnx).max():.2e}")
    print(f"  {onnx_path.name}: {onnx_path.stat().st_size} B, test top-1 "
          f"{(p_onnx.argmax(1) == test.y).mean():.4f}")


class _NamedInput(nn.Module):
    """The network with its argument named like the ONNX file's input ("input"), so one
    input spec serves both."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (the ONNX name)
        return self.net(input)


def onnx_initializers(path: Path) -> dict:
    """{name: float32 array} of an ONNX file's initializers, with the onnx package or,
    where it is not installed (the lent GPU machine has torch but maybe not onnx), read
    straight from the protobuf wire format: ModelProto.graph (7) -> GraphProto.initializer
    (5) -> TensorProto dims (1), data_type (2, FLOAT = 1), name (8), raw_data (9)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        pass
    else:
        return {i.name: numpy_helper.to_array(i).copy() for i in onnx.load(str(path)).graph.initializer}

    def fields(buf):
        i = 0
        while i < len(buf):
            key, i = _varint(buf, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, i = _varint(buf, i)
            elif wire == 2:
                size, i = _varint(buf, i)
                value, i = buf[i:i + size], i + size
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                value, i = buf[i:i + size], i + size
            else:
                raise ValueError(f"{path}: unsupported protobuf wire type {wire}")
            yield number, wire, value

    out = {}
    graph = next(v for n, w, v in fields(Path(path).read_bytes()) if n == 7 and w == 2)
    for number, wire, tensor in fields(graph):
        if number != 5 or wire != 2:
            continue
        dims, name, raw, dtype = [], None, None, None
        for n, w, v in fields(tensor):
            if n == 1 and w == 0:
                dims.append(v)
            elif n == 1 and w == 2:  # packed dims
                j = 0
                while j < len(v):
                    d, j = _varint(v, j)
                    dims.append(d)
            elif n == 2:
                dtype = v
            elif n == 8:
                name = v.decode()
            elif n == 9:
                raw = v
        if dtype != 1 or raw is None:
            raise ValueError(f"{path}: initializer {name}: only float32 raw_data is read without the onnx package")
        out[name] = np.frombuffer(raw, dtype="<f4").reshape(dims).copy()
    return out


def _varint(buf: bytes, i: int):
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def export_pt2(kind: str, onnx_path: Path, out: Path) -> Path:
    """The committed ONNX model as a torch.export program (.pt2, fp32): the same network
    class, its weights taken from the ONNX initializers (their names are the state dict's),
    exported at the ONNX file's static batch-1 shape. Needs torch only (no training)."""
    model = DigitsCNN() if kind == "cnn" else DigitsMLP()
    weights = {name: torch.from_numpy(array) for name, array in onnx_initializers(onnx_path).items()}
    model.load_state_dict(weights, strict=True)
    model.eval()
    shape = (1, 1, 8, 8) if kind == "cnn" else (1, 64)
    program = torch.export.export(_NamedInput(model).eval(), (torch.zeros(shape, dtype=torch.float32),))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out))
    return out


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Re-make the demo zoo (needs torch and tensorflow-cpu), "
                                 "or with --pt2 only export the committed ONNX models as .pt2 (torch only).")
    ap.add_argument("--pt2", metavar="DIR", type=Path,
                    help="write digits_cnn.pt2 and digits_mlp.pt2 into DIR from the committed .onnx files")
    args = ap.parse_args(argv)
    if args.pt2 is not None:
        for kind in ("cnn", "mlp"):
            path = export_pt2(kind, HERE / f"digits_{kind}.onnx", args.pt2 / f"digits_{kind}.pt2")
            print(f"  {path}: {path.stat().st_size} B (torch {torch.__version__})")
        return
    split = digits_split()
    for kind in ("cnn", "mlp"):
        make(kind, split)


if __name__ == "__main__":
    main()
