"""A benchmarking session: devices, variants and measurements, stored as they happen.

One object drives the whole flow of DESIGN.md (deploy -> run spec -> runner -> raw JSON ->
Measurement -> store) for the pytest plugin and the CLI alike. Devices are opened on
first use and kept for the session; variants are built once; a measurement of the same
device, variant and settings is taken once and shared by every suite that asks for it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from . import provenance, zoo
from .devices import device_class, open_device  # i15: device_class
from .errors import DeviceError
from .inventory import DeviceSpec, Inventory
from .measurement import Measurement, from_raw
from .store import Store

# The order in which a .tflite variant picks its interpreter when a device offers several.
TFLITE_PREFERENCE = ("litert", "tflite_runtime", "mcu")


class Session:
    def __init__(self, inventory: Inventory, store: Store, manifests: list, *,
                 cache: Path = zoo.DEFAULT_CACHE, overrides: Optional[dict] = None,
                 run_tag: Optional[str] = None, run_id: Optional[str] = None,
                 leases=None, owns_run: Optional[bool] = None, run_settings: Optional[dict] = None):
        self.inventory, self.store, self.manifests = inventory, store, manifests
        self.cache = Path(cache)
        self.overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        self.run_tag = run_tag
        self._run_id = run_id
        # A run id handed in (an xdist worker's) is finished by whoever made it.
        self._owns_run = run_id is None if owns_run is None else owns_run
        self.run_settings = dict(run_settings or {})  # stored with the run beside the overrides
        self.leases = leases            # a LeaseManager: a board is locked before it is used
        self._busy: dict = {}           # device -> the LeaseBusy that said no (asked once)
        self._specs: dict[str, DeviceSpec] = {}
        self._devices: dict = {}
        self._variants: dict[str, zoo.Variant] = {}
        self._results: dict[tuple, Measurement] = {}
        self.measured: list[Measurement] = []

    # ------------------------------------------------------------ pieces

    @property
    def run_id(self) -> str:
        if self._run_id is None:
            self._run_id = self.store.start_run(settings={**self.run_settings, **self.overrides},
                                                tag=self.run_tag)
            if self.leases is not None:
                self.leases.run_id = self._run_id  # shown by `harness devices status` from the next renewal
        return self._run_id

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
        if name in self._busy:
            raise self._busy[name]
        from .lease import LeaseBusy

        try:
            self.leases.run_id = self._run_id  # known up front under xdist; shown by `devices status`
            self.leases.acquire(name)
        except LeaseBusy as exc:
            self._busy[name] = exc
            raise

    def variant(self, manifest: zoo.Manifest, recipe: zoo.VariantRecipe) -> zoo.Variant:
        key = f"{manifest.name}/{recipe.name}"
        if key not in self._variants:
            self._variants[key] = zoo.build_variant(manifest, recipe, self.cache)
        return self._variants[key]

    def runtime_for(self, spec: DeviceSpec, recipe: zoo.VariantRecipe) -> Optional[str]:
        """The runtime this device uses for this variant, or None if it has none that fits."""
        offered = [r for r in recipe.runtimes if r in spec.capabilities.runtimes]
        if not offered:
            return None
        if recipe.format == "tflite":
            return min(offered, key=lambda r: TFLITE_PREFERENCE.index(r) if r in TFLITE_PREFERENCE else 99)
        return offered[0]

    def skip_reason(self, device_name: str, recipe: zoo.VariantRecipe) -> Optional[str]:
        spec = self.spec(device_name)
        if self.runtime_for(spec, recipe) is None:
            return (f"{device_name} cannot run {recipe.name}: it needs one of the runtimes "
                    f"{', '.join(recipe.runtimes)}; the device declares "
                    f"{', '.join(spec.capabilities.runtimes) or 'none'}")
        owner = next((m.name for m in self.manifests if recipe in m.variants), "?")  # i15: the device may refuse
        return device_class(spec.kind).unsupported_reason(spec, f"{owner}/{recipe.name}")  # i15

    # ------------------------------------------------------------ measuring

    def measure(self, device_name: str, manifest: zoo.Manifest, recipe: zoo.VariantRecipe,
                **settings) -> Measurement:
        key = (device_name, manifest.name, recipe.name, json.dumps(settings, sort_keys=True, default=str))
        if key in self._results:
            return self._results[key]
        spec = self.spec(device_name)
        runtime = self.runtime_for(spec, recipe)
        if runtime is None:
            raise DeviceError(self.skip_reason(device_name, recipe))
        variant = self.variant(manifest, recipe)
        device = self.device(device_name)
        merged = dict(spec.settings)
        merged.update(settings)
        run_spec = {
            "model": device.deploy(variant.path),
            "runtime": runtime,
            "providers": list(merged.pop("providers", None) or spec.capabilities.providers or ["CPUExecutionProvider"]),
            "inputs": zoo.input_spec(manifest),
            **merged,
        }
        dataset = zoo.dataset_file(manifest, self.cache)
        if dataset is not None:
            run_spec["dataset"] = device.deploy(dataset)
        self._check_lease(device_name)
        raw, energy = self._run(device, spec, run_spec)
        self._check_lease(device_name)  # lapsed during the run: the numbers are not this run's alone
        measurement = from_raw(
            raw, device=device_name, variant=variant, emulated=spec.emulated,
            settings={k: v for k, v in run_spec.items() if k not in ("model", "dataset")},
            provenance=self._provenance(spec, device, raw, variant), energy=energy)
        measurement.run_id = self.run_id
        self.store.save(measurement)  # now: a crash later loses nothing measured before it
        self._results[key] = measurement
        self.measured.append(measurement)
        return measurement

    def _check_lease(self, device_name: str) -> None:
        if self.leases is not None:
            self.leases.check(device_name)

    def _run(self, device, spec: DeviceSpec, run_spec: dict):
        """Run once; with power meters declared, bracket the run with them.

        The first meter named in the YAML is the measurement's energy figure; every meter's
        summary is kept under energy["meters"] (e.g. a board rail and an external monitor).
        """
        if not spec.power:
            raw = device.run(run_spec)  # i15: a serial board in energy mode times and meters
            return raw, raw.get("energy")  # i15: each window itself (serial.energy_monitor)
        from . import power

        meters = power.open_meters(spec, device)
        try:
            run_spec["min_duration_s"] = max(float(run_spec.get("min_duration_s", 0)),
                                             power.min_window_s(meters))
            offset = getattr(device, "clock_offset_s", lambda: 0.0)()
            raw, energies = power.measure_with_meters(meters, lambda: device.run(run_spec),
                                                      clock_offset_s=offset)
        finally:
            for meter in meters:
                meter.close()
        if not energies:
            return raw, None
        return raw, {**energies[0], "meters": energies}

    def _provenance(self, spec: DeviceSpec, device, raw: dict, variant: zoo.Variant) -> dict:
        return {
            "time": provenance.now(),
            "device": spec.public(),
            "device_info": device.info(),
            "board": raw.get("host"),
            "runtime": raw.get("runtime"),
            "numpy_version": raw.get("numpy_version"),
            "runner_version": raw.get("runner_version"),
            "timed_loop": raw.get("loop"),
            "controller": provenance.controller(),
            "variant": {"id": variant.id, "technique": variant.technique, "params": variant.params,
                        "sha256": variant.sha256, "info": variant.info, "path": variant.path.name},
        }

    def close(self):
        for device in self._devices.values():
            try:
                device.close()
            except Exception:
                pass  # closing must not hide the run's real result
        self._devices.clear()
        if self._run_id is not None and self._owns_run:
            self.store.finish_run(self._run_id)
        if self.leases is not None:
            self.leases.release_all()  # after finish_run: the next holder starts after this run ended
