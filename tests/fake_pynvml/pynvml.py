"""A stand-in for nvidia-ml-py's pynvml (no GPU here) that answers with RECORDED readings:
tests/data/nvml_recorded.json, scenario $FAKE_NVML_SCENARIO, window edge $FAKE_NVML_EDGE
(or the module attributes SCENARIO and EDGE, which the in-process tests set). Same
function names, argument order, units and error behaviour (NVMLError for an unsupported
query) as pynvml; only what the harness calls."""
import json
import os
from types import SimpleNamespace

_DATA = json.loads(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                                     "nvml_recorded.json")).read())
SCENARIO = os.environ.get("FAKE_NVML_SCENARIO", "steady")
EDGE = int(os.environ.get("FAKE_NVML_EDGE", "0"))
NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2


class NVMLError(Exception):
    pass


def _now():
    return _DATA["scenarios"][SCENARIO][EDGE]


def _field(key):
    value = _now().get(key)
    if value is None:
        raise NVMLError("Not Supported")
    return value


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetHandleByIndex(index):
    if index >= len(_DATA["gpus"]):
        raise NVMLError("Invalid Argument")
    return index


def nvmlDeviceGetName(handle):
    return _DATA["gpus"][handle]["name"]


def nvmlSystemGetDriverVersion():
    return _DATA["gpus"][0]["driver"]


def nvmlDeviceGetArchitecture(handle):
    return _DATA["gpus"][handle]["architecture"]


def nvmlDeviceGetClockInfo(handle, clock):
    return _field({NVML_CLOCK_SM: "sm", NVML_CLOCK_MEM: "mem"}[clock])


def nvmlDeviceGetTemperature(handle, sensor):
    return _field("temp")


def nvmlDeviceGetEnforcedPowerLimit(handle):
    return _field("power_limit")


def nvmlDeviceGetPowerUsage(handle):
    return _field("power")


def nvmlDeviceGetCurrentClocksEventReasons(handle):
    if _now().get("old_api"):  # drivers before 535 know only the older name
        raise NVMLError("Function Not Found")
    return _field("reasons")


def nvmlDeviceGetCurrentClocksThrottleReasons(handle):
    return _field("reasons")


def nvmlDeviceGetPersistenceMode(handle):
    return _field("persistence")


def nvmlDeviceGetPerformanceState(handle):
    return _field("pstate")


def nvmlDeviceGetTotalEnergyConsumption(handle):
    return _field("energy")


def nvmlDeviceGetViolationStatus(handle, policy):
    ns = _field("violation")[{0: "power", 1: "thermal"}[policy]]
    return SimpleNamespace(referenceTime=1700000000000000, violationTime=ns)


def nvmlDeviceGetComputeRunningProcesses(handle):
    used = _now().get("process_bytes")
    others = [SimpleNamespace(pid=1, usedGpuMemory=1 << 30)]
    return others + ([SimpleNamespace(pid=os.getpid(), usedGpuMemory=used)] if used is not None else [])


def nvmlDeviceGetGraphicsRunningProcesses(handle):
    return []


def nvmlDeviceGetMemoryInfo(handle):
    return SimpleNamespace(used=2 << 30, total=141 << 30, free=139 << 30)
