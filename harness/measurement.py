"""The Measurement: what every device kind's documents become.

Everything after this point (store, report, comparisons) knows nothing about SSH, serial
or QEMU: it sees latency statistics over rounds, memory, energy, accuracy, the machine's
state, a validity verdict and provenance.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Optional

from . import machine as machine_state
from .stats import PERCENTILE_MIN_SAMPLES, LatencyStats, summarize, supported
from .validity import INVALID, InvalidMeasurement, Thresholds, assess


@dataclass
class Memory:
    peak_rss_kb: Optional[int] = None     # VmHWM over the whole run (Linux boards)
    load_growth_kb: Optional[int] = None  # RSS growth from before the model load to after init
    flash_bytes: Optional[int] = None     # MCU: text + rodata
    ram_bytes: Optional[int] = None       # MCU: data + bss + measured stack
    arena_bytes: Optional[int] = None
    phases_kb: dict = field(default_factory=dict)

    @property
    def peak_rss_mb(self) -> Optional[float]:
        return None if self.peak_rss_kb is None else self.peak_rss_kb / 1024.0


@dataclass
class Measurement:
    device: str
    model: str
    variant: str
    technique: str
    format: str
    latency: LatencyStats
    samples_ns: list
    timings_ms: dict
    memory: Memory
    accuracy: Optional[float]
    accuracy_n: Optional[int]
    host_accuracy: Optional[float]
    size_bytes: int
    storage_bytes: int
    n_params: int
    macs: int
    model_sha256: str
    emulated: bool
    settings: dict
    provenance: dict
    energy: Optional[dict] = None
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())
    run_id: Optional[str] = None
    id: Optional[int] = None
    round_sizes: list = field(default_factory=list)   # samples_ns split into rounds, in order
    machine: dict = field(default_factory=dict)       # {"rounds": [window state per round]}
    validity: dict = field(default_factory=dict)      # {"verdict", "reasons", "notes", "thresholds"}
    agreement: Optional[dict] = None   # outputs vs the base model (harness.agreement), host-side
    profile: Optional[dict] = None     # per-operator profile with its roofline (harness.profile)

    @property
    def variant_id(self) -> str:
        return f"{self.model}/{self.variant}"

    @property
    def verdict(self) -> str:
        return self.validity.get("verdict", "unknown")

    @property
    def valid(self) -> bool:
        return self.verdict != INVALID

    def require(self, statistic: str) -> float:
        """A figure a budget may be judged on, or InvalidMeasurement saying why not.

        Latency statistics (p50_ms, p90_ms, p99_ms, mean_ms) are the median over rounds,
        so one disturbed round cannot pass or fail a budget; an invalid measurement, or a
        percentile from fewer samples than it needs, fails with the reasons."""
        if not self.valid:
            raise InvalidMeasurement(f"{self.device} {self.variant_id}: the measurement is invalid, so "
                                     f"{statistic} cannot be judged: " + "; ".join(self.validity.get("reasons", [])))
        if statistic == "accuracy":
            if self.accuracy is None:
                raise InvalidMeasurement(f"{self.device} {self.variant_id}: accuracy was not measured")
            return self.accuracy
        name = statistic.removesuffix("_ms")
        if name not in ("p50", "p90", "p99", "mean"):
            raise ValueError(f"require(): expected p50_ms, p90_ms, p99_ms, mean_ms or accuracy, got {statistic!r}")
        if name != "mean" and not supported(name, self.latency.n):
            raise InvalidMeasurement(f"{self.device} {self.variant_id}: {name} needs at least "
                                     f"{PERCENTILE_MIN_SAMPLES[name]} samples, the measurement has {self.latency.n}")
        return self.latency.robust(name)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Measurement":
        d = dict(d)
        d["latency"] = LatencyStats.from_dict(d["latency"])
        d["memory"] = Memory(**d["memory"])
        if d.get("agreement") is not None:
            from .agreement import Agreement
            d["agreement"] = Agreement(d["agreement"])
        return cls(**d)


def _memory(rounds: list) -> Memory:
    """The worst round's peak (memory is not drift: the highest mark is the truth)."""
    peak = max(rounds, key=lambda r: ((r.get("memory") or {}).get("peak_rss_kb") or 0))
    mem = peak.get("memory") or {}
    growth = [(r.get("memory") or {}).get("load_growth_kb") for r in rounds]
    growth = [g for g in growth if g is not None]
    return Memory(peak_rss_kb=mem.get("peak_rss_kb"), load_growth_kb=max(growth) if growth else None,
                  flash_bytes=mem.get("flash_bytes"), ram_bytes=mem.get("ram_bytes"),
                  arena_bytes=mem.get("arena_bytes"), phases_kb=mem.get("hwm_kb") or {})


def _timings(rounds: list) -> dict:
    """First round's cold-start figures (load, init, first inference) and each round's."""
    first = dict(rounds[0].get("timings_ms") or {})
    if len(rounds) > 1:
        first["rounds"] = [dict(r.get("timings_ms") or {}) for r in rounds]
    return first


def from_rounds(rounds: list, *, device: str, variant, emulated: bool, settings: dict,
                provenance: dict, energy: Optional[dict] = None,
                thresholds: Thresholds = Thresholds(), emulated_time: bool = False) -> Measurement:
    """One Measurement from the validated documents of its rounds (harness.document), in
    the order they were taken."""
    samples, sizes, windows, loops = [], [], [], []
    for doc in rounds:
        inner = doc.get("round_sizes") or [len(doc["latencies_ns"])]
        samples += list(doc["latencies_ns"])
        sizes += inner
        m = doc.get("machine") or {}
        state = machine_state.window_state(m.get("before"), m.get("after"))
        windows += [state] + [{}] * (len(inner) - 1)
        loops.append(doc.get("loop") or {})
    latency = summarize(samples, sizes)
    last = rounds[-1]
    accuracy = next((r["accuracy"] for r in reversed(rounds) if r.get("accuracy")), None) or {}
    return Measurement(
        device=device, model=variant.model, variant=variant.name, technique=variant.technique,
        format=variant.format, latency=latency, samples_ns=samples, timings_ms=_timings(rounds),
        memory=_memory(rounds), accuracy=accuracy.get("top1"), accuracy_n=accuracy.get("n"),
        host_accuracy=variant.host_accuracy, size_bytes=variant.size_bytes,
        storage_bytes=variant.storage_bytes, n_params=variant.n_params, macs=variant.macs,
        model_sha256=variant.sha256, emulated=bool(last.get("emulated", emulated)), settings=settings,
        provenance=provenance, energy=energy, round_sizes=sizes, machine={"rounds": windows},
        validity=assess(latency, windows, loops, thresholds, threads=int(settings.get("threads", 1) or 1),
                        emulated_time=emulated_time),
        agreement=variant.agreement,
        profile=next((r["profile"] for r in reversed(rounds) if r.get("profile") is not None), None),
    )
