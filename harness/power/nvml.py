"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, module ``pynvml``).

    - meter: nvml
      index: 0               # GPU index
      mode: auto             # auto | counter | power
      interval_ms: 100

``counter`` reads ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta
and newer) and differences it at the window's edges (polled, interpolated at the edges);
the counter is an unsigned 64-bit value, unwrapped poll to poll like RAPL's.
``power`` samples ``nvmlDeviceGetPowerUsage`` (mW), which on Ampere and newer is itself a
1 s running average: it smears short windows, so the counter is preferred and ``auto``
falls back to sampling only where the counter is not supported. GPU memory in use
(``nvmlDeviceGetMemoryInfo``) is sampled alongside; its peak goes into the trace.
NVML talks to the local driver: this meter runs where the GPU is (a local device).
"""
from __future__ import annotations

import importlib

from . import meter
from .base import MeterError, Option, PollingMeter
from .energy import counter_delta

AMPERE = 7  # NVML_DEVICE_ARCH_AMPERE
ENERGY_WRAP_MJ = 2 ** 64  # nvmlDeviceGetTotalEnergyConsumption returns an unsigned long long


def load_nvml():
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise MeterError("nvml: the 'nvidia-ml-py' package is not installed "
                         "(pip install nvidia-ml-py); it provides the pynvml module") from None


@meter("nvml")
class NvmlMeter(PollingMeter):
    local_only = True
    OPTIONS = {
        "index": Option(int, 0, minimum=0),
        "mode": Option(str, "auto", choices=("auto", "counter", "power")),
        "interval_ms": Option(int, 100, minimum=1, maximum=10000),
    }
    nvml = None  # the module; tests inject a fake here

    def _open(self):
        if getattr(self, "_handle", None) is not None:
            return
        nv = self.nvml = self.nvml or load_nvml()
        try:
            nv.nvmlInit()
            self._handle = nv.nvmlDeviceGetHandleByIndex(self.options["index"])
        except Exception as exc:  # NVMLError subclasses: no driver, no such GPU
            raise MeterError(f"{self.label}: NVML cannot open GPU {self.options['index']}: {exc}") from None
        self.facts = {"gpu_index": self.options["index"]}
        for key, call in (("gpu_name", "nvmlDeviceGetName"), ("driver_version", "nvmlSystemGetDriverVersion")):
            try:
                value = getattr(nv, call)(self._handle) if call.startswith("nvmlDevice") else getattr(nv, call)()
                self.facts[key] = value.decode() if isinstance(value, bytes) else value
            except Exception:
                pass
        try:
            self.arch = nv.nvmlDeviceGetArchitecture(self._handle)
        except Exception:
            self.arch = None

    def probe(self):
        self._open()
        nv, h = self.nvml, self._handle
        mode = self.options["mode"]
        self._mem_peak = 0
        if mode in ("auto", "counter"):
            try:
                self._last_mj = nv.nvmlDeviceGetTotalEnergyConsumption(h)
                self._total_mj = 0
                self.wraps = 0
                self.method = "counter"
            except Exception as exc:
                if mode == "counter":
                    raise MeterError(f"{self.label}: the energy counter is not supported here: {exc}") from None
                self.method = "trapezoid"
                self.fallback_reason = f"energy counter unavailable ({exc}); sampling power"
        else:
            self.method = "trapezoid"
        if self.method == "trapezoid":
            nv.nvmlDeviceGetPowerUsage(h)
        self._memory()

    def _memory(self):
        try:
            info = self.nvml.nvmlDeviceGetMemoryInfo(self._handle)
        except Exception:
            return
        self._mem_peak = max(self._mem_peak, int(info.used))
        self._mem_total = int(info.total)

    def read(self):
        nv, h = self.nvml, self._handle
        self._memory()
        if self.method == "counter":
            raw = nv.nvmlDeviceGetTotalEnergyConsumption(h)
            if raw < self._last_mj:
                self.wraps += 1
            self._total_mj += counter_delta(self._last_mj, raw, ENERGY_WRAP_MJ)
            self._last_mj = raw
            return self._total_mj / 1000.0, None
        return nv.nvmlDeviceGetPowerUsage(h) / 1000.0, None

    def new_trace(self):
        trace = super().new_trace()
        if self.method == "counter":
            trace.resolution_j = 1e-3
        else:
            trace.nominal_rate_hz = 1.0 / self.interval_s
            if self.arch is None or self.arch >= AMPERE:
                trace.averaging_s = 1.0
                trace.notes.append("nvmlDeviceGetPowerUsage is a 1 s average on Ampere and newer")
            if getattr(self, "fallback_reason", None):
                trace.notes.append(self.fallback_reason)
        return trace

    def finish(self, trace):
        trace.extra.update(self.facts)
        trace.extra["gpu_memory_used_peak_bytes"] = self._mem_peak
        if self.method == "counter":
            trace.extra["counter_wraps"] = self.wraps
        if getattr(self, "_mem_total", None):
            trace.extra["gpu_memory_total_bytes"] = self._mem_total

    def close(self):
        super().close()
        if getattr(self, "_handle", None) is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
            self._handle = None
