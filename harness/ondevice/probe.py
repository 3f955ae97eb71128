#!/usr/bin/env python3
"""The on-board probe: what a board is and what it can run, as one JSON document.

Copied to the board and run with the board's configured Python, like runner.py, so the
same rules hold: ONE file, standard library only (numpy and the runtimes are imported
only to report them), Python 3.8.

    python3 probe.py [WORKDIR]

Board facts are read when present: /proc/device-tree/model (Raspberry Pi, Jetson and
most ARM boards), /etc/nv_tegra_release (Jetson L4T), `nvpmodel -q` (Jetson power mode),
/etc/os-release. A missing fact is left out, never guessed.
"""
from __future__ import print_function

import json
import os
import platform
import re
import subprocess
import sys


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except (IOError, OSError):
        return None


def os_release(text):
    fields = {}
    for line in (text or "").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip().strip('"')
    return fields.get("PRETTY_NAME") or fields.get("NAME")


def tegra_release(text):
    """'# R35 (release), REVISION: 4.1, GCID: ...' -> {'l4t': '35.4.1', ...}"""
    if not text:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return {"raw": text.splitlines()[0]}
    out = {"l4t": "%s.%s" % (m.group(1), m.group(2))}
    for key, name in (("BOARD", "board"), ("GCID", "gcid")):
        m2 = re.search(key + r":\s*([^,\s]+)", text)
        if m2:
            out[name] = m2.group(1)
    return out


def nvpmodel_mode(text):
    """'NV Power Mode: 15W\\n0' -> {'name': '15W', 'id': 0}"""
    if not text:
        return None
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not m:
        return None
    mode = {"name": m.group(1)}
    ids = [line.strip() for line in text.splitlines() if line.strip().isdigit()]
    if ids:
        mode["id"] = int(ids[0])
    return mode


def _command(argv):
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = proc.communicate(timeout=10)
        return out.decode("utf-8", "replace") if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _mem_total_kb():
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return None


def _cpu():
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _runtime_isolated(name, timeout_s=120):
    """_runtime(name) in a child interpreter: a runtime that crashes on import (SIGSEGV under
    an emulator that shows it the wrong CPU) takes only its child down, and is named with
    the signal, while the board keeps its other runtimes."""
    try:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--runtime", name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return {"missing": "cannot start %s to import %s: %s" % (sys.executable, name, exc)}
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"missing": "importing %s did not finish within %d s" % (name, timeout_s)}
    if proc.returncode < 0:
        import signal

        try:
            signame = signal.Signals(-proc.returncode).name
        except ValueError:
            signame = "signal %d" % -proc.returncode
        return {"missing": "importing %s crashed the interpreter (%s)" % (name, signame), "crashed": signame}
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"missing": "importing %s printed no answer (exit %d): %s"
                % (name, proc.returncode, err.decode(errors="replace").strip()[-300:])}


def _runtimes(names):
    """Each runtime imported in its own child, the children side by side: the probe takes
    as long as the slowest import (torch: seconds), not their sum."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(names)) as pool:
        return dict(zip(names, pool.map(_runtime_isolated, names)))


def _runtime(name):
    """{'version': ...} or {'missing': why}."""
    try:
        if name == "onnxruntime":
            import onnxruntime as ort
            return {"version": ort.__version__, "providers": list(ort.get_available_providers())}
        if name == "litert":
            import ai_edge_litert  # noqa: F401
            from ai_edge_litert import interpreter  # noqa: F401
            return {"version": getattr(ai_edge_litert, "__version__", None) or _dist("ai-edge-litert")}
        if name == "torch":
            import torch
            out = {"version": torch.__version__, "cuda_build": torch.version.cuda,
                   "cuda_available": bool(torch.cuda.is_available())}
            if out["cuda_available"]:
                out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            return out
        if name == "tflite_runtime":
            import tflite_runtime
            from tflite_runtime import interpreter  # noqa: F401
            return {"version": getattr(tflite_runtime, "__version__", None) or _dist("tflite-runtime")}
    except Exception as exc:  # ImportError, or a binary built against another numpy
        return {"missing": "%s: %s" % (type(exc).__name__, exc)}
    return {"missing": "unknown runtime"}


def _dist(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def _disk(path):
    try:
        st = os.statvfs(path)
        return {"path": path, "free_bytes": st.f_bavail * st.f_frsize, "total_bytes": st.f_blocks * st.f_frsize}
    except OSError:
        return None


def probe(workdir=None):
    try:
        import numpy
        numpy_version = numpy.__version__
    except Exception as exc:
        numpy_version = None
        numpy_missing = "%s: %s" % (type(exc).__name__, exc)
    else:
        numpy_missing = None
    facts = {
        "os": os_release(_read("/etc/os-release")),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu": _cpu(),
        "cpu_count": os.cpu_count(),
        "mem_total_kb": _mem_total_kb(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": numpy_version,
        "runtimes": _runtimes(("onnxruntime", "litert", "tflite_runtime", "torch")),
    }
    if numpy_missing:
        facts["numpy_missing"] = numpy_missing
    model = _read("/proc/device-tree/model")
    if model:
        facts["board_model"] = model
    tegra = tegra_release(_read("/etc/nv_tegra_release"))
    if tegra:
        facts["l4t"] = tegra
        jetpack = _command(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
        if jetpack:
            facts["jetpack"] = jetpack.strip()
        power = nvpmodel_mode(_command(["nvpmodel", "-q"]))
        if power:
            facts["nvpmodel"] = power
    if workdir:
        facts["disk"] = _disk(workdir)
    return facts


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--runtime":
        print(json.dumps(_runtime(sys.argv[2])))
    else:
        print(json.dumps(probe(sys.argv[1] if len(sys.argv) > 1 else None)))
