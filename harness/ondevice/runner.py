#!/usr/bin/env python3
"""The on-device runner: loads one model, times it, prints one JSON document.

This file is copied to every board and run there, so it must stay ONE file that needs
only the standard library, numpy and the inference runtime, and it must run on
Python 3.8 (older Jetson images). Do not import anything from the harness here.

    python3 runner.py SPEC.json            # result JSON on stdout
    python3 runner.py SPEC.json --out R.json
    python3 runner.py --machine            # the machine-state snapshot alone (devices check)
    python3 runner.py --machine-gpu N      # the same with GPU N's state from NVML

The spec (JSON object):
    model            path of the .onnx, .tflite or .pt2 (torch.export) file (required)
    runtime          "auto" | "onnxruntime" | "litert" | "tflite_runtime" | "torch"   (default auto)
    device           torch: "cpu" | "cuda" | "cuda:N" (default cpu)
    io               GPU inputs/outputs: "device" (bound on the GPU once: the loop times the
                     kernels) | "host" (copied in and out every iteration, as an application
                     that gets its data from the CPU does) (default device)
    sync             GPU: wait for the device at the end of every timed iteration (default
                     true; false only shows what an unsynchronised timer would report)
    gpu_index        NVML index of the GPU whose state is read (default: the CUDA device's)
    trt_engine_cache_dir  onnxruntime TensorRT: engine cache directory (a cold cache is labelled)
    providers        onnxruntime execution providers, in order (default CPU)
    provider_options one dict per provider (optional)
    threads          intra-op threads (default 1); inter_threads (default 1)
    optimization     onnxruntime graph optimization: disable|basic|extended|all (default all)
    cpu_arena        onnxruntime CPU memory arena on/off (default true)
    inputs           [{name, shape, dtype, low, high}] to fix dynamic dimensions or ranges
    warmup           untimed inferences after the first one (default 10)
    min_duration_s, min_iterations, max_iterations (defaults 1.0, 50, 200000)
                     the timed loop runs until BOTH the minimum duration and the
                     minimum count are reached (MLPerf LoadGen's rule), or max_iterations
    dataset          optional .npz with x (n, ...) and y (n,) for top-1 accuracy
    seed             seed for generated inputs (default 0)
    round            the campaign round this run is (recorded, default 0)
    profile          true: a separate profiled pass after everything else (default false)
    profile_runs     inferences in the profiled pass (default 50; the first one more is dropped)

One run is one ROUND of a measurement: the host runs every variant of a device once per
round, in a seeded random order, in a fresh runner process each time (harness/session.py).
Beside the timings the runner records the machine's state at the edges of its timed window
(load, CPU time of other processes, CPU frequencies and governors, temperatures, cgroup CPU
quota and throttling, Raspberry Pi throttle bits, Jetson power mode): the host decides
from them whether the window was disturbed (harness/validity.py).

The timed region of one iteration is exactly one inference call: session.run(feed) for
onnxruntime, interpreter.invoke() for LiteRT (inputs set before, as TFLite's
benchmark_model does), the exported module's call for torch. On a GPU the region ends when
the device has finished (torch.cuda.synchronize, onnxruntime's synchronising run), unless
the spec says sync: false. With a GPU in use the machine snapshots add the GPU's state from
NVML when pynvml is importable (clocks, temperature, power limit, throttle reasons,
persistence mode, the energy counter), and the memory log adds device memory per phase.
"""
from __future__ import print_function

import json
import os
import platform
import socket
import sys
import time

RUNNER_VERSION = "2"
SCHEMA = 2  # the document's version: harness/document.py validates it (docs/measurement.md)

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool",
}


class RunnerFailure(Exception):
    """A failure with a type the host can act on (BadSpec, RuntimeMissing, ModelLoad, Input...)."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind


# ---------------------------------------------------------------- memory


def _proc_status_kb():
    """VmRSS and VmHWM of this process in kB (Linux); ru_maxrss elsewhere."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except (IOError, OSError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":  # bytes on macOS, kB on Linux
            peak //= 1024
        out = {"VmHWM": peak}
    return out.get("VmRSS"), out.get("VmHWM")


class MemoryLog(object):
    """Host memory per phase; with a GPU in use (watch_gpu) also device memory per phase:
    the runtime's own peak counter (torch) and NVML's figure for this process."""

    def __init__(self):
        self.rss_kb, self.hwm_kb = {}, {}
        self.gpu, self.backend, self.gpu_state = {}, None, None

    def watch_gpu(self, backend, gpu_state):
        self.backend, self.gpu_state = backend, gpu_state
        self.mark_gpu("before_init")

    def mark_gpu(self, phase):
        figures = {}
        phase_of = getattr(self.backend, "memory_phase", None)
        if phase_of is not None:
            figures.update(phase_of() or {})
        used = self.gpu_state.process_memory_bytes() if self.gpu_state is not None else None
        if used is not None:
            figures["nvml_process_bytes"] = used
        self.gpu[phase] = figures

    def mark(self, phase):
        rss, hwm = _proc_status_kb()
        self.rss_kb[phase], self.hwm_kb[phase] = rss, hwm
        if self.backend is not None:
            self.mark_gpu(phase)

    def result(self):
        hwm = [v for v in self.hwm_kb.values() if v is not None]
        before = self.rss_kb.get("before_load")
        after = self.hwm_kb.get("after_init")
        out = {
            "rss_kb": self.rss_kb,
            "hwm_kb": self.hwm_kb,
            "peak_rss_kb": max(hwm) if hwm else None,
            "load_growth_kb": (after - before) if (after is not None and before is not None) else None,
        }
        if self.backend is not None:
            out["gpu"] = self.gpu
            for key, name in (("torch_peak_allocated_bytes", "gpu_peak_allocated_bytes"),
                              ("nvml_process_bytes", "gpu_process_peak_bytes")):
                values = [f[key] for f in self.gpu.values() if f.get(key) is not None]
                out[name] = max(values) if values else None
        return out


# ---------------------------------------------------------------- host facts


def _mem_total_kb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except (IOError, OSError):
        return None
    return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except (IOError, OSError):
        pass
    return platform.processor() or platform.machine()


def host_facts():
    return {
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_kb": _mem_total_kb(),
    }


# ---------------------------------------------------------------- machine state


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (IOError, OSError):
        return None


def _int_or_none(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _cpu_jiffies():
    """Aggregate CPU time of the whole machine from /proc/stat, in clock ticks."""
    text = _read("/proc/stat")
    if not text:
        return None
    fields = text.splitlines()[0].split()
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    values += [0] * (8 - len(values))
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait, "steal": steal}


def _cgroup_dirs():
    """This process's cgroup directories for the CPU controller (v2 unified, or v1 cpu)."""
    text = _read("/proc/self/cgroup") or ""
    dirs = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1].split(","), parts[2]
        if parts[0] == "0" and parts[1] == "":
            dirs.append(("v2", "/sys/fs/cgroup" + path))
        elif "cpu" in controllers:
            for mount in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu"):
                if os.path.isdir(mount + path):
                    dirs.append(("v1", mount + path))
                    break
    return dirs


def _cgroup_cpu():
    for version, path in _cgroup_dirs():
        stat = {}
        for line in (_read(os.path.join(path, "cpu.stat")) or "").splitlines():
            key, _, value = line.partition(" ")
            stat[key] = _int_or_none(value)
        if version == "v2":
            limit = (_read(os.path.join(path, "cpu.max")) or "max").split()
            quota = None if limit[0] == "max" or len(limit) < 2 else float(limit[0]) / float(limit[1])
            throttled_s = (stat.get("throttled_usec") or 0) / 1e6
        else:
            q = _int_or_none(_read(os.path.join(path, "cpu.cfs_quota_us")))
            period = _int_or_none(_read(os.path.join(path, "cpu.cfs_period_us")))
            quota = float(q) / period if q is not None and q > 0 and period else None
            throttled_s = (stat.get("throttled_time") or 0) / 1e9
        if quota is not None or stat.get("nr_throttled"):
            return {"version": version, "quota_cores": quota, "nr_throttled": stat.get("nr_throttled") or 0,
                    "throttled_s": throttled_s}
    return None


def _cpufreq():
    base = "/sys/devices/system/cpu"
    out = {}
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("cpu") and n[3:].isdigit())
    except OSError:
        return out
    for name in names:
        d = os.path.join(base, name, "cpufreq")
        cur = _int_or_none(_read(os.path.join(d, "scaling_cur_freq")))
        if cur is None:
            continue
        out[name] = {"cur_khz": cur,
                     "min_khz": _int_or_none(_read(os.path.join(d, "scaling_min_freq"))),
                     "max_khz": _int_or_none(_read(os.path.join(d, "scaling_max_freq"))),
                     "governor": _read(os.path.join(d, "scaling_governor"))}
    return out


def _thermal():
    base = "/sys/class/thermal"
    out = {}
    try:
        zones = sorted(n for n in os.listdir(base) if n.startswith("thermal_zone"))
    except OSError:
        return out
    for zone in zones:
        milli = _int_or_none(_read(os.path.join(base, zone, "temp")))
        if milli is not None:
            out["%s:%s" % (zone, _read(os.path.join(base, zone, "type")) or "?")] = milli / 1000.0
    return out


def _rpi_throttled():
    """`vcgencmd get_throttled` bits (under-voltage, frequency capped, throttled) where present."""
    import subprocess

    for tool in ("/usr/bin/vcgencmd", "/opt/vc/bin/vcgencmd"):
        if os.path.exists(tool):
            try:
                out = subprocess.check_output([tool, "get_throttled"], timeout=5).decode()
            except Exception:
                return None
            return out.strip().partition("=")[2] or None
    return None


# NVML constants (nvml.h), so pynvml's module constants are not needed
_NVML_CLOCK_SM, _NVML_CLOCK_MEM = 1, 2
_NVML_TEMPERATURE_GPU = 0
_NVML_PERF_POLICY = {"power": 0, "thermal": 1}


class GpuState(object):
    """The GPU's state from NVML (pynvml, the nvidia-ml-py package), read where a run uses a
    GPU. Every query is optional: a GPU or driver that does not offer one leaves it out and
    names it under 'unsupported'; no pynvml leaves a note, never a crash."""

    def __init__(self, index):
        self.index, self.nvml, self.handle, self.missing = index, None, None, None
        try:
            import pynvml
        except Exception as exc:  # ImportError, or a broken install
            self.missing = ("pynvml is not importable (%s: %s): GPU clocks, throttling and energy "
                            "were not read; pip install nvidia-ml-py on the board" % (type(exc).__name__, exc))
            return
        try:
            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(int(index))
        except Exception as exc:  # NVMLError: no driver, no such GPU
            self.missing = "NVML cannot open GPU %s: %s" % (index, exc)
            return
        self.nvml = pynvml

    def _call(self, name, unsupported, *args):
        fn = getattr(self.nvml, name, None)
        if fn is None:
            unsupported.append(name)
            return None
        try:
            value = fn(self.handle, *args)
        except Exception:
            unsupported.append(name)
            return None
        return value.decode() if isinstance(value, bytes) else value

    def snapshot(self):
        if self.nvml is None:
            return {"index": self.index, "missing": self.missing}
        miss = []
        call = self._call
        reasons = call("nvmlDeviceGetCurrentClocksEventReasons", [])
        if reasons is None:  # the name before driver 535
            reasons = call("nvmlDeviceGetCurrentClocksThrottleReasons", miss)
        out = {
            "index": self.index,
            "name": call("nvmlDeviceGetName", miss),
            "sm_clock_mhz": call("nvmlDeviceGetClockInfo", miss, _NVML_CLOCK_SM),
            "mem_clock_mhz": call("nvmlDeviceGetClockInfo", miss, _NVML_CLOCK_MEM),
            "temperature_c": call("nvmlDeviceGetTemperature", miss, _NVML_TEMPERATURE_GPU),
            "power_limit_mw": call("nvmlDeviceGetEnforcedPowerLimit", miss),
            "power_mw": call("nvmlDeviceGetPowerUsage", miss),
            "throttle_reasons": reasons,
            "persistence_mode": call("nvmlDeviceGetPersistenceMode", miss),
            "pstate": call("nvmlDeviceGetPerformanceState", miss),
            "energy_mj": call("nvmlDeviceGetTotalEnergyConsumption", miss),
        }
        violation = {}
        for policy, code in sorted(_NVML_PERF_POLICY.items()):
            v = call("nvmlDeviceGetViolationStatus", miss, code)
            if v is not None:
                violation[policy] = int(v.violationTime)
        if violation:
            out["violation_ns"] = violation
        out = dict((k, v) for k, v in out.items() if v is not None)
        if miss:
            out["unsupported"] = sorted(set(miss))
        return out

    def process_memory_bytes(self):
        """GPU memory NVML counts for this process (None where NVML cannot tell: some
        containers hide the PIDs)."""
        if self.nvml is None:
            return None
        pid, found = os.getpid(), None
        for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            for proc in self._call(name, []) or []:
                used = getattr(proc, "usedGpuMemory", None)
                if getattr(proc, "pid", None) == pid and used is not None:
                    found = (found or 0) + int(used)
        return found

    def close(self):
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
            self.nvml = None


def machine_snapshot(gpu=None):
    """What can disturb a timed window, read from /proc and /sys (all optional), and the
    GPU's state from NVML when `gpu` (a GpuState) is given."""
    loadavg = (_read("/proc/loadavg") or "").split()
    self_times = os.times()
    out = {
        "time_unix_s": time.time(),
        "loadavg": [float(v) for v in loadavg[:3]] if len(loadavg) >= 3 else None,
        "cpus_online": _read("/sys/devices/system/cpu/online"),
        "cpu_count": os.cpu_count(),
        "clock_ticks": os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100,
        "cpu_jiffies": _cpu_jiffies(),
        "self_cpu_s": self_times[0] + self_times[1],
        "cpufreq": _cpufreq(),
        "thermal_c": _thermal(),
        "cgroup_cpu": _cgroup_cpu(),
        "rpi_throttled": _rpi_throttled(),
        "jetson_power_mode": _read("/var/lib/nvpmodel/status"),
    }
    if gpu is not None:
        out["gpu"] = gpu.snapshot()
    return out


# ---------------------------------------------------------------- backends


class OnnxruntimeBackend(object):
    name = "onnxruntime"

    def __init__(self, spec):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise RunnerFailure("RuntimeMissing", "onnxruntime is not installed: %s" % exc)
        self.ort, self.spec = ort, spec
        self.version = ort.__version__
        self.providers_available = list(ort.get_available_providers())
        self.io, self.sync = _io_and_sync(spec)
        self.engine_cache = None

    def load(self, path):
        with open(path, "rb") as f:
            return f.read()

    def init(self, blob):
        ort, spec = self.ort, self.spec
        opts = self._session_options()
        providers = self._providers()
        provider_options = spec.get("provider_options")
        cache_dir = spec.get("trt_engine_cache_dir")
        if cache_dir and "TensorrtExecutionProvider" in providers:
            provider_options = self._with_engine_cache(providers, provider_options, cache_dir)
        try:
            if provider_options:
                self.session = ort.InferenceSession(blob, opts, providers=providers,
                                                    provider_options=provider_options)
            else:
                self.session = ort.InferenceSession(blob, opts, providers=providers)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise RunnerFailure("ModelLoad", "onnxruntime cannot load the model: %s" % exc)
        self.providers_used = list(self.session.get_providers())
        self.session_args = (opts, providers, provider_options)  # the profiled pass's session is built alike
        self.gpu_provider = next((p for p in self.providers_used if p in _GPU_PROVIDERS), None)
        if self.gpu_provider:
            options = (provider_options or [{}] * len(providers))[providers.index(self.gpu_provider)] or {}
            self.device_id = int(options.get("device_id", 0))

    def _session_options(self):
        """SessionOptions from the spec: threads, sequential execution, arena, optimization level."""
        ort, spec = self.ort, self.spec
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(spec.get("threads", 1))
        opts.inter_op_num_threads = int(spec.get("inter_threads", 1))
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.enable_cpu_mem_arena = bool(spec.get("cpu_arena", True))
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        level = spec.get("optimization", "all")
        if level not in levels:
            raise RunnerFailure("BadSpec", "optimization: expected one of %s, got %r" % (sorted(levels), level))
        opts.graph_optimization_level = levels[level]
        return opts

    def _providers(self):
        """The spec's execution providers (default CPU), each one this onnxruntime offers."""
        providers = list(self.spec.get("providers") or ["CPUExecutionProvider"])
        missing = [p for p in providers if p not in self.providers_available]
        if missing:
            raise RunnerFailure(
                "ProviderMissing",
                "execution provider(s) %s not available; this onnxruntime %s offers %s"
                % (", ".join(missing), self.version, ", ".join(self.providers_available)))
        return providers

    def _with_engine_cache(self, providers, provider_options, cache_dir):
        """TensorRT's engine cache in the device's directory; a cache without engines is cold
        (this run builds them: its init and first inference include the build)."""
        try:
            before = [n for n in os.listdir(cache_dir) if not n.startswith(".")]
        except OSError:
            before = []
        self.engine_cache = {"dir": cache_dir, "cold": not before, "files_before": len(before)}
        options = [dict(o or {}) for o in (provider_options or [{}] * len(providers))]
        trt = options[providers.index("TensorrtExecutionProvider")]
        trt.setdefault("trt_engine_cache_enable", "True")
        trt.setdefault("trt_engine_cache_path", cache_dir)
        return options

    def gpu_index(self):
        return self.device_id if self.gpu_provider else None

    def signature(self):
        def describe(args):
            return [{"name": a.name, "shape": list(a.shape), "dtype": _ORT_TYPES.get(a.type, a.type)}
                    for a in args]
        return describe(self.session.get_inputs()), describe(self.session.get_outputs())

    def prepare(self, feed):
        """Return a zero-argument callable that performs exactly one inference."""
        if self.gpu_provider and self.io == "device":
            return self._bound(feed)
        run, names = self.session.run, None  # on a GPU: copies in and out every iteration
        return lambda: run(names, feed)

    def _bound(self, feed):
        """IO binding: inputs copied to the GPU once, outputs left there, so the loop times
        the kernels; sync waits for the device at the end of every run."""
        ort, session = self.ort, self.session
        binding = session.io_binding()
        self._inputs_on_device = [ort.OrtValue.ortvalue_from_numpy(feed[i.name], "cuda", self.device_id)
                                  for i in session.get_inputs()]
        for item, value in zip(session.get_inputs(), self._inputs_on_device):
            binding.bind_ortvalue_input(item.name, value)
        for item in session.get_outputs():
            binding.bind_output(item.name, "cuda", self.device_id)
        options = ort.RunOptions()
        run = session.run_with_iobinding
        if not self.sync:
            options.add_run_config_entry("disable_synchronize_execution_providers", "1")
            return lambda: run(binding, options)

        def infer():
            run(binding, options)
            binding.synchronize_outputs()
        return infer

    def set_and_run(self, feed):
        return [self.session.run(None, feed)[0]]

    def facts(self):
        out = {"name": self.name, "version": self.version,
               "providers_available": self.providers_available,
               "providers_used": self.providers_used}
        if self.gpu_provider:
            out.update({"device": "cuda:%d" % self.device_id, "io": self.io, "sync": self.sync})
        if self.engine_cache:
            out["trt_engine_cache"] = self.engine_cache
        return out

    def profile(self, feed, runs):
        return ort_profile(self.ort, self.session_args, self.spec["model"], feed, runs)


class LiteRTBackend(object):
    """LiteRT (ai_edge_litert) or the older tflite_runtime: the same Interpreter API."""

    def __init__(self, spec, flavour):
        self.spec, self.name = spec, flavour
        try:
            if flavour == "litert":
                from ai_edge_litert import interpreter as mod
                import ai_edge_litert as pkg
            else:
                from tflite_runtime import interpreter as mod
                import tflite_runtime as pkg
        except ImportError as exc:
            raise RunnerFailure("RuntimeMissing", "%s is not installed: %s" % (flavour, exc))
        self.mod = mod
        self.version = getattr(pkg, "__version__", None) or _dist_version(
            "ai-edge-litert" if flavour == "litert" else "tflite-runtime")

    def load(self, path):
        with open(path, "rb") as f:
            return f.read()

    def init(self, blob):
        try:
            self.interp = self.mod.Interpreter(model_content=blob, num_threads=int(self.spec.get("threads", 1)))
            self.input_details = self.interp.get_input_details()
            self.output_details = self.interp.get_output_details()
            for detail, override in zip(self.input_details, _input_overrides(self.spec, self.input_details)):
                if override is not None and list(override) != list(detail["shape"]):
                    self.interp.resize_tensor_input(detail["index"], list(override))
            self.interp.allocate_tensors()
            self.input_details = self.interp.get_input_details()
        except RunnerFailure:
            raise
        except Exception as exc:
            raise RunnerFailure("ModelLoad", "%s cannot load the model: %s" % (self.name, exc))

    def signature(self):
        def describe(details):
            out = []
            for d in details:
                shape = [int(s) for s in d.get("shape_signature", d["shape"])]
                shape = [s if s >= 0 else None for s in shape]
                scale, zero = d.get("quantization", (0.0, 0))
                item = {"name": d["name"], "shape": shape, "dtype": _np().dtype(d["dtype"]).name}
                if scale:
                    item["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
                out.append(item)
            return out
        return describe(self.input_details), describe(self.output_details)

    def prepare(self, feed):
        for d in self.input_details:
            self.interp.set_tensor(d["index"], feed[d["name"]])
        return self.interp.invoke

    def set_and_run(self, feed):
        for d in self.input_details:
            self.interp.set_tensor(d["index"], feed[d["name"]])
        self.interp.invoke()
        return [self.interp.get_tensor(self.output_details[0]["index"])]

    def facts(self):
        return {"name": self.name, "version": self.version}

    def profile_offer(self):
        return litert_profile_offer(self.name, self.version, self.interp)


_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def _io_and_sync(spec):
    io = spec.get("io", "device")
    if io not in ("device", "host"):
        raise RunnerFailure("BadSpec", "io: expected device or host, got %r" % (io,))
    sync = spec.get("sync", True)
    if not isinstance(sync, bool):
        raise RunnerFailure("BadSpec", "sync: expected true or false, got %r" % (sync,))
    return io, sync


class TorchBackend(object):
    """A torch.export program (.pt2, torch.export.save) on the CPU or a CUDA device."""

    name = "torch"

    def __init__(self, spec):
        try:
            import torch
        except ImportError as exc:
            raise RunnerFailure("RuntimeMissing", "torch is not installed: %s" % exc)
        self.torch, self.spec = torch, spec
        self.version = torch.__version__
        self.io, self.sync = _io_and_sync(spec)
        device = spec.get("device", "cpu")
        if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or (
                device.startswith("cuda:") and device[5:].isdigit())):
            raise RunnerFailure("BadSpec", "device: expected cpu, cuda or cuda:N, got %r" % (device,))
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise RunnerFailure("ProviderMissing", "device %s: this torch %s has no CUDA device (CUDA build: %s)"
                                    % (device, self.version, torch.version.cuda))
            device = "cuda:%d" % (int(device[5:]) if ":" in device else torch.cuda.current_device())
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        threads = int(spec.get("threads", 1))
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(int(spec.get("inter_threads", 1)))
        except RuntimeError:  # only settable before the first parallel work
            pass

    def gpu_index(self):
        return self.device.index if self.cuda else None

    def load(self, path):
        return path  # torch.export.load reads the archive itself

    def init(self, path):
        torch = self.torch
        try:
            program = torch.export.load(path)
            if self.cuda:
                try:
                    from torch.export.passes import move_to_device_pass
                    program = move_to_device_pass(program, self.device)
                    self.module = program.module()
                except ImportError:  # torch < 2.5
                    self.module = program.module().to(self.device)
            else:
                self.module = program.module()
        except Exception as exc:
            raise RunnerFailure("ModelLoad", "torch cannot load the exported program: %s" % exc)
        self.program = program
        # no autograd for this module, so the timed call is the module's call alone (no
        # inference_mode context entered each iteration) and no process-wide grad switch
        # reaches other code that imports the runner (variant_build's host accuracy)
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def signature(self):
        torch = self.torch
        sig = self.program.graph_signature
        meta = dict((n.name, n.meta.get("val")) for n in self.program.graph.nodes if n.op == "placeholder")

        def describe(names, values):
            out = []
            for name, val in zip(names, values):
                shape = [int(d) if isinstance(d, int) else None for d in getattr(val, "shape", [])]
                dtype = str(getattr(val, "dtype", "")).replace("torch.", "") or None
                out.append({"name": name, "shape": shape, "dtype": dtype})
            return out

        outputs = []
        for node in self.program.graph.nodes:
            if node.op == "output":
                outputs = [a.meta.get("val") if isinstance(a, torch.fx.Node) else None for a in node.args[0]]
        self.input_names = list(sig.user_inputs)
        return (describe(self.input_names, [meta.get(n) for n in self.input_names]),
                describe(list(sig.user_outputs), outputs))

    def _args(self, feed):
        return [self.torch.from_numpy(feed[name]) for name in self.input_names]

    def prepare(self, feed):
        """One inference: the call, the copies when io is host, the wait for the GPU when sync."""
        torch, module, device = self.torch, self.module, self.device
        if self.io == "host" and self.cuda:
            arrays = [feed[name] for name in self.input_names]

            def infer():
                out = module(*[torch.from_numpy(a).to(device) for a in arrays])
                for o in _flat(out):
                    o.cpu()  # the copy back waits for the GPU whatever sync says
                if self.sync:
                    torch.cuda.synchronize(device)
            return infer
        args = [a.to(device) for a in self._args(feed)]
        if self.cuda and self.sync:
            synchronize = torch.cuda.synchronize

            def infer():
                module(*args)
                synchronize(device)
            return infer
        return lambda: module(*args)

    def set_and_run(self, feed):
        out = self.module(*[a.to(self.device) for a in self._args(feed)])
        return [_flat(out)[0].cpu().numpy()]

    def memory_phase(self):
        """Peak device memory torch allocated since the last phase (reset here), and now.
        Nothing before CUDA is initialised: touching it here would move the context's
        creation out of the init phase."""
        cuda = self.torch.cuda
        if not self.cuda or not cuda.is_initialized():
            return None
        cuda.synchronize(self.device)
        out = {"torch_peak_allocated_bytes": int(cuda.max_memory_allocated(self.device)),
               "torch_reserved_bytes": int(cuda.memory_reserved(self.device))}
        cuda.reset_peak_memory_stats(self.device)
        return out

    def facts(self):
        out = {"name": self.name, "version": self.version, "device": str(self.device),
               "io": self.io if self.cuda else "host", "sync": self.sync if self.cuda else None,
               "cuda": self.torch.version.cuda}
        if self.cuda:
            out["device_name"] = self.torch.cuda.get_device_name(self.device)
        return out


def _flat(out):
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flat(o)]
    return [out]


def _dist_version(name):
    try:
        from importlib.metadata import version  # Python 3.8+
        return version(name)
    except Exception:
        return None


def _np():
    import numpy
    return numpy


def _input_overrides(spec, details):
    by_name = dict((i.get("name"), i.get("shape")) for i in spec.get("inputs") or [])
    return [by_name.get(d["name"]) for d in details]


def make_backend(spec):
    runtime = spec.get("runtime", "auto")
    model = spec["model"]
    if runtime == "auto":
        runtime = ("onnxruntime" if model.lower().endswith(".onnx") else
                   "torch" if model.lower().endswith(".pt2") else "litert")
        if runtime == "litert":
            try:
                return LiteRTBackend(spec, "litert")
            except RunnerFailure:
                runtime = "tflite_runtime"  # an older board image
    if runtime == "onnxruntime":
        return OnnxruntimeBackend(spec)
    if runtime in ("litert", "tflite_runtime"):
        return LiteRTBackend(spec, runtime)
    if runtime == "torch":
        return TorchBackend(spec)
    raise RunnerFailure("BadSpec", "runtime: expected auto, onnxruntime, litert, tflite_runtime or torch, got %r"
                        % runtime)


# ---------------------------------------------------------------- inputs


def _fixed_shape(item, overrides):
    shape = overrides.get(item["name"], item["shape"])
    fixed = []
    for dim in shape:
        if isinstance(dim, int) and dim >= 0:
            fixed.append(dim)
        else:
            raise RunnerFailure(
                "Input", "input %r has a dynamic dimension %r in shape %s; fix it with "
                "inputs: [{name: %s, shape: [...]}] in the model manifest" % (item["name"], dim, shape, item["name"]))
    return fixed


def generate_inputs(inputs, spec):
    """Inputs from the model's declared signature (no dataset given)."""
    np = _np()
    rng = np.random.RandomState(int(spec.get("seed", 0)))
    by_name = dict((i.get("name"), i) for i in spec.get("inputs") or [])
    overrides = dict((k, v["shape"]) for k, v in by_name.items() if v.get("shape") is not None)
    feed = {}
    for item in inputs:
        shape = _fixed_shape(item, overrides)
        dtype = (by_name.get(item["name"]) or {}).get("dtype") or item["dtype"]
        limits = by_name.get(item["name"]) or {}
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            raise RunnerFailure("Input", "input %r has dtype %r, which the runner cannot generate" % (item["name"], dtype))
        if np_dtype == np.bool_:
            feed[item["name"]] = rng.random_sample(shape) < 0.5
        elif np_dtype.kind in "iu":
            info = np.iinfo(np_dtype)
            low = max(int(limits.get("low", 0)), info.min)
            high = min(int(limits.get("high", 10)), info.max)
            feed[item["name"]] = rng.randint(low, high + 1, size=shape).astype(np_dtype)
        elif np_dtype.kind == "f":
            low, high = float(limits.get("low", 0.0)), float(limits.get("high", 1.0))
            feed[item["name"]] = (low + (high - low) * rng.random_sample(shape)).astype(np_dtype)
        else:
            raise RunnerFailure("Input", "input %r has dtype %s, which the runner cannot generate" % (item["name"], dtype))
    return feed


def dataset_feeds(inputs, x):
    """Per-sample feeds for a single-input model: reshape and, for int8/uint8 inputs, quantize."""
    np = _np()
    if len(inputs) != 1:
        raise RunnerFailure("Input", "a labelled dataset needs a single-input model; this one has %d inputs (%s)"
                            % (len(inputs), ", ".join(i["name"] for i in inputs)))
    item = inputs[0]
    shape = [d if isinstance(d, int) and d >= 0 else 1 for d in item["shape"]]
    size = int(np.prod(shape))
    sample_size = int(np.prod(x.shape[1:]))
    if size != sample_size:
        raise RunnerFailure("Input", "dataset samples have %d values but input %r wants shape %s (%d values)"
                            % (sample_size, item["name"], shape, size))
    dtype = np.dtype(item["dtype"])
    samples = x.reshape((x.shape[0],) + tuple(shape))
    if dtype.kind in "iu" and item.get("quantization"):
        q = item["quantization"]
        info = np.iinfo(dtype)
        samples = np.clip(np.round(samples / q["scale"]) + q["zero_point"], info.min, info.max)
    return [{item["name"]: s.astype(dtype)} for s in samples]


# ---------------------------------------------------------------- the measurement


def timed_loop(infer, min_duration_s, min_iterations, max_iterations):
    """Time single inferences until both the minimum duration and count are met."""
    clock = time.perf_counter_ns
    latencies = []
    append = latencies.append
    min_duration_ns = int(min_duration_s * 1e9)
    start = clock()
    t1 = start
    n = 0
    while n < max_iterations:
        t0 = clock()
        infer()
        t1 = clock()
        append(t1 - t0)
        n += 1
        if n >= min_iterations and t1 - start >= min_duration_ns:
            break
    reason = "max_iterations" if n >= max_iterations and not (
        n >= min_iterations and t1 - start >= min_duration_ns) else "min_duration_and_count"
    return latencies, {"iterations": n, "wall_ns": t1 - start, "stop_reason": reason}


def _int(spec, key, default, low=0):
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RunnerFailure("BadSpec", "%s: expected an integer >= %d, got %r" % (key, low, value))
    return value


def _cuda_index(spec, backend):
    """The CUDA device a run uses: torch's device, or the GPU provider's device_id. NVML
    numbers GPUs by PCI bus, CUDA fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID
    (docs/gpu.md); gpu_index in the spec says it outright."""
    if getattr(backend, "cuda", False):
        return backend.device.index or 0
    providers = list(spec.get("providers") or [])
    options = spec.get("provider_options") or [{}] * len(providers)
    for provider, option in zip(providers, options):
        if provider in _GPU_PROVIDERS:
            return int((option or {}).get("device_id", 0))
    return 0


def measure(spec):
    """One round of one model, as one result document. The order of the steps is part of the
    measurement: every timing and memory mark sees only the steps before it."""
    _np()  # numpy imported before the first mark, so no phase below pays for its import
    memory = MemoryLog()
    memory.mark("start")
    plan = plan_run(spec)
    backend, import_ns = start_runtime(spec)
    memory.mark("before_load")
    blob, load_ns = read_model(spec, backend)
    gpu, gpu_index = start_gpu_watch(spec, backend, memory)
    init_ns = init_model(backend, blob)
    del blob  # the file's bytes are not the loaded model's memory
    memory.mark("after_init")

    inputs, outputs = backend.signature()
    feed = generate_inputs(inputs, spec)
    infer = backend.prepare(feed)
    first_ns = first_inference(infer)
    memory.mark("after_first")
    warmup_ns = warm_up(infer, plan["warmup"])
    memory.mark("after_warmup")
    timed = timed_window(infer, plan, gpu)
    memory.mark("after_timed")

    accuracy = None
    if spec.get("dataset"):
        accuracy = evaluate(backend, inputs, spec["dataset"])
        memory.mark("after_dataset")
    if gpu is not None:
        gpu.close()
    # Last, after every memory mark: the profiled session's memory and time touch no figure above.
    profile = profiled_pass(backend, feed, spec, timed["latencies_ns"]) if spec.get("profile") else None

    timings_ns = {"import": import_ns, "load": load_ns, "init": init_ns, "first_inference": first_ns,
                  "warmup_total": warmup_ns}
    return result_document(spec, backend, plan, gpu_index, (inputs, outputs), timings_ns, timed, memory,
                           accuracy, profile)


def plan_run(spec):
    """The spec's model and loop settings, checked before any runtime is imported. The
    defaults are the inventory's (harness/inventory.py SETTINGS_DEFAULTS): a spec written by
    hand gets what a device YAML without settings gets."""
    if not isinstance(spec.get("model"), str):
        raise RunnerFailure("BadSpec", "model: expected the path of a .onnx, .tflite or .pt2 file")
    if not os.path.isfile(spec["model"]):
        raise RunnerFailure("ModelLoad", "model file not found: %s" % spec["model"])
    plan = {
        "warmup": _int(spec, "warmup", 10),
        "min_iterations": _int(spec, "min_iterations", 50, low=1),
        "max_iterations": _int(spec, "max_iterations", 200000, low=1),
        "min_duration_s": float(spec.get("min_duration_s", 1.0)),
    }
    if plan["max_iterations"] < plan["min_iterations"]:
        raise RunnerFailure("BadSpec", "max_iterations (%d) is below min_iterations (%d)"
                            % (plan["max_iterations"], plan["min_iterations"]))
    return plan


def start_runtime(spec):
    """The backend, and the time its runtime's import took (ns)."""
    clock = time.perf_counter_ns
    t = clock()
    backend = make_backend(spec)
    return backend, clock() - t


def read_model(spec, backend):
    """The model file as the backend loads it, and the time that took (ns)."""
    clock = time.perf_counter_ns
    t = clock()
    try:
        blob = backend.load(spec["model"])
    except (IOError, OSError) as exc:
        raise RunnerFailure("ModelLoad", "cannot read %s: %s" % (spec["model"], exc))
    return blob, clock() - t


def _uses_gpu(spec, backend):
    if isinstance(backend, TorchBackend):
        return backend.cuda
    return isinstance(backend, OnnxruntimeBackend) and any(
        p in _GPU_PROVIDERS for p in (spec.get("providers") or []))


def start_gpu_watch(spec, backend, memory):
    """(GpuState, the spec's or the CUDA device's index) for a run on a GPU, (None, None)
    otherwise. Called before init, so the device memory init takes is a phase of its own."""
    if not _uses_gpu(spec, backend):
        return None, None
    gpu_index = spec.get("gpu_index")
    if gpu_index is None:
        gpu_index = _cuda_index(spec, backend)
    gpu = GpuState(int(gpu_index))
    memory.watch_gpu(backend, gpu)
    return gpu, gpu_index


def init_model(backend, blob):
    """The runtime's session or interpreter built from the loaded file; the time it took (ns)."""
    clock = time.perf_counter_ns
    t = clock()
    backend.init(blob)
    return clock() - t


def first_inference(infer):
    """The first inference alone (lazy allocations, first touches), timed (ns). It is the
    first use of the generated inputs, so its failure is an Input failure."""
    clock = time.perf_counter_ns
    t = clock()
    try:
        infer()
    except Exception as exc:
        raise RunnerFailure("Input", "the first inference failed: %s" % exc)
    return clock() - t


def warm_up(infer, count):
    """`count` untimed inferences before the timed loop; their total time (ns)."""
    clock = time.perf_counter_ns
    t = clock()
    for _ in range(count):
        infer()
    return clock() - t


def timed_window(infer, plan, gpu):
    """The timed loop between two machine snapshots, as the document's latencies_ns, loop,
    window and machine entries. The window's edges are wall-clock times, so a meter on
    another clock (a host-side power monitor) can align its samples to it."""
    min_duration_s, min_iterations = plan["min_duration_s"], plan["min_iterations"]
    max_iterations = plan["max_iterations"]
    machine_before = machine_snapshot(gpu)
    window_start = time.time()
    latencies, loop = timed_loop(infer, min_duration_s, min_iterations, max_iterations)
    window_end = time.time()
    machine_after = machine_snapshot(gpu)
    return {"latencies_ns": latencies, "loop": loop,
            "window": {"start_unix_s": window_start, "end_unix_s": window_end},
            "machine": {"before": machine_before, "after": machine_after}}


def run_settings(spec, plan, backend, gpu_index):
    """The settings the run used, defaults filled in; with a GPU (gpu_index not None) also
    the device, its io and sync modes and, where given, TensorRT's engine cache."""
    settings = {
        "threads": int(spec.get("threads", 1)), "inter_threads": int(spec.get("inter_threads", 1)),
        "warmup": plan["warmup"], "min_duration_s": plan["min_duration_s"],
        "min_iterations": plan["min_iterations"], "max_iterations": plan["max_iterations"],
        "optimization": spec.get("optimization", "all"), "cpu_arena": bool(spec.get("cpu_arena", True)),
        "seed": int(spec.get("seed", 0)), "round": int(spec.get("round", 0)),
    }
    if gpu_index is not None:
        settings.update({"device": str(getattr(backend, "device", "cuda:%s" % gpu_index)),
                         "io": backend.io, "sync": backend.sync, "gpu_index": int(gpu_index)})
        if spec.get("trt_engine_cache_dir"):
            settings["trt_engine_cache_dir"] = spec["trt_engine_cache_dir"]
    return settings


def result_document(spec, backend, plan, gpu_index, signature, timings_ns, timed, memory, accuracy, profile):
    """The run's result document (harness/document.py validates it): the steps' figures
    and the facts of the host, runtime, settings and model they were measured with."""
    inputs, outputs = signature
    doc = {
        "ok": True,
        "schema": SCHEMA,
        "runner_version": RUNNER_VERSION,
        "host": host_facts(),
        "runtime": backend.facts(),
        "numpy_version": _np().__version__,
        "settings": run_settings(spec, plan, backend, gpu_index),
        "model": {"path": spec["model"], "bytes": os.path.getsize(spec["model"]),
                  "inputs": inputs, "outputs": outputs},
        "timings_ms": dict((name, ns / 1e6) for name, ns in timings_ns.items()),
        "latencies_ns": timed["latencies_ns"],
        "loop": timed["loop"],
        "window": timed["window"],
        "machine": timed["machine"],
        "memory": memory.result(),
        "accuracy": accuracy,
    }
    if profile is not None:
        doc["profile"] = profile
    return doc


def evaluate(backend, inputs, dataset_path):
    np = _np()
    try:
        data = np.load(dataset_path)
        x, y = data["x"], data["y"]
    except Exception as exc:
        raise RunnerFailure("Dataset", "cannot read dataset %s (expected an .npz with x and y): %s" % (dataset_path, exc))
    feeds = dataset_feeds(inputs, x)
    correct = 0
    for feed, label in zip(feeds, y):
        out = backend.set_and_run(feed)[0]
        correct += int(int(np.argmax(out.reshape(-1))) == int(label))
    return {"top1": correct / float(len(feeds)), "correct": correct, "n": len(feeds)}


# ---------------------------------------------------------------- per-operator profile
# harness/profile.py defines and validates the profile document; this pass produces it.

PROFILE_RUNS = 50
PROFILE_DROPPED_RUNS = 1      # the profiled session's first inference (allocations, first touches)
DISTURBED_RUN_FACTOR = 2.0    # a profiled inference over twice the median was preempted: left out


def profiled_pass(backend, feed, spec, timed_latencies_ns):
    """The per-operator profile of a separate pass after the timed rounds, or
    {"offered": false, "reason": ...} when the runtime cannot time its operators."""
    runs = _int(spec, "profile_runs", PROFILE_RUNS, low=1)
    if hasattr(backend, "profile_offer"):
        return {"offered": False, "reason": backend.profile_offer()}
    profiler = getattr(backend, "profile", None)
    if profiler is None:
        return {"offered": False, "reason": "the runner has no per-operator profiler for %s" % backend.name}
    try:
        profile, wall_ns = profiler(feed, runs)
    except RunnerFailure as exc:
        return {"offered": False, "reason": str(exc)}
    # the profiler's own cost: the median profiled inference (wall clock, as the timed loop
    # takes it) against the timed loop's median (medians: one preempted call moves neither)
    timed, profiled = _median(timed_latencies_ns), _median(wall_ns)
    profile["overhead"] = (profiled / timed - 1.0) if timed and profiled else None
    return profile


def _median(values):
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def _shape_text(args):
    """onnxruntime's input/output type-shapes as `float[1,16,8,8] float[16] -> float[1,16,8,8]`."""
    def side(items):
        out = []
        for item in items or []:
            for dtype, dims in item.items():
                out.append("%s[%s]" % (dtype, ",".join(str(d) for d in dims)))
        return " ".join(out)
    if "input_type_shape" not in args and "output_type_shape" not in args:
        return None
    return "%s -> %s" % (side(args.get("input_type_shape")), side(args.get("output_type_shape")))


def ort_trace_profile(events, dropped_runs=PROFILE_DROPPED_RUNS):
    """Per-node mean times from onnxruntime's chrome-trace events (one `model_run` span per
    inference, `<node>_kernel_time` spans inside it). Runs disturbed beyond
    DISTURBED_RUN_FACTOR x the median are left out of every figure alike, so the operators'
    times stay nested inside the total they are compared with."""
    spans = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                   key=lambda e: e["ts"])[dropped_runs:]
    if not spans:
        raise RunnerFailure("Profile", "onnxruntime's profile holds no model_run span")
    durations = sorted(e["dur"] for e in spans)
    limit = DISTURBED_RUN_FACTOR * durations[(len(durations) - 1) // 2]
    kept = [e for e in spans if e["dur"] <= limit]
    starts = [e["ts"] for e in kept]
    ends = [e["ts"] + e["dur"] for e in kept]
    import bisect

    ops, order = {}, []
    for e in events:
        name = e.get("name") or ""
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        i = bisect.bisect_right(starts, e["ts"]) - 1
        if i < 0 or e["ts"] + e["dur"] > ends[i]:
            continue          # a dropped or disturbed run's node
        node = name[:-len("_kernel_time")]
        args = e.get("args") or {}
        if node not in ops:
            order.append(node)
            ops[node] = {"name": node, "op_type": args.get("op_name") or "?", "time_us": 0.0,
                         "provider": args.get("provider"), "shapes": _shape_text(args)}
        ops[node]["time_us"] += e["dur"]
    n = float(len(kept))
    for op in ops.values():
        op["time_us"] /= n
    total = sum(e["dur"] for e in kept) / n
    out = [ops[k] for k in order]
    return {"source": "onnxruntime-profiler", "unit": "us", "runs": len(kept),
            "dropped_runs": len(spans) - len(kept) + dropped_runs, "total_us": total, "ops": out,
            "coverage": (sum(o["time_us"] for o in out) / total) if total else 0.0}


def ort_profile(ort, session_args, model_path, feed, runs):
    """onnxruntime's own profiler (SessionOptions.enable_profiling) on a second session built
    like the timed one; its trace file is read and removed. Returns (profile, wall ns per run)."""
    import shutil
    import tempfile

    opts, providers, provider_options = session_args
    opts.enable_profiling = True
    tmp = tempfile.mkdtemp(prefix="runner-profile-")
    try:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        with open(model_path, "rb") as f:
            blob = f.read()
        kwargs = {"provider_options": provider_options} if provider_options else {}
        session = ort.InferenceSession(blob, opts, providers=providers, **kwargs)
        wall = []
        clock = time.perf_counter_ns
        for i in range(runs + PROFILE_DROPPED_RUNS):
            t0 = clock()
            session.run(None, feed)
            if i >= PROFILE_DROPPED_RUNS:
                wall.append(clock() - t0)
        path = session.end_profiling()
        with open(path) as f:
            events = json.load(f)
    finally:
        opts.enable_profiling = False
        shutil.rmtree(tmp, ignore_errors=True)
    return ort_trace_profile(events), wall


def litert_profile_offer(name, version, interp):
    """Why LiteRT's Python interpreter gives no per-operator times (checked, not assumed: a
    release whose Interpreter grows a profiler method makes this name it instead)."""
    hooks = [n for n in dir(interp) if "profil" in n.lower()]
    if hooks:
        return "%s %s exposes %s, which this runner does not read yet" % (name, version, ", ".join(hooks))
    return ("%s %s: its Python Interpreter exposes no per-operator timing (no profiler hook; TFLite's "
            "per-op profiles come from the C++ benchmark_model tool)" % (name, version))

def read_spec(path):
    """The run spec: a JSON object, or a BadSpec failure."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except (IOError, OSError, ValueError) as exc:
        raise RunnerFailure("BadSpec", "cannot read the run spec %s: %s" % (path, exc))
    if not isinstance(spec, dict):
        raise RunnerFailure("BadSpec", "the run spec must be a JSON object")
    return spec


def run_spec_file(path):
    """(result document, exit code): every failure is still one JSON answer, with exit code 2."""
    try:
        return measure(read_spec(path)), 0
    except RunnerFailure as exc:
        return {"ok": False, "schema": SCHEMA, "error": {"type": exc.kind, "message": str(exc)}}, 2
    except Exception as exc:  # a runtime failing mid-loop, a bad value
        import traceback

        traceback.print_exc()  # the host shows the board's stderr with the error
        return {"ok": False, "schema": SCHEMA,
                "error": {"type": "Internal", "message": "%s: %s" % (type(exc).__name__, exc)}}, 2


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--machine"]:
        sys.stdout.write(json.dumps(machine_snapshot()) + "\n")
        return 0
    if len(argv) == 2 and argv[0] == "--machine-gpu" and argv[1].isdigit():
        gpu = GpuState(int(argv[1]))
        sys.stdout.write(json.dumps(machine_snapshot(gpu)) + "\n")
        gpu.close()
        return 0
    out_path = None
    if "--out" in argv:
        i = argv.index("--out")
        out_path = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) != 1:
        sys.stderr.write("usage: runner.py SPEC.json [--out RESULT.json]\n")
        return 64
    result, code = run_spec_file(argv[0])
    text = json.dumps(result)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
