"""A benchmarking session: devices, variants and measurements, stored as they happen.

One object drives the whole flow (deploy -> campaign -> runner -> document -> Measurement
-> store) for the pytest plugin and the CLI alike. Devices are opened on first use and
kept for the session; variants are built once.

A device's variants are measured together, as a CAMPAIGN (docs/measurement.md): R rounds,
each visiting every selected variant once in a fresh order drawn from a stored seed, each
visit a fresh runner process with 1/R of the timed-loop budget. Drift (load, frequency,
temperature, neighbours) then falls on every variant alike, and the statistics see it as
between-round variance instead of a difference between variants. The suites still ask for
one Measurement per (device, variant): the first ask measures the device's whole campaign,
the others read the result (or the error a variant failed with, remembered).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import document, provenance, variant_build
from .devices import device_class, open_device
from .errors import DeviceError, HarnessError
from .inventory import DeviceSpec, Inventory
from .measurement import Measurement, from_rounds
from .store import Store

# The order in which a .tflite variant picks its interpreter when a device offers several.
TFLITE_PREFERENCE = ("litert", "tflite_runtime", "mcu")


@dataclass
class _Visit:
    """One variant's place in a campaign and what its rounds returned so far."""
    key: tuple
    manifest: variant_build.Manifest
    recipe: variant_build.VariantRecipe
    variant: variant_build.Variant
    run_spec: dict
    docs: list = field(default_factory=list)
    energies: list = field(default_factory=list)
    positions: list = field(default_factory=list)
    stored_id: Optional[int] = None   # the store row its rounds so far are written to


class BenchSession:
    """One benchmarking run over an inventory and manifests (not pytest's session)."""

    def __init__(self, inventory: Inventory, store: Store, manifests: list, *,
                 cache: Path = variant_build.DEFAULT_CACHE, overrides: Optional[dict] = None,
                 run_tag: Optional[str] = None, run_id: Optional[str] = None,
                 leases=None, owns_run: Optional[bool] = None, run_settings: Optional[dict] = None,
                 order_seed: Optional[int] = None, progress=None, before_round=None):
        self.inventory, self.store, self.manifests = inventory, store, manifests
        self.cache = Path(cache)
        self.overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        self.run_tag = run_tag
        self._run_id = run_id
        # A run id handed in (an xdist worker's) is finished by whoever made it.
        self._owns_run = run_id is None if owns_run is None else owns_run
        self.run_settings = dict(run_settings or {})  # stored with the run beside the overrides
        self.leases = leases            # a LeaseManager: a board is locked before it is used
        self.busy: dict = {}            # device -> the LeaseBusy that said no (asked once)
        # The round order's seed: stored on every measurement, so an order can be replayed.
        self.order_seed = int(order_seed) if order_seed is not None else random.SystemRandom().randrange(2 ** 31)
        self.progress = progress or (lambda text: None)
        # called with (device name, round index) before each round (benchmarks/bench_noise.py
        # switches a background load there)
        self.before_round = before_round or (lambda device_name, round_index: None)
        self.selection: list = []       # (manifest, recipe) pairs a campaign covers
        self._specs: dict[str, DeviceSpec] = {}
        self._devices: dict = {}
        self._variants: dict[str, variant_build.Variant] = {}
        self._results: dict[tuple, Measurement] = {}
        self.failures: dict[tuple, HarnessError] = {}   # a variant that failed: asked once
        self._campaigns = 0
        self._remeasured: set = set()
        self.measured: list[Measurement] = []

    # ------------------------------------------------------------ the run

    @property
    def run_id(self) -> Optional[str]:
        """The run's id, None before start_run()."""
        return self._run_id

    def start_run(self) -> str:
        """Open the run in the store (once); measurements are written into it."""
        if self._run_id is None:
            self._run_id = self.store.start_run(
                settings={**self.run_settings, **self.overrides, "order_seed": self.order_seed},
                tag=self.run_tag)
            if self.leases is not None:
                self.leases.run_id = self._run_id  # shown by `harness devices status` from the next renewal
        return self._run_id

    def select(self, pairs) -> None:
        """The (manifest, recipe) pairs this session measures: a device's campaign covers
        every one of them its runtimes can run."""
        self.selection = list(pairs)

    # ------------------------------------------------------------ pieces

    def spec(self, name: str) -> DeviceSpec:
        if name not in self._specs:
            self._specs[name] = self.inventory.get(name).with_settings(**self.overrides)
        return self._specs[name]

    def device(self, name: str):
        if name not in self._devices:
            self._lease(name)
            device = open_device(self.spec(name))
            device.connect()
            self._devices[name] = device
        return self._devices[name]

    def _lease(self, name: str) -> None:
        if self.leases is None:
            return
        if name in self.busy:
            raise self.busy[name]
        from .lease import LeaseBusy

        try:
            self.leases.run_id = self._run_id  # known up front under xdist; shown by `devices status`
            self.leases.acquire(name)
        except LeaseBusy as exc:
            self.busy[name] = exc
            raise

    def variant(self, manifest: variant_build.Manifest, recipe: variant_build.VariantRecipe) -> variant_build.Variant:
        key = f"{manifest.name}/{recipe.name}"
        if key not in self._variants:
            self.progress(f"building {key} ({recipe.technique})")
            self._variants[key] = variant_build.build_variant(manifest, recipe, self.cache)
        return self._variants[key]

    def runtime_for(self, spec: DeviceSpec, recipe: variant_build.VariantRecipe) -> Optional[str]:
        """The runtime this device uses for this variant, or None if it has none that fits."""
        offered = [r for r in recipe.runtimes if r in spec.capabilities.runtimes]
        if not offered:
            return None
        if recipe.format == "tflite":
            return min(offered, key=lambda r: TFLITE_PREFERENCE.index(r) if r in TFLITE_PREFERENCE else 99)
        return offered[0]

    def skip_reason(self, device_name: str, recipe: variant_build.VariantRecipe) -> Optional[str]:
        spec = self.spec(device_name)
        if self.runtime_for(spec, recipe) is None:
            return (f"{device_name} cannot run {recipe.name}: it needs one of the runtimes "
                    f"{', '.join(recipe.runtimes)}; the device declares "
                    f"{', '.join(spec.capabilities.runtimes) or 'none'}")
        # the kind may refuse a variant (a prebuilt MCU firmware holds one model only)
        owner = next((m.name for m in self.manifests if recipe in m.variants), "?")
        return device_class(spec.kind).unsupported_reason(spec, f"{owner}/{recipe.name}")

    # ------------------------------------------------------------ measuring

    @staticmethod
    def _key(device_name: str, manifest: variant_build.Manifest, recipe: variant_build.VariantRecipe, settings: dict) -> tuple:
        return (device_name, manifest.name, recipe.name, json.dumps(settings, sort_keys=True, default=str))

    def measure(self, device_name: str, manifest: variant_build.Manifest, recipe: variant_build.VariantRecipe,
                **settings) -> Measurement:
        """The Measurement of this variant on this device with these settings.

        Without settings the first call measures the device's campaign over the whole
        selection; with settings (say threads=4) the variant is measured in rounds alone."""
        key = self._key(device_name, manifest, recipe, settings)
        if key not in self._results and key not in self.failures:
            if self.skip_reason(device_name, recipe):
                raise DeviceError(self.skip_reason(device_name, recipe))
            cases = [(manifest, recipe)]
            spec = self.spec(device_name)
            # a pool's variants are spread over several boards: no board sees the others,
            # so each variant is a campaign of its own (compared unpaired: harness.decide),
            # without A/A controls (their twins are measured elsewhere)
            pooled = device_class(spec.kind).spreads_over_workers(spec.options)
            if not settings and not pooled:
                cases += [(m, r) for m, r in self.selection
                          if (m.name, r.name) != (manifest.name, recipe.name)
                          and self.skip_reason(device_name, r) is None]
            self._campaign(device_name, cases, settings, controls=not settings and not pooled)
        if key in self.failures:
            raise self.failures[key]
        return self._results[key]

    def _campaign(self, device_name: str, cases: list, settings: dict, controls: bool = False) -> None:
        spec = self.spec(device_name)
        device = self.device(device_name)
        self.start_run()
        rounds = int(settings.get("rounds") or spec.settings.get("rounds") or 1)
        visits = self._plan(device_name, device, spec, cases, settings, controls)
        if not visits:
            return
        self._campaigns += 1
        campaign_id = f"{self._run_id}:{device_name}:{self._campaigns}"
        rng = random.Random(f"{self.order_seed}:{device_name}:{self._campaigns}")
        prepared = self._prepare(device, spec)
        self._campaign_info = {"id": campaign_id, "seed": self.order_seed, "rounds": rounds,
                               "variants": len(visits), "prepare": prepared}
        try:
            for r in range(rounds):
                alive = [v for v in visits if v.key not in self.failures]
                order = rng.sample(alive, len(alive))
                self.progress(f"{device_name}: round {r + 1}/{rounds} (order seed {self.order_seed}): "
                              + ", ".join(f"{v.manifest.name}/{v.recipe.name}" for v in order))
                self.before_round(device_name, r)
                for position, visit in enumerate(order):
                    if self._visit(device_name, device, spec, visit, r, rounds, position) and r < rounds - 1:
                        # written now, as far as it got: a crash later loses only the visit in
                        # flight (the row says how many rounds it holds until the last one)
                        self._finish(device_name, device, spec, visit, self._campaign_info, final=False)
            self._profiles(device_name, device, spec, visits)
        finally:
            restored = self._restore(device, spec)
        info = {**self._campaign_info, "restore": restored}
        for visit in visits:
            if visit.key not in self.failures:
                self._finish(device_name, device, spec, visit, info, final=True)
            elif visit.docs:   # it failed after some rounds: its row says so
                self._finish(device_name, device, spec, visit, info, final=False, failed=self.failures[visit.key])

    def _plan(self, device_name, device, spec, cases, settings, controls: bool) -> list:
        """Build and deploy every variant of the campaign (a failure is remembered per
        variant); with `controls`, a manifest's A/A twin joins beside its variants."""
        visits, seen = [], set()
        twins = [(m, variant_build.control_recipe(m)) for m in {id(m): m for m, _ in cases}.values()
                 if m.control and controls]
        # the twin is the base model again: a board that cannot run the base has no control
        twins = [(m, r) for m, r in twins if self.skip_reason(device_name, r) is None]
        for manifest, recipe in cases + twins:
            key = self._key(device_name, manifest, recipe, settings)
            if key in seen or key in self._results or key in self.failures:
                continue
            seen.add(key)
            try:
                variant = self.variant(manifest, recipe)
                visits.append(_Visit(key, manifest, recipe, variant,
                                     self._run_spec(device, spec, manifest, recipe, variant, settings)))
            except HarnessError as exc:
                self.failures[key] = exc
        return visits

    def _run_spec(self, device, spec, manifest, recipe, variant, settings) -> dict:
        merged = dict(spec.settings)
        merged.update(settings)
        run_spec = {
            "model": device.deploy(variant.path),
            "runtime": self.runtime_for(spec, recipe),
            "providers": list(merged.pop("providers", None) or spec.capabilities.providers or ["CPUExecutionProvider"]),
            "inputs": variant_build.input_spec(manifest),
            **merged,
        }
        dataset = variant_build.dataset_file(manifest, self.cache)
        if dataset is not None:
            run_spec["dataset"] = device.deploy(dataset)
        return run_spec

    @staticmethod
    def round_spec(run_spec: dict, round_index: int, rounds: int) -> dict:
        """One round's share of the timed-loop budget: the duration and counts split evenly
        (so R rounds cost about what one long window did), accuracy on the last round only."""
        out = dict(run_spec)
        out.pop("rounds", None)
        out["round"] = round_index
        out["min_duration_s"] = float(run_spec.get("min_duration_s", 1.0)) / rounds
        out["min_iterations"] = max(1, math.ceil(int(run_spec.get("min_iterations", 1)) / rounds))
        out["max_iterations"] = max(out["min_iterations"], math.ceil(int(run_spec.get("max_iterations", 1)) / rounds))
        if round_index != rounds - 1:
            out.pop("dataset", None)
            out.pop("profile", None)   # the profiled pass follows the last round's timed loop only
        return out

    def _visit(self, device_name, device, spec, visit: _Visit, r: int, rounds: int, position: int) -> bool:
        self._check_lease(device_name)
        try:
            raw, energy = self._run(device, spec, self.round_spec(visit.run_spec, r, rounds))
            doc = document.validate(raw, f"{device_name} {visit.variant.id} round {r + 1}")
        except HarnessError as exc:
            self.failures[visit.key] = exc   # the variant's other suites fail fast with it
            return False
        visit.docs.append(doc)
        visit.energies.append(energy)
        visit.positions.append(position)
        return True

    def _finish(self, device_name, device, spec, visit: _Visit, campaign: dict, final: bool,
                failed: Optional[Exception] = None) -> None:
        """Write the visit's measurement from its rounds so far; `final`: the campaign ended
        and this is the result; `failed`: a later round of it failed with this error."""
        if failed is None:
            self._check_lease(device_name)  # lapsed during the run: the numbers are not this run's alone
        settings = {k: v for k, v in visit.run_spec.items() if k not in ("model", "dataset")}
        prov = self._provenance(spec, device, visit.docs[-1], visit.variant)
        prov["campaign"] = {**campaign, "positions": visit.positions}
        loops = [d.get("loop") or {} for d in visit.docs]
        prov["timed_loop"] = {  # the whole measurement's loop: the rounds' loops added up
            "iterations": sum(int(lp.get("iterations") or 0) for lp in loops),
            "wall_ns": sum(int(lp.get("wall_ns") or 0) for lp in loops),
            "stop_reason": next((lp["stop_reason"] for lp in loops if lp.get("stop_reason") == "max_iterations"),
                                loops[-1].get("stop_reason")),
            "rounds": loops}
        measurement = from_rounds(visit.docs, device=device_name, variant=visit.variant, emulated=spec.emulated,
                                  settings=settings, provenance=prov, energy=_merge_energy(visit.energies),
                                  thresholds=spec.validity)
        planned = campaign["rounds"]
        if len(visit.docs) < planned:
            measurement.validity["verdict"] = "invalid"
            if failed is not None:
                tail = f", then it failed: {str(failed).splitlines()[0]}"
            elif not final:
                tail = " so far (the campaign was still running when this was written)"
            else:
                tail = ""
            measurement.validity["reasons"].append(f"incomplete: {len(visit.docs)} of {planned} rounds{tail}")
        measurement.run_id = self._run_id
        measurement.id = visit.stored_id
        visit.stored_id = self.store.save(measurement)
        if final:
            self._results[visit.key] = measurement
            self.measured.append(measurement)

    def result(self, device_name: str, manifest: variant_build.Manifest, recipe: variant_build.VariantRecipe,
               **settings) -> Optional[Measurement]:
        """The measurement if it was taken (never measures)."""
        return self._results.get(self._key(device_name, manifest, recipe, settings))

    def remeasure_once(self, m: Measurement) -> Measurement:
        """Measure an invalid result's variant again, once (the device YAML's
        validity.remeasure): a campaign of that variant alone. The invalid row stays in
        the store; later asks get the new one, valid or not."""
        key = next((k for k, v in self._results.items() if v is m), None)
        if key is None or key in self._remeasured:
            return m
        self._remeasured.add(key)
        manifest = next(x for x in self.manifests if x.name == m.model)
        recipe = next((r for r in manifest.variants if r.name == m.variant), None) or variant_build.control_recipe(manifest)
        del self._results[key]
        self.progress(f"{m.device}: {m.variant_id} was invalid ({'; '.join(m.validity.get('reasons', []))}): "
                      "measuring it once more")
        self._campaign(m.device, [(manifest, recipe)], json.loads(key[3]))
        if key in self.failures:
            raise self.failures[key]
        return self._results[key]

    def _profiles(self, device_name, device, spec: DeviceSpec, visits: list) -> None:
        """Profiled variants: aligned to their model's nodes, held against the device's measured
        peak (calibrated once per device and runtime version: harness/profile_peak.py)."""
        from .profile_peak import profile_variant

        for visit in visits:
            if visit.key in self.failures or not visit.docs or visit.docs[-1].get("profile") is None:
                continue
            try:
                profile_variant(visit.docs[-1], device_name=device_name, device=device, run_spec=visit.run_spec,
                                model_path=visit.variant.path, input_shapes=visit.manifest.input_shapes,
                                cache_dir=self.cache, datasheet=spec.peak)
            except HarnessError as exc:   # the timed result stands; the profile says why it has no roofline
                visit.docs[-1]["profile"]["roofline_error"] = str(exc).splitlines()[0]

    def _prepare(self, device, spec: DeviceSpec) -> list:
        """The YAML's prepare commands (a performance governor, jetson_clocks...): their exit
        codes and output are stored with every measurement of the campaign."""
        done = []
        for argv in spec.prepare:
            code, out = device.execute(list(argv), timeout_s=min(spec.timeout_s, 120.0))
            done.append({"argv": list(argv), "exit": code, "output": out[-500:]})
            if code != 0:
                raise DeviceError(f"{spec.name}: prepare command {' '.join(argv)!r} failed with exit {code}: "
                                  f"{out[-300:]}")
        return done

    def _restore(self, device, spec: DeviceSpec) -> list:
        done = []
        for argv in spec.restore:
            try:
                code, out = device.execute(list(argv), timeout_s=min(spec.timeout_s, 120.0))
            except HarnessError as exc:  # restoring must not hide the campaign's results
                code, out = None, str(exc)
            done.append({"argv": list(argv), "exit": code, "output": out[-500:]})
        return done

    def _check_lease(self, device_name: str) -> None:
        if self.leases is not None:
            self.leases.ensure_held(device_name)

    def _run(self, device, spec: DeviceSpec, run_spec: dict):
        """Run once; with power meters declared, bracket the run with them.

        The first meter named in the YAML is the measurement's energy figure; every meter's
        summary is kept under energy["meters"] (e.g. a board rail and an external monitor).
        """
        if not spec.power:
            raw = device.run(run_spec)  # a serial board in energy mode meters each window itself
            return raw, raw.get("energy")
        from . import power

        meters = power.open_meters(spec, device)
        try:
            run_spec["min_duration_s"] = max(float(run_spec.get("min_duration_s", 0)),
                                             power.min_window_s(meters))
            raw, energies = power.measure_with_meters(meters, lambda: device.run(run_spec),
                                                      clock_offset_s=device.clock_offset_s())
        finally:
            for meter in meters:
                meter.close()
        if not energies:
            return raw, None
        return raw, {**energies[0], "meters": energies}

    def _provenance(self, spec: DeviceSpec, device, raw: dict, variant: variant_build.Variant) -> dict:
        return {
            "time": provenance.now(),
            "device": spec.public(),
            "device_info": self._device_info(device),
            "board": raw.get("host"),
            "runtime": raw.get("runtime"),
            "numpy_version": raw.get("numpy_version"),
            "runner_version": raw.get("runner_version"),
            "timed_loop": raw.get("loop"),
            "controller": provenance.controller(),
            "variant": {"id": variant.id, "technique": variant.technique, "params": variant.params,
                        "sha256": variant.sha256, "info": variant.info, "path": variant.path.name},
        }

    @staticmethod
    def _device_info(device) -> dict:
        """The device's facts; a probe that fails now never discards a finished measurement."""
        try:
            return device.info()
        except HarnessError as exc:
            return {"kind": device.kind, "error": str(exc).splitlines()[0]}

    def close(self, outcomes: Optional[dict] = None):
        """Close devices, finish the run (with the tests' outcomes), release leases."""
        for device in self._devices.values():
            try:
                device.close()
            except Exception:
                pass  # closing must not hide the run's real result
        self._devices.clear()
        if self._run_id is not None and self._owns_run:
            failed = {f"{k[0]}|{k[1]}/{k[2]}": str(e).splitlines()[0] for k, e in self.failures.items()}
            self.store.finish_run(self._run_id, outcomes, failed)
        if self.leases is not None:
            self.leases.release_all()  # after finish_run: the next holder starts after this run ended


def _merge_energy(energies: list) -> Optional[dict]:
    """The round with the median energy per inference stands for the measurement; every
    round's figure is kept beside it."""
    measured = [e for e in energies if e and e.get("energy_per_inference_j") is not None]
    if not measured:
        return None
    ordered = sorted(measured, key=lambda e: e["energy_per_inference_j"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds_energy_per_inference_j"] = [e["energy_per_inference_j"] for e in measured]
    return chosen
