"""Output agreement of a variant with its base on the same inputs, with or without labels.

Accuracy needs a labelled dataset; most models people bring have none. Agreement needs
only inputs: the dataset's, a user ``.npz`` (one array per input name, samples first), or
inputs generated from the model's signature within the manifest's ranges. Both models run
on this host (onnxruntime, one thread) and, per output, the maximum and mean absolute
error and the cosine similarity per sample are kept; an output shaped like class scores
(rank 2 or 3, last axis of at least 2) also gets top-1 agreement (argmax over the last axis).

    agreement = compare(base_path, variant_path, feeds, source="generated ...")
    agreement["cosine_min"]      # the smallest per-sample cosine over every output
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ConfigError, ModelError

DEFAULT_SAMPLES = 16
# what a generated input takes when the manifest gives no range (said in the agreement's source)
DEFAULT_RANGES = {"f": (0.0, 1.0), "i": (0, 10), "u": (0, 10)}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
               "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


class Agreement(dict):
    """A dict (stored as JSON) whose keys also read as attributes: ``a.cosine_min``."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        raise ModelError(f"{path}: onnxruntime cannot load the model: {exc}") from None


def signature(path: Path) -> list[dict]:
    """[{name, shape, dtype}] of the model's inputs, as onnxruntime sees them."""
    return [{"name": i.name, "shape": list(i.shape), "dtype": _ORT_DTYPES.get(i.type, i.type)}
            for i in _session(path).get_inputs()]


def generated_feeds(inputs: list[dict], overrides=(), n: int = DEFAULT_SAMPLES, seed: int = 0):
    """``n`` feeds drawn from the signature ``inputs`` within the manifest's ranges.

    Returns (feeds, description): the description names every input's dtype, shape and
    range and whether the range came from the manifest or the default.
    """
    by_name = {o["name"]: o for o in overrides}
    rng = np.random.default_rng(seed)
    plan, parts = [], []
    for item in inputs:
        spec = by_name.get(item["name"], {})
        dtype = np.dtype(spec.get("dtype") or item["dtype"])
        shape = spec.get("shape") or [d if isinstance(d, int) and d > 0 else 1 for d in item["shape"]]
        if dtype == np.bool_:
            low, high, origin = 0, 1, "bool"
        else:
            default = DEFAULT_RANGES.get(dtype.kind)
            if default is None:
                raise ModelError(f"input {item['name']!r} has dtype {dtype}, which cannot be generated")
            given = "low" in spec or "high" in spec
            low, high = spec.get("low", default[0]), spec.get("high", default[1])
            origin = "manifest" if given else "default"
        plan.append((item["name"], dtype, list(shape), low, high))
        parts.append(f"{item['name']} {dtype} {list(shape)} {low}..{high} ({origin})")
    feeds = []
    for _ in range(n):
        feed = {}
        for name, dtype, shape, low, high in plan:
            if dtype == np.bool_:
                feed[name] = rng.random(shape) < 0.5
            elif dtype.kind in "iu":
                feed[name] = rng.integers(int(low), int(high), size=shape, endpoint=True).astype(dtype)
            else:
                feed[name] = (low + (high - low) * rng.random(shape)).astype(dtype)
        feeds.append(feed)
    return feeds, f"generated, seed {seed}: " + "; ".join(parts)


def npz_feeds(path: Path, inputs: list[dict], n: Optional[int] = None, where: str = "inputs"):
    """Feeds from a user .npz holding one array per input name, samples along the first axis."""
    try:
        data = np.load(path)
        arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise ConfigError(path, "(file)", "an .npz with one array per model input", None, str(exc)) from None
    names = [i["name"] for i in inputs]
    missing = [k for k in names if k not in arrays]
    if missing:
        raise ConfigError(path, where, f"arrays named after the model's inputs ({', '.join(names)})",
                          sorted(arrays), f"missing {', '.join(missing)}")
    counts = {len(arrays[k]) for k in names}
    if len(counts) != 1:
        raise ConfigError(path, where, "the same number of samples for every input", None,
                          ", ".join(f"{k}: {len(arrays[k])}" for k in names))
    count = counts.pop() if n is None else min(n, counts.pop())
    dtypes = {i["name"]: np.dtype(i["dtype"]) for i in inputs}
    feeds = [{k: np.asarray(arrays[k][s]).astype(dtypes[k]) for k in names} for s in range(count)]
    return feeds, f"file {Path(path).name} ({count} samples)"


def _outputs(sess, feeds):
    names = [o.name for o in sess.get_outputs()]
    runs = [sess.run(names, feed) for feed in feeds]
    return names, [[np.asarray(r[i]) for r in runs] for i in range(len(names))]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if np.array_equal(a, b):
        return 1.0   # exactly: norm(a)**2 need not round back to a @ a (1 - 1e-16 read as "differs")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.clip(a @ b / (na * nb), -1.0, 1.0))


def compare_outputs(base_outputs: dict, variant_outputs: dict, source: str) -> Agreement:
    """Agreement from {output name: [per-sample arrays]} of the base and of the variant."""
    per_output, cosines, top1 = {}, [], []
    for name, base in base_outputs.items():
        if name not in variant_outputs:
            raise ModelError(f"the variant has no output {name!r}; it has {sorted(variant_outputs)}")
        variant = variant_outputs[name]
        if base[0].shape != variant[0].shape:
            raise ModelError(f"output {name!r}: the variant gives shape {list(variant[0].shape)}, "
                             f"the base {list(base[0].shape)}")
        b = np.stack([x.astype(np.float64) for x in base])
        v = np.stack([x.astype(np.float64) for x in variant])
        finite = bool(np.isfinite(v).all())
        error = np.abs(b - v)
        sample_cos = [_cosine(x, y) for x, y in zip(b, v)] if finite else [0.0]
        entry = {"max_abs": float(error.max()) if finite else float("inf"),
                 "mean_abs": float(error.mean()) if finite else float("inf"),
                 "cosine_min": min(sample_cos), "cosine_mean": float(np.mean(sample_cos)),
                 "finite": finite}
        if 2 <= base[0].ndim <= 3 and base[0].shape[-1] >= 2:
            agree = float(np.mean(np.argmax(b, axis=-1) == np.argmax(v, axis=-1)))
            entry["top1_agreement"] = agree
            top1.append(agree)
        per_output[name] = entry
        cosines.append(entry["cosine_min"])
    n = len(next(iter(base_outputs.values()))) if base_outputs else 0
    return Agreement(n=n, source=source, outputs=per_output, cosine_min=min(cosines) if cosines else None,
                     max_abs=max(e["max_abs"] for e in per_output.values()) if per_output else None,
                     top1_agreement=min(top1) if top1 else None)


def compare(base: Path, variant: Path, feeds: list[dict], source: str) -> Agreement:
    """Run the base and the variant on the same ``feeds`` and compare every output."""
    if not feeds:
        raise ModelError(f"{variant}: no inputs to compare the variant with its base on")
    base_sess, variant_sess = _session(base), _session(variant)
    names, base_values = _outputs(base_sess, feeds)
    vnames, variant_values = _outputs(variant_sess, feeds)
    if set(vnames) != set(names) and len(vnames) == len(names):
        # a converted or hand-made file may name its outputs otherwise: pair them in order
        source += f"; outputs paired by position ({', '.join(f'{a}={b}' for a, b in zip(names, vnames))})"
        vnames = names
    return compare_outputs(dict(zip(names, base_values)), dict(zip(vnames, variant_values)), source)


def within(agreement: Optional[dict], min_cosine: float) -> tuple[bool, str]:
    """(passes, reason) of an agreement against a manifest's ``min_cosine`` budget."""
    if not agreement or agreement.get("cosine_min") is None:
        return False, "no agreement was computed for this variant"
    worst = agreement["cosine_min"]
    if worst >= min_cosine:
        return True, f"cosine {worst:.6f} >= {min_cosine}"
    bad = [f"{k}: cosine {e['cosine_min']:.6f}, max |err| {e['max_abs']:.3g}"
           for k, e in agreement["outputs"].items() if e["cosine_min"] < min_cosine]
    return False, f"cosine {worst:.6f} < {min_cosine} over {agreement['n']} inputs ({agreement['source']}): " \
                  + "; ".join(bad)
