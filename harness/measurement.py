"""The Measurement: what every device kind's raw result becomes.

Everything after this point (store, report, comparisons) knows nothing about SSH, serial
or QEMU: it sees latency statistics, memory, energy, accuracy and provenance.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Optional

from .stats import LatencyStats, summarize


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
    agreement: Optional[dict] = None   # outputs vs the base model (harness.agreement), host-side

    @property
    def variant_id(self) -> str:
        return f"{self.model}/{self.variant}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Measurement":
        d = dict(d)
        d["latency"] = LatencyStats(**d["latency"])
        d["memory"] = Memory(**d["memory"])
        if d.get("agreement") is not None:
            from .agreement import Agreement
            d["agreement"] = Agreement(d["agreement"])
        return cls(**d)


def from_raw(raw: dict, *, device: str, variant, emulated: bool, settings: dict,
             provenance: dict, energy: Optional[dict] = None) -> Measurement:
    """Build a Measurement from the runner's JSON document (or a device kind's equivalent)."""
    mem = raw.get("memory") or {}
    accuracy = raw.get("accuracy") or {}
    return Measurement(
        device=device, model=variant.model, variant=variant.name, technique=variant.technique,
        format=variant.format,
        latency=summarize(raw["latencies_ns"]),
        samples_ns=list(raw["latencies_ns"]),
        timings_ms=dict(raw.get("timings_ms") or {}),
        memory=Memory(peak_rss_kb=mem.get("peak_rss_kb"), load_growth_kb=mem.get("load_growth_kb"),
                      flash_bytes=mem.get("flash_bytes"), ram_bytes=mem.get("ram_bytes"),
                      arena_bytes=mem.get("arena_bytes"), phases_kb=mem.get("hwm_kb") or {}),
        accuracy=accuracy.get("top1"), accuracy_n=accuracy.get("n"),
        host_accuracy=variant.host_accuracy,
        size_bytes=variant.size_bytes, storage_bytes=variant.storage_bytes,
        n_params=variant.n_params, macs=variant.macs, model_sha256=variant.sha256,
        emulated=bool(raw.get("emulated", emulated)), settings=settings, provenance=provenance,
        energy=energy,
        agreement=getattr(variant, "agreement", None),
    )
