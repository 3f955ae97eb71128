"""Model manifests (models/*.yaml), their variants, datasets and host-side accuracy.

A manifest names one base model and the variants to benchmark:

    name: digits-cnn
    base: digits_cnn.onnx            # relative to the manifest
    dataset: digits                  # optional: labelled data for accuracy (harness.datasets)
    inputs:                          # optional: fix dynamic dims, dtypes, value ranges
      - {name: input, shape: [1, 1, 8, 8], dtype: float32}
    max_accuracy_drop: 0.03          # optional: what the accuracy suite tolerates vs fp32
    control: true                    # optional: measure the base twice per round (an A/A pair)
    variants:
      - {name: fp32, technique: fp32}
      - {name: int8-static, technique: int8-static, params: {per_channel: true}}
      - {name: tflite-int8, file: digits_cnn_int8.tflite, technique: int8-full,
         runtimes: [litert, tflite_runtime, mcu]}

Technique variants are built from the base by harness.compress and cached by content
(base SHA-256 + technique + parameters), so an unchanged variant is never rebuilt.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import __version__, datasets, names, schema, yamlfile
from .errors import ConfigError, HarnessError, ModelError
from .modelinfo import facts, model_format, sha256_file

DEFAULT_CACHE = Path(".harness-cache")
RUNTIMES_BY_FORMAT = {"onnx": ("onnxruntime",), "tflite": ("litert", "tflite_runtime")}
CONTROL_NAME = "control"  # the A/A twin's variant name (harness.decide.CONTROL_VARIANT)
TRAIN_HOOKS = ("torch",)  # fine-tuning hooks a manifest may name (harness.compress.torch_train)


@dataclass(frozen=True)
class VariantRecipe:
    name: str
    technique: str
    params: dict
    file: Optional[str]          # a prebuilt model file instead of a technique
    runtimes: tuple
    where: str                   # "models/x.yaml: variants[2]" for errors

    @property
    def format(self) -> str:
        return model_format(Path(self.file)) if self.file else "onnx"


@dataclass(frozen=True)
class Manifest:
    name: str
    source: Path
    base: Path
    description: str = ""
    dataset: Optional[str] = None
    inputs: tuple = ()
    max_accuracy_drop: Optional[float] = None
    variants: tuple = ()
    train_hook: Optional[str] = None
    control: bool = False          # an A/A twin of the base in every campaign (harness.decide)

    def recipe(self, name: str) -> VariantRecipe:
        for r in self.variants:
            if r.name == name:
                return r
        raise KeyError(name)


@dataclass
class Variant:
    """A built, deployable model file and everything known about it before measuring."""

    model: str
    name: str
    technique: str
    params: dict
    format: str
    path: Path
    sha256: str
    size_bytes: int
    storage_bytes: int
    n_params: int
    macs: int
    runtimes: tuple
    info: dict = field(default_factory=dict)
    host_accuracy: Optional[float] = None
    build_s: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.model}/{self.name}"


# ---------------------------------------------------------------- manifests


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    data = yamlfile.load(path, "a readable model manifest")
    src = str(path)
    schema.check_keys(src, "", data, ("name", "description", "base", "dataset", "inputs", "variants",
                                      "max_accuracy_drop", "train_hook", "control",
                                      "search"),  # search: read by harness.search.space
                        required=("name", "base", "variants"))
    # Names and files become cache paths, C identifiers and report text: checked here, once.
    name = names.check_name(src, "name", schema.get(src, "", data, "name", str, required=True))
    base = names.check_model_file(src, "base", schema.get(src, "", data, "base", str, required=True),
                                     path.parent)
    dataset = schema.get(src, "", data, "dataset", str, None, choices=sorted(datasets.DATASETS))
    inputs = schema.get(src, "", data, "inputs", list, [])
    for i, item in enumerate(inputs):
        where = f"inputs[{i}]"
        schema.check_keys(src, where, item, ("name", "shape", "dtype", "low", "high"), required=("name",))
        shape = schema.get(src, where, item, "shape", list, None)
        if shape is not None and not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ConfigError(src, f"{where}.shape", "a list of positive integers", shape)
        schema.get(src, where, item, "dtype", str, None,
                   choices=("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"))
    recipes, seen = [], set()
    for i, item in enumerate(schema.get(src, "", data, "variants", list, required=True)):
        where = f"variants[{i}]"
        schema.check_keys(src, where, item, ("name", "technique", "params", "file", "runtimes"), required=("name",))
        vname = names.check_name(src, f"{where}.name", schema.get(src, where, item, "name", str, required=True))
        if vname in seen:
            raise ConfigError(src, f"{where}.name", "a name not used by another variant", vname)
        if vname == CONTROL_NAME and data.get("control"):
            raise ConfigError(src, f"{where}.name", f"a name other than {CONTROL_NAME!r} (with control: true "
                              "the harness adds the base's A/A twin under that name)", vname)
        seen.add(vname)
        file = schema.get(src, where, item, "file", str, None)
        if file is not None:
            names.check_model_file(src, f"{where}.file", file, path.parent)
        technique = schema.get(src, where, item, "technique", str, None)
        if file is None:
            from .compress import techniques

            known = techniques()
            if technique is None:
                raise ConfigError(src, f"{where}.technique", "a technique or a file", None, "both are missing")
            if technique not in known:
                raise ConfigError(src, f"{where}.technique", "one of " + ", ".join(sorted(known)), technique)
            params = schema.get(src, where, item, "params", dict, {})
            schema.check_keys(f"{src}: {where} ({vname})", "params", params, known[technique].params)
            fmt = "onnx"
        else:
            params = schema.get(src, where, item, "params", dict, {})
            try:
                fmt = model_format(Path(file))
            except ModelError:
                raise ConfigError(src, f"{where}.file", "a .onnx or .tflite file", file) from None
        runtimes = tuple(schema.get_list(src, where, item, "runtimes", str,
                                         default=RUNTIMES_BY_FORMAT[fmt]))
        recipes.append(VariantRecipe(vname, technique or "prebuilt", params, file, runtimes,
                                     f"{src}: {where} ({vname}, {technique or 'file'})"))
    drop = schema.get(src, "", data, "max_accuracy_drop", float, None, minimum=0.0, maximum=1.0)
    return Manifest(name=name, source=path, base=base,
                    description=schema.get(src, "", data, "description", str, ""),
                    dataset=dataset, inputs=tuple(inputs), max_accuracy_drop=drop,
                    variants=tuple(recipes),
                    train_hook=schema.get(src, "", data, "train_hook", str, None, choices=TRAIN_HOOKS),
                    control=schema.get(src, "", data, "control", bool, False))


def control_recipe(manifest: Manifest) -> VariantRecipe:
    """The base model once more, under its own name: measured in every round beside the
    manifest's variants, its difference from its byte-identical twin is the false
    difference this device shows in this run (harness.decide.noise_floor)."""
    return VariantRecipe(CONTROL_NAME, "fp32", {}, None, RUNTIMES_BY_FORMAT["onnx"],
                         f"{manifest.source}: control (the base's A/A twin)")


def load_manifests(directory: Path) -> list[Manifest]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(directory, "--models-dir", "a directory of model manifests", str(directory),
                          "it does not exist")
    paths = sorted(directory.glob("*.yaml"))
    if not paths:  # measuring nothing is not a green run
        raise ConfigError(directory, "--models-dir", "a directory of model manifests (*.yaml)", str(directory),
                          "it holds no *.yaml manifest")
    return [load_manifest(p) for p in paths]


def select(manifests: list[Manifest], patterns: list[str] | None) -> list[tuple[Manifest, VariantRecipe]]:
    """(manifest, recipe) pairs whose 'model/variant' id matches any glob pattern."""
    pairs = [(m, r) for m in manifests for r in m.variants]
    if not patterns:
        return pairs
    return [(m, r) for m, r in pairs if any(fnmatch.fnmatch(f"{m.name}/{r.name}", p) for p in patterns)]


# ---------------------------------------------------------------- data


def input_spec(manifest: Manifest) -> list[dict]:
    """The manifest's input overrides in the runner's spec format."""
    return [dict(item) for item in manifest.inputs]


def dataset_file(manifest: Manifest, cache: Path = DEFAULT_CACHE, part: str = "test") -> Optional[Path]:
    """The labelled evaluation split as an .npz the runner reads (x, y); None without a dataset."""
    if manifest.dataset is None:
        return None
    split = datasets.load(manifest.dataset, part)
    out = Path(cache) / "datasets" / f"{manifest.dataset}-{part}.npz"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.npz")
        np.savez(tmp, x=split.x, y=split.y)
        tmp.replace(out)
    return out


def host_accuracy(path: Path, dataset_npz: Path, inputs=()) -> float:
    """Top-1 of a model file on this host, through the same code the on-device runner uses."""
    from . import runner

    spec = {"model": str(path), "runtime": "auto", "threads": 1, "inputs": list(inputs)}
    try:
        backend = runner.make_backend(spec)
        backend.init(backend.load(str(path)))
        model_inputs, _ = backend.signature()
        return runner.evaluate(backend, model_inputs, str(dataset_npz))["top1"]
    except runner.RunnerFailure as exc:
        raise ModelError(f"{path}: cannot evaluate on this host: {exc}") from None


def _onnx_evaluator(manifest: Manifest, part: str, cache: Path) -> Optional[Callable[[Path], float]]:
    if manifest.dataset is None:
        return None
    npz = dataset_file(manifest, cache, part=part)
    return lambda path: host_accuracy(path, npz, manifest.inputs)


# ---------------------------------------------------------------- building


def _train_hook(manifest: Manifest):
    """The manifest's fine-tuning hook, or None (post-training) when it names none or torch,
    an optional extra, is not installed."""
    from .compress import torch_train

    return torch_train.resolve(manifest.train_hook, manifest.dataset)


def _cache_key(manifest: Manifest, recipe: VariantRecipe, base_sha: str) -> str:
    # A fine-tuned variant is another model than the post-training one of the same recipe.
    hook = manifest.train_hook if _train_hook(manifest) is not None else None
    blob = json.dumps({"base": base_sha, "technique": recipe.technique, "params": recipe.params,
                       "train_hook": hook, "harness": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def build_variant(manifest: Manifest, recipe: VariantRecipe, cache: Path = DEFAULT_CACHE,
                  evaluate_accuracy: bool = True) -> Variant:
    """Build (or fetch from the cache) one variant and describe it."""
    cache = Path(cache)
    if recipe.file:
        path = manifest.source.parent / recipe.file
        if not path.is_file():
            raise ModelError(f"{recipe.where}: file: model file {path} not found")
        info, storage, build_s = {"prebuilt": True}, None, 0.0
    else:
        if not manifest.base.is_file():
            raise ModelError(f"{manifest.source}: base: model file {manifest.base} not found")
        key = _cache_key(manifest, recipe, sha256_file(manifest.base))
        # Checked names, and checked again here: nothing derived from a manifest leaves the cache.
        folder = names.join_inside(cache, "variants", key)
        path = names.join_inside(folder, f"{manifest.name}__{recipe.name}.onnx")
        meta_path = folder / "meta.json"
        if path.is_file() and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            info, storage, build_s = meta["info"], meta["storage_bytes"], meta["build_s"]
        else:
            info, storage, build_s = _build(manifest, recipe, folder, path, cache)
            tmp_meta = meta_path.with_suffix(f".{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
            tmp_meta.write_text(json.dumps({"info": info, "storage_bytes": storage, "build_s": build_s}))
            tmp_meta.replace(meta_path)  # a concurrent reader never sees half a file
    f = facts(path)
    variant = Variant(
        model=manifest.name, name=recipe.name, technique=recipe.technique, params=dict(recipe.params),
        format=f.format, path=path, sha256=f.sha256, size_bytes=f.size_bytes,
        storage_bytes=storage or f.size_bytes, n_params=f.params, macs=f.macs,
        runtimes=recipe.runtimes, info=info, build_s=build_s)
    if evaluate_accuracy and manifest.dataset:
        variant.host_accuracy = _cached_accuracy(variant, manifest, cache)
    return variant


def _cached_accuracy(variant: Variant, manifest: Manifest, cache: Path) -> Optional[float]:
    record = names.join_inside(cache, "accuracy", f"{variant.sha256}-{manifest.dataset}.json")
    if record.is_file():
        return json.loads(record.read_text())["top1"]
    try:
        top1 = host_accuracy(variant.path, dataset_file(manifest, cache), manifest.inputs)
    except ModelError:
        return None  # e.g. no TFLite interpreter on this host; the device still measures it
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"top1": top1}))
    return top1


def _build(manifest: Manifest, recipe: VariantRecipe, folder: Path, out: Path, cache: Path):
    from .compress import BuildContext, get_technique

    technique = get_technique(recipe.technique)
    folder.mkdir(parents=True, exist_ok=True)
    # a name of this process's own: two xdist workers may build the same variant at once
    tmp_out = out.with_suffix(f".{os.getpid()}-{uuid.uuid4().hex[:8]}.partial.onnx")
    calibration = labels = None
    if manifest.dataset:
        split = datasets.load(manifest.dataset, "calibration")
        calibration, labels = split.x, split.y
    input_name, input_shape = _base_input(manifest)
    ctx = BuildContext(base=manifest.base, out=tmp_out, params=dict(recipe.params), source=recipe.where,
                       calibration=calibration, calibration_labels=labels,
                       input_name=input_name, input_shape=input_shape,
                       evaluate=_onnx_evaluator(manifest, "calibration", cache), train_hook=_train_hook(manifest))
    start = time.perf_counter()
    try:
        result = technique.build(ctx)
    except HarnessError:
        raise
    except Exception as exc:
        raise ModelError(f"{recipe.where}: technique {recipe.technique!r} failed: {exc}") from exc
    build_s = time.perf_counter() - start
    Path(result.path).replace(out)  # atomic: a half-written variant is never cached
    info = dict(result.info)
    info.setdefault("post_training", ctx.train_hook is None)
    return info, result.storage_bytes, build_s


def _base_input(manifest: Manifest) -> tuple[str, list]:
    import onnx

    try:
        model = onnx.load(str(manifest.base), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{manifest.base}: not a readable ONNX model: {exc}") from None
    inits = {t.name for t in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in inits)
    shape = [d.dim_value if d.HasField("dim_value") else 1 for d in first.type.tensor_type.shape.dim]
    override = next((i for i in manifest.inputs if i.get("name") == first.name and i.get("shape")), None)
    return first.name, list(override["shape"]) if override else shape


def clear_cache(cache: Path = DEFAULT_CACHE) -> None:
    shutil.rmtree(Path(cache) / "variants", ignore_errors=True)
