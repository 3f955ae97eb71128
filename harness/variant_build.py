"""Model manifests (models/*.yaml), their variants, datasets and host-side accuracy.

A manifest names one base model and the variants to benchmark:

    name: digits-cnn
    base: digits_cnn.onnx            # relative to the manifest
    dataset: digits                  # optional: labelled data for accuracy (harness.datasets)
    inputs:                          # optional: fix dynamic dims, dtypes, value ranges
      - {name: input, shape: [1, 1, 8, 8], dtype: float32}
    max_accuracy_drop: 0.03          # optional: what the accuracy suite tolerates vs fp32
    control: true                    # optional: measure the base twice per round (an A/A pair)
    min_cosine: 0.99                 # optional: the agreement suite's budget (every output, every input)
    calibration: calib.npz           # optional: int8-static calibrates on these (one array per input)
    agreement: {samples: 16, inputs: probe.npz}   # optional: what agreement compares on
    variants:
      - {name: fp32, technique: fp32}
      - {name: int8-static, technique: int8-static, params: {per_channel: true}}
      - {name: tflite-int8, file: digits_cnn_int8.tflite, technique: int8-full,
         runtimes: [litert, tflite_runtime, mcu]}

Technique variants are built from the base by harness.compress and cached by content
(base SHA-256 + technique + parameters), so an unchanged variant is never rebuilt. Every
technique starts from the base's normal form (harness.compress.normalize); a variant counts
as built only when it passes onnx.checker (full), loads in onnxruntime and, unless it is
fp32, differs from the base; its output agreement with the base is computed right then.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import __version__, datasets, names, config_fields, yamlfile
from . import agreement as agreement_lib
from .agreement import Agreement
from .errors import ConfigError, HarnessError, ModelError, RuntimeMissing
from .modelinfo import facts, model_format, sha256_file

DEFAULT_CACHE = Path(".harness-cache")
RUNTIMES_BY_FORMAT = {"onnx": ("onnxruntime",), "tflite": ("litert", "tflite_runtime"), "pt2": ("torch",)}
CONTROL_NAME = "control"  # the A/A twin's variant name (harness.decide.CONTROL_VARIANT)
TRAIN_HOOKS = ("torch",)  # fine-tuning hooks a manifest may name (harness.compress.torch_train)
# bump when what a cached build holds changes (2: normal form, checks, agreement in meta.json)
BUILD_FORMAT = 2
# techniques that need representative inputs: without a dataset or a calibration .npz they
# get inputs generated from the signature (said in the table); low-rank stays data-free then
CALIBRATED = ("int8-static", "fixed-point", "mixed-precision")
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")


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
    min_cosine: Optional[float] = None           # the agreement suite's budget
    calibration: Optional[Path] = None           # user .npz for int8-static
    agreement_samples: int = 16
    agreement_inputs: Optional[Path] = None      # user .npz agreement runs on

    @property
    def input_shapes(self) -> dict:
        """{input name: fixed shape} from ``inputs:``; what every count is computed at."""
        return {i["name"]: list(i["shape"]) for i in self.inputs if i.get("shape")}

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
    weight_bytes: int = 0            # the parameters as stored (the stored form when it differs)
    agreement: Optional[dict] = None  # outputs against the base (harness.agreement)
    macs_unknown: tuple = ()         # operators whose MACs shape inference cannot know

    @property
    def id(self) -> str:
        return f"{self.model}/{self.name}"


# ---------------------------------------------------------------- manifests


def load_manifest(path: Path) -> Manifest:
    path = Path(path)
    data = yamlfile.load(path, "a readable model manifest")
    src = str(path)
    config_fields.check_keys(src, "", data, ("name", "description", "base", "dataset", "inputs", "variants",
                                      "max_accuracy_drop", "train_hook", "control",
                                      "search",  # search: read by harness.search.space
                                      "min_cosine", "calibration", "agreement"),
                        required=("name", "base", "variants"))
    # Names and files become cache paths, C identifiers and report text: checked here, once.
    name = names.check_name(src, "name", config_fields.get(src, "", data, "name", str, required=True))
    base = names.check_model_file(src, "base", config_fields.get(src, "", data, "base", str, required=True),
                                     path.parent)
    dataset = config_fields.get(src, "", data, "dataset", str, None, choices=sorted(datasets.DATASETS))
    inputs = _inputs(src, data)
    recipes = _recipes(src, path.parent, data)
    drop = _finite(src, "max_accuracy_drop",
                   config_fields.get(src, "", data, "max_accuracy_drop", float, None, minimum=0.0, maximum=1.0))
    manifest = Manifest(name=name, source=path, base=base,
                        description=config_fields.get(src, "", data, "description", str, ""),
                        dataset=dataset, inputs=tuple(inputs), max_accuracy_drop=drop,
                        variants=tuple(recipes),
                        train_hook=config_fields.get(src, "", data, "train_hook", str, None, choices=TRAIN_HOOKS),
                        control=config_fields.get(src, "", data, "control", bool, False),
                        **_agreement_fields(path, data))
    _check_against_model(manifest)
    return manifest


def _inputs(src: str, data: dict) -> list:
    """The manifest's `inputs:` overrides, each checked (shape, dtype, value range)."""
    inputs = config_fields.get(src, "", data, "inputs", list, [])
    for i, item in enumerate(inputs):
        where = f"inputs[{i}]"
        config_fields.check_keys(src, where, item, ("name", "shape", "dtype", "low", "high"), required=("name",))
        shape = config_fields.get(src, where, item, "shape", list, None)
        if shape is not None and not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ConfigError(src, f"{where}.shape", "a list of positive integers", shape)
        config_fields.get(src, where, item, "dtype", str, None, choices=DTYPES)
        _check_range(src, where, item)
    return inputs


def _recipes(src: str, folder: Path, data: dict) -> list:
    """The manifest's variants, in order; names unique and never the control's."""
    recipes, seen = [], set()
    for i, item in enumerate(config_fields.get(src, "", data, "variants", list, required=True)):
        where = f"variants[{i}]"
        config_fields.check_keys(src, where, item, ("name", "technique", "params", "file", "runtimes"), required=("name",))
        vname = names.check_name(src, f"{where}.name", config_fields.get(src, where, item, "name", str, required=True))
        if vname in seen:
            raise ConfigError(src, f"{where}.name", "a name not used by another variant", vname)
        if vname == CONTROL_NAME and data.get("control"):
            raise ConfigError(src, f"{where}.name", f"a name other than {CONTROL_NAME!r} (with control: true "
                              "the harness adds the base's A/A twin under that name)", vname)
        seen.add(vname)
        recipes.append(_recipe(src, folder, where, vname, item))
    return recipes


def _recipe(src: str, folder: Path, where: str, vname: str, item: dict) -> VariantRecipe:
    """One variant: a technique built from the base (its params checked against the
    technique's), or a prebuilt file (.onnx or .tflite) beside the manifest."""
    file = config_fields.get(src, where, item, "file", str, None)
    if file is not None:
        names.check_model_file(src, f"{where}.file", file, folder)
    technique = config_fields.get(src, where, item, "technique", str, None)
    if file is not None:
        params = config_fields.get(src, where, item, "params", dict, {})
        try:
            fmt = model_format(Path(file))
        except ModelError:
            raise ConfigError(src, f"{where}.file", "a .onnx or .tflite file (or a torch.export .pt2)", file) from None
    else:
        from .compress import techniques

        known = techniques()
        if technique is None:
            raise ConfigError(src, f"{where}.technique", "a technique or a file", None, "both are missing")
        if technique not in known:
            raise ConfigError(src, f"{where}.technique", "one of " + ", ".join(sorted(known)), technique)
        params = config_fields.get(src, where, item, "params", dict, {})
        config_fields.check_keys(f"{src}: {where} ({vname})", "params", params, known[technique].params)
        fmt = "onnx"
    runtimes = tuple(config_fields.get_list(src, where, item, "runtimes", str, default=RUNTIMES_BY_FORMAT[fmt]))
    return VariantRecipe(vname, technique or "prebuilt", params, file, runtimes,
                         f"{src}: {where} ({vname}, {technique or 'file'})")


def _finite(src, field_name, value):
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(src, field_name, "a finite number", value)
    return value


def _check_range(src, where, item) -> None:
    """``low``/``high`` of an input: finite numbers with low <= high."""
    for key in ("low", "high"):
        if key in item:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(src, f"{where}.{key}", "a finite number", value)
    if "low" in item and "high" in item and item["low"] > item["high"]:
        raise ConfigError(src, f"{where}.high", f"a number >= low ({item['low']})", item["high"])
    if item.get("dtype") in ("int8", "uint8", "int16", "int32", "int64"):
        for key in ("low", "high"):
            if key in item and float(item[key]) != int(item[key]):
                raise ConfigError(src, f"{where}.{key}", f"an integer for dtype {item['dtype']}", item[key])


def _agreement_fields(path: Path, data: dict) -> dict:
    src = str(path)
    min_cosine = _finite(src, "min_cosine", config_fields.get(src, "", data, "min_cosine", float, None,
                                                       minimum=-1.0, maximum=1.0))
    calibration = config_fields.get(src, "", data, "calibration", str, None)
    block = config_fields.get(src, "", data, "agreement", dict, {})
    config_fields.check_keys(src, "agreement", block, ("samples", "inputs"))
    samples = config_fields.get(src, "agreement", block, "samples", int, 16, minimum=1, maximum=100000)
    inputs = config_fields.get(src, "agreement", block, "inputs", str, None)
    files = {}
    for field_name, name in (("calibration", calibration), ("agreement.inputs", inputs)):
        if name is None:
            files[field_name] = None
            continue
        file = path.parent / name
        if file.suffix != ".npz" or not file.is_file():
            raise ConfigError(src, field_name, "an existing .npz file next to the manifest", name)
        files[field_name] = file
    return {"min_cosine": min_cosine, "calibration": files["calibration"], "agreement_samples": samples,
            "agreement_inputs": files["agreement.inputs"]}


def _model_input_names(base: Path) -> Optional[list]:
    """Names of the base model's inputs, or None when this host cannot read them."""
    if not base.is_file():
        return None
    if model_format(base) == "onnx":
        import onnx

        try:
            model = onnx.load(str(base), load_external_data=False)
        except Exception as exc:
            raise ModelError(f"{base}: not a readable ONNX model: {exc}") from None
        inits = {t.name for t in model.graph.initializer}
        return [i.name for i in model.graph.input if i.name not in inits]
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    try:
        return [d["name"] for d in Interpreter(model_path=str(base)).get_input_details()]
    except Exception as exc:
        raise ModelError(f"{base}: not a readable TFLite model: {exc}") from None


def _check_against_model(manifest: Manifest) -> None:
    """What a manifest says about its base must be true of the base: input names, formats."""
    src = str(manifest.source)
    names = _model_input_names(manifest.base)
    if names is not None:
        for i, item in enumerate(manifest.inputs):
            if item["name"] not in names:
                raise ConfigError(src, f"inputs[{i}].name", "an input of " + manifest.base.name
                                  + " (" + ", ".join(names) + ")", item["name"])
    base_format = model_format(manifest.base)
    from .compress import techniques

    known = techniques()
    for i, recipe in enumerate(manifest.variants):
        if recipe.file is None and base_format not in known[recipe.technique].formats:
            raise ConfigError(src, f"variants[{i}].technique",
                              f"a technique that accepts a {base_format} base ({recipe.name}: "
                              f"{recipe.technique} accepts {', '.join(known[recipe.technique].formats)})",
                              recipe.technique)


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
    """Top-1 of a model file on this host, through the same code the on-device runner uses.
    RuntimeMissing when this host has no runtime for it; ModelError for any other failure."""
    from .ondevice import runner

    spec = {"model": str(path), "runtime": "auto", "threads": 1, "inputs": list(inputs)}
    try:
        backend = runner.make_backend(spec)
        backend.init(backend.load(str(path)))
        model_inputs, _ = backend.signature()
        return runner.evaluate(backend, model_inputs, str(dataset_npz))["top1"]
    except runner.RunnerFailure as exc:
        error = RuntimeMissing if exc.kind == "RuntimeMissing" else ModelError
        raise error(f"{path}: cannot evaluate on this host: {exc}") from None


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
                       "train_hook": hook, "harness": __version__,
                       "build": BUILD_FORMAT}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def build_variant(manifest: Manifest, recipe: VariantRecipe, cache: Path = DEFAULT_CACHE,
                  evaluate_accuracy: bool = True) -> Variant:
    """Build (or fetch from the cache) one variant, check it, compare it with its base, describe it.

    Raises HarnessError (ConfigError / ModelError) naming the manifest and the variant when
    the technique refuses the model, changes nothing, or writes a model that fails the
    checker or onnxruntime.
    """
    cache = Path(cache)
    path, info, storage, build_s, agreement = (_prebuilt(manifest, recipe) if recipe.file
                                               else _built_or_cached(manifest, recipe, cache))
    f = facts(path, manifest.input_shapes)
    variant = Variant(
        model=manifest.name, name=recipe.name, technique=recipe.technique, params=dict(recipe.params),
        format=f.format, path=path, sha256=f.sha256, size_bytes=f.size_bytes,
        storage_bytes=storage or f.size_bytes, n_params=f.params, macs=f.macs,
        runtimes=recipe.runtimes, info=info, build_s=build_s,
        weight_bytes=storage or f.weight_bytes, macs_unknown=f.macs_unknown,
        agreement=None if agreement is None else Agreement(agreement))
    if evaluate_accuracy and manifest.dataset:
        variant.host_accuracy = _cached_accuracy(variant, manifest, cache, recipe.where)
    return variant


def _prebuilt(manifest: Manifest, recipe: VariantRecipe) -> tuple:
    """(path, info, storage, build_s, agreement) of a variant given as a file; its agreement
    with the base when both are ONNX."""
    path = manifest.source.parent / recipe.file
    if not path.is_file():
        raise ModelError(f"{recipe.where}: file: model file {path} not found")
    agreement = None
    if recipe.format == "onnx" and model_format(manifest.base) == "onnx" and manifest.base.is_file():
        agreement = _agreement(manifest, path, recipe)
    return path, {"prebuilt": True}, None, 0.0, agreement


def _built_or_cached(manifest: Manifest, recipe: VariantRecipe, cache: Path) -> tuple:
    """(path, info, storage, build_s, agreement) of a technique variant: from the cache when
    this base, recipe and harness built it before, else built, checked and cached now."""
    if not manifest.base.is_file():
        raise ModelError(f"{manifest.source}: base: model file {manifest.base} not found")
    key = _cache_key(manifest, recipe, sha256_file(manifest.base))
    # Checked names, and checked again here: nothing derived from a manifest leaves the cache.
    folder = names.join_inside(cache, "variants", key)
    path = names.join_inside(folder, f"{manifest.name}__{recipe.name}.onnx")
    meta_path = folder / "meta.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return path, meta["info"], meta["storage_bytes"], meta["build_s"], meta.get("agreement")
    info, storage, build_s = _build(manifest, recipe, folder, path, cache)
    agreement = _agreement(manifest, path, recipe)
    tmp_meta = meta_path.with_suffix(f".{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    tmp_meta.write_text(json.dumps({"info": info, "storage_bytes": storage, "build_s": build_s,
                                    "agreement": agreement}))
    tmp_meta.replace(meta_path)  # a concurrent reader never sees half a file
    return path, info, storage, build_s, agreement


def _cached_accuracy(variant: Variant, manifest: Manifest, cache: Path, where: str) -> Optional[float]:
    """The variant's top-1 on this host (cached by content); None only when this host has no
    runtime for it (the device still measures it). Any other failure is the variant's error:
    a silent None would make the accuracy suite skip it."""
    record = names.join_inside(cache, "accuracy", f"{variant.sha256}-{manifest.dataset}.json")
    if record.is_file():
        return json.loads(record.read_text())["top1"]
    try:
        top1 = host_accuracy(variant.path, dataset_file(manifest, cache), manifest.inputs)
    except RuntimeMissing:
        return None
    except ModelError as exc:
        raise ModelError(f"{where}: host accuracy: {exc}") from None
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"top1": top1}))
    return top1


# ---------------------------------------------------------------- inputs for agreement and calibration


def probe_feeds(manifest: Manifest, purpose: str = "agreement") -> tuple[list, str]:
    """Feeds ({input: array}) and where they come from, for ``agreement`` or ``calibration``.

    Agreement: ``agreement.inputs`` (.npz), else the dataset's test split, else generated from
    the signature within the manifest's ranges. Calibration: ``calibration`` (.npz), else the
    dataset's calibration split, else generated (another seed than agreement's).
    """
    inputs = agreement_lib.signature(manifest.base)
    for item in inputs:
        override = next((i for i in manifest.inputs if i["name"] == item["name"]), {})
        item["shape"] = override.get("shape") or item["shape"]
        item["dtype"] = override.get("dtype") or item["dtype"]
    n = manifest.agreement_samples
    if purpose == "agreement":
        npz, part, seed = manifest.agreement_inputs, "test", 0
    else:
        npz, part, seed, n = manifest.calibration, "calibration", 1, max(n, 32)
    if npz is not None:
        return agreement_lib.npz_feeds(npz, inputs, None if purpose != "agreement" else n,
                                       where="calibration" if purpose != "agreement" else "agreement.inputs")
    if manifest.dataset:
        from .ondevice import runner

        split = datasets.load(manifest.dataset, part)
        if purpose != "agreement":
            n = len(split.x)      # calibration takes the whole calibration split (params.samples limits)
        shaped = [dict(i, shape=[d if isinstance(d, int) and d > 0 else 1 for d in i["shape"]]) for i in inputs]
        try:
            feeds = runner.dataset_feeds(shaped, split.x[:n])
        except runner.RunnerFailure as exc:
            raise ConfigError(manifest.source, "dataset", "samples that fit the model's input", manifest.dataset,
                              str(exc)) from None
        return feeds, f"dataset {manifest.dataset} ({part} split, {len(feeds)} samples)"
    return agreement_lib.generated_feeds(inputs, manifest.inputs, n, seed)


def _agreement(manifest: Manifest, path: Path, recipe: VariantRecipe) -> dict:
    feeds, source = probe_feeds(manifest, "agreement")
    try:
        return dict(agreement_lib.compare(manifest.base, path, feeds, source))
    except HarnessError as exc:
        raise ModelError(f"{recipe.where}: agreement with the base: {exc}") from None


# ---------------------------------------------------------------- building


def verify_built(path: Path, normal_base, technique: str, where: str) -> None:
    """A variant counts as built only if it is valid ONNX (full check), loads in onnxruntime
    and, unless it is meant to be the base, differs from the base's normal form."""
    import onnx

    from .compress import normalize
    from .compress import onnx_graph as g

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ModelError(f"{where}: the built model fails onnx.checker: {str(exc)[:400]}") from None
    try:
        g.session(str(path))
    except Exception as exc:  # onnxruntime raises several private exception types
        raise ModelError(f"{where}: onnxruntime cannot load the built model: {str(exc)[:400]}") from None
    if technique != "fp32" and normalize.same_graph(g.load(path), normal_base):
        raise ModelError(f"{where}: technique {technique!r} changed nothing in the model "
                         "(same nodes, same weights as the base)")


def _build(manifest: Manifest, recipe: VariantRecipe, folder: Path, out: Path, cache: Path):
    import onnx

    from .compress import BuildContext, get_technique, normalize
    from .compress import onnx_graph as g

    technique = get_technique(recipe.technique)
    folder.mkdir(parents=True, exist_ok=True)
    # names of this process's own: two xdist workers may build the same variant at once
    unique = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp_out = out.with_suffix(f".{unique}.partial.onnx")
    base = g.load(manifest.base)
    form = normalize.normalize(base)
    half = normalize.float16_base(base)
    if half and recipe.technique != "fp32":
        raise ModelError(f"{recipe.where}: the base is already float16 ({', '.join(half[:5])}); "
                         "the techniques start from a float32 model")
    normal_path = folder / f"base-normal.{unique}.onnx"
    onnx.save(base, str(normal_path))
    calibration, feeds, feeds_source = _calibration(manifest, recipe)
    input_name, input_shape = _base_input(manifest)
    ctx = BuildContext(base=manifest.base if recipe.technique == "fp32" else normal_path, out=tmp_out,
                       params=dict(recipe.params), source=recipe.where,
                       calibration=calibration,
                       input_name=input_name, input_shape=input_shape,
                       evaluate=_onnx_evaluator(manifest, "calibration", cache), train_hook=_train_hook(manifest),
                       calibration_feeds=feeds, calibration_source=feeds_source,
                       input_shapes=manifest.input_shapes)
    start = time.perf_counter()
    result = _run_technique(technique, ctx, recipe)
    build_s = time.perf_counter() - start
    verify_built(result.path, base, recipe.technique, recipe.where)
    Path(result.path).replace(out)  # atomic: a half-written variant is never cached
    normal_path.unlink()
    info = dict(result.info)
    info.setdefault("post_training", ctx.train_hook is None)
    info["normal_form"] = form.as_info()
    if feeds_source:
        info.setdefault("calibration", feeds_source)
    return info, result.storage_bytes, build_s


def _calibration(manifest: Manifest, recipe: VariantRecipe) -> tuple:
    """(calibration array, calibration feeds, where the feeds come from) for a build: the
    dataset's calibration split, else the manifest's .npz or generated inputs for the
    techniques that need representative inputs (a single float input also as an array)."""
    calibration = None
    if manifest.dataset and manifest.calibration is None:
        calibration = datasets.load(manifest.dataset, "calibration").x
    feeds, feeds_source = None, ""
    if recipe.technique in CALIBRATED or manifest.calibration is not None:
        feeds, feeds_source = probe_feeds(manifest, "calibration")
        single = len(feeds[0]) == 1 and next(iter(feeds[0].values())).dtype.kind == "f"
        if calibration is None and single:
            # samples along the batch axis: (N, ...) when the model's batch is 1
            calibration = np.concatenate([next(iter(f.values())) for f in feeds]).astype(np.float32)
    return calibration, feeds, feeds_source


def _run_technique(technique, ctx, recipe: VariantRecipe):
    """The technique's build; any failure becomes a ModelError naming the variant."""
    try:
        return technique.build(ctx)
    except ModelError as exc:
        text = str(exc)
        raise ModelError(text if text.startswith(recipe.where) else f"{recipe.where}: {text}") from None
    except HarnessError:
        raise
    except Exception as exc:
        raise ModelError(f"{recipe.where}: technique {recipe.technique!r} failed: "
                         f"{type(exc).__name__}: {exc}") from exc


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
