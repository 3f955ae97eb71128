"""The machine's state around one timed window, from the runner's two snapshots.

The runner (harness/ondevice/runner.py `machine_snapshot`) reads /proc and /sys at the edges of its
timed window; this module turns the pair into what can explain a disturbed window: how
many cores other processes (and the hypervisor) took, whether a CPU's frequency moved,
temperatures, cgroup throttling, Raspberry Pi throttle bits. Pure: plain dicts in and out,
so recorded snapshots test it without a board.
"""
from __future__ import annotations

from typing import Optional

# vcgencmd get_throttled: bits that say the firmware is limiting the CPU right now
# (https://www.raspberrypi.com/documentation/computers/os.html#get_throttled).
RPI_NOW_BITS = {0x1: "under-voltage", 0x2: "ARM frequency capped", 0x4: "throttled",
                0x8: "soft temperature limit"}


# NVML clock event ("throttle") reasons, nvml.h nvmlClocksEventReason*: the ones that mean
# the GPU ran slower than asked during the window. Idle (0x1), the application-clock
# setting (0x2), sync boost (0x10) and the display-clock setting (0x100) are left out:
# they are the user's setting or the GPU waiting between launches, not a disturbance.
GPU_THROTTLE_BITS = {0x4: "SW power cap", 0x8: "HW slowdown", 0x20: "SW thermal slowdown",
                     0x40: "HW thermal slowdown", 0x80: "HW power brake slowdown"}
NVML_ENERGY_WRAP_MJ = 2 ** 64  # nvmlDeviceGetTotalEnergyConsumption: unsigned long long mJ


def gpu_throttle_flags(reasons) -> list[str]:
    if not isinstance(reasons, int) or isinstance(reasons, bool):
        return []
    return [name for bit, name in GPU_THROTTLE_BITS.items() if reasons & bit]


def gpu_window(before: Optional[dict], after: Optional[dict]) -> dict:
    """One GPU's state over a window from the runner's NVML snapshots (runner.GpuState)."""
    before, after = before or {}, after or {}
    if after.get("missing") or before.get("missing"):
        return {"missing": after.get("missing") or before.get("missing")}
    out: dict = {"index": after.get("index"), "name": after.get("name")}
    for key in ("sm_clock_mhz", "mem_clock_mhz"):
        b, a = before.get(key), after.get(key)
        if b is not None and a is not None:
            out[key] = [b, a]
            out[key.replace("_mhz", "_change")] = abs(a - b) / float(b) if b else 0.0
    temps = [v.get("temperature_c") for v in (before, after) if v.get("temperature_c") is not None]
    if temps:
        out["temp_max_c"] = max(temps)
    for key in ("power_limit_mw", "persistence_mode", "pstate"):
        if after.get(key) is not None:
            out[key] = after[key]
    out["throttle"] = sorted(set(gpu_throttle_flags(before.get("throttle_reasons"))
                                 + gpu_throttle_flags(after.get("throttle_reasons"))))
    # NVML's violation counters add up the time a policy held the clocks down: a throttle
    # between the edges shows here even when both edge snapshots look clean.
    vb, va = before.get("violation_ns") or {}, after.get("violation_ns") or {}
    held = {p: va[p] - vb[p] for p in va if p in vb and va[p] > vb[p]}
    if held:
        out["violation_s"] = {p: ns / 1e9 for p, ns in held.items()}
    eb, ea = before.get("energy_mj"), after.get("energy_mj")
    if eb is not None and ea is not None:
        from .power.energy import counter_delta

        out["energy_j"] = counter_delta(eb, ea, NVML_ENERGY_WRAP_MJ) / 1000.0
    if after.get("unsupported"):
        out["unsupported"] = after["unsupported"]
    return out


def online_cpus(text: Optional[str], fallback: Optional[int]) -> Optional[int]:
    """Count of CPUs in a kernel list such as '0-3,6'."""
    if not text:
        return fallback
    count = 0
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            count += (int(high) - int(low) + 1) if high else 1
    except ValueError:
        return fallback
    return count


def rpi_flags(value: Optional[str]) -> list[str]:
    if not value:
        return []
    try:
        bits = int(value, 16)
    except ValueError:
        return []
    return [name for bit, name in RPI_NOW_BITS.items() if bits & bit]


def window_state(before: Optional[dict], after: Optional[dict]) -> dict:
    """Summary of one window: the figures the validity rules read (missing ones are None)."""
    if not before or not after:
        return {}
    wall = float(after.get("time_unix_s", 0)) - float(before.get("time_unix_s", 0))
    out: dict = {"wall_s": wall,
                 "cpus_online": online_cpus(after.get("cpus_online"), after.get("cpu_count")),
                 "loadavg_before": (before.get("loadavg") or [None])[0],
                 "loadavg_after": (after.get("loadavg") or [None])[0]}
    jb, ja = before.get("cpu_jiffies"), after.get("cpu_jiffies")
    ticks = float(after.get("clock_ticks") or 100)
    if jb and ja and wall > 0:
        busy = (ja["busy"] - jb["busy"]) / ticks
        own = float(after.get("self_cpu_s", 0)) - float(before.get("self_cpu_s", 0))
        out["busy_cores"] = busy / wall
        out["own_cores"] = own / wall
        # The tick counters are coarse (10 ms): never report a negative neighbour.
        out["other_cores"] = max(0.0, (busy - own) / wall)
        out["steal_cores"] = max(0.0, (ja.get("steal", 0) - jb.get("steal", 0)) / ticks / wall)
    fb, fa = before.get("cpufreq") or {}, after.get("cpufreq") or {}
    changes = {}
    for cpu, a in fa.items():
        b = fb.get(cpu)
        if b and b.get("cur_khz") and a.get("cur_khz"):
            changes[cpu] = abs(a["cur_khz"] - b["cur_khz"]) / float(b["cur_khz"])
    if changes:
        out["freq_change_max"] = max(changes.values())
        out["freq_khz"] = {cpu: v.get("cur_khz") for cpu, v in fa.items()}
    governors = sorted({v.get("governor") for v in fa.values() if v.get("governor")})
    if governors:
        out["governors"] = governors
    temps = list((after.get("thermal_c") or {}).values()) + list((before.get("thermal_c") or {}).values())
    if temps:
        out["temp_max_c"] = max(temps)
    cb, ca = before.get("cgroup_cpu"), after.get("cgroup_cpu")
    if ca:
        out["cgroup_quota_cores"] = ca.get("quota_cores")
        if cb:
            out["cgroup_throttled_periods"] = (ca.get("nr_throttled") or 0) - (cb.get("nr_throttled") or 0)
            out["cgroup_throttled_s"] = (ca.get("throttled_s") or 0) - (cb.get("throttled_s") or 0)
    flags = sorted(set(rpi_flags(before.get("rpi_throttled")) + rpi_flags(after.get("rpi_throttled"))))
    if before.get("rpi_throttled") is not None or after.get("rpi_throttled") is not None:
        out["rpi_throttled"] = flags
    if after.get("jetson_power_mode"):
        out["jetson_power_mode"] = after["jetson_power_mode"]
    if before.get("gpu") is not None or after.get("gpu") is not None:
        out["gpu"] = gpu_window(before.get("gpu"), after.get("gpu"))
    return out


def stability_hints(snapshot: dict) -> list[str]:
    """What would make a board's numbers unstable, from one snapshot (`harness devices
    check`, in the spirit of `pyperf system show`)."""
    hints = []
    governors = {v.get("governor") for v in (snapshot.get("cpufreq") or {}).values() if v.get("governor")}
    if governors - {"performance"}:
        hints.append(f"CPU frequency governor {', '.join(sorted(g for g in governors if g))}: frequencies "
                     "move with load; set 'performance' for stable numbers (prepare: in the device YAML)")
    for cpu, v in sorted((snapshot.get("cpufreq") or {}).items()):
        if v.get("min_khz") and v.get("max_khz") and v["min_khz"] != v["max_khz"]:
            hints.append(f"{cpu} may run between {v['min_khz'] / 1e3:.0f} and {v['max_khz'] / 1e3:.0f} MHz")
            break
    if not snapshot.get("cpufreq"):
        hints.append("CPU frequency not readable (no cpufreq in /sys): frequency changes cannot be detected")
    load = (snapshot.get("loadavg") or [0])[0]
    cpus = online_cpus(snapshot.get("cpus_online"), snapshot.get("cpu_count")) or 1
    if load and load > 0.5 * cpus:
        hints.append(f"load average {load:.2f} on {cpus} CPU(s): other work is running")
    quota = (snapshot.get("cgroup_cpu") or {}).get("quota_cores")
    if quota:
        hints.append(f"cgroup CPU quota {quota:.2f} cores: runs are throttled to it")
    flags = rpi_flags(snapshot.get("rpi_throttled"))
    if flags:
        hints.append(f"Raspberry Pi firmware reports: {', '.join(flags)}")
    temps = (snapshot.get("thermal_c") or {}).values()
    if temps and max(temps) >= 80:
        hints.append(f"temperature {max(temps):.0f} C: close to thermal throttling")
    return hints + gpu_hints(snapshot.get("gpu"))


def gpu_hints(gpu: Optional[dict]) -> list[str]:
    """What would make a GPU's numbers unstable (docs/gpu.md says how to set each)."""
    if not gpu:
        return []
    if gpu.get("missing"):
        return [f"GPU state not read: {gpu['missing']}"]
    hints = []
    if gpu.get("persistence_mode") == 0:
        hints.append("GPU persistence mode off: the driver unloads between runs and the first "
                     "CUDA call pays for it (sudo nvidia-smi -pm 1)")
    flags = gpu_throttle_flags(gpu.get("throttle_reasons"))
    if flags:
        hints.append(f"GPU {gpu.get('index')} is throttled now: {', '.join(flags)}")
    if (gpu.get("temperature_c") or 0) >= 80:
        hints.append(f"GPU temperature {gpu['temperature_c']} C: close to thermal slowdown")
    return hints
