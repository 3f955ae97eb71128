"""The compression table printed by `harness variants build` (and the README's figures).

One definition of every ratio, against the model's base (the manifest's ``base`` file):
  weight ratio = base weight bytes / variant weight bytes  (parameters as stored: fp32 4 bytes,
                 fp16 2, int8 1; a technique's stored form where it has one, e.g. Deep
                 Compression's Huffman container) - a 32-to-8-bit variant is at most 4x;
  file ratio   = base file bytes / variant file bytes      (the deployable files a device loads).
Failed variants are rows too, with their reason listed under the table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Failure:
    """A variant that did not build: why, in the user's words."""
    model: str
    name: str
    technique: str
    reason: str

    @property
    def id(self) -> str:
        return f"{self.model}/{self.name}"


@dataclass(frozen=True)
class Reference:
    """What ratios and accuracy deltas of one model are against: its base."""
    size_bytes: int
    weight_bytes: int
    host_accuracy: Optional[float] = None


HEADER = ("variant", "technique", "params", "status", "weights B", "w ratio", "file B", "f ratio",
          "params#", "MACs", "cos min", "top-1 agr", "top-1 %", "Δ pt", "inputs", "build s", "training")
LEFT = {0, 1, 2, 3, 14, 16}


def _ratio(base, value) -> str:
    return f"{base / value:.2f}x" if base and value else "-"


def _agreement_cells(v) -> tuple:
    a = v.agreement
    if not a:
        return "-", "-", "-"
    cos = "-" if a.get("cosine_min") is None else f"{a['cosine_min']:.5f}"
    top1 = "-" if a.get("top1_agreement") is None else f"{100 * a['top1_agreement']:.1f}%"
    source = a.get("source", "").split(":")[0].split(" (")[0]
    return cos, top1, f"{source} x{a.get('n')}"


def _row(v, ref: Optional[Reference]) -> tuple:
    if isinstance(v, Failure):
        return (v.id, v.technique, "", "FAILED") + ("-",) * (len(HEADER) - 4)
    acc = "-" if v.host_accuracy is None else f"{100 * v.host_accuracy:.2f}"
    delta = ("-" if v.host_accuracy is None or ref is None or ref.host_accuracy is None
             else f"{100 * (v.host_accuracy - ref.host_accuracy):+.2f}")
    training = "prebuilt" if v.info.get("prebuilt") else (
        "fine-tuned" if v.info.get("fine_tuned") else "post-training")
    calibration = v.info.get("calibration")
    if calibration:
        training += f"; calibration: {calibration.split(':')[0]}"
    macs = "?" if v.macs is None else str(v.macs)
    cos, top1, inputs = _agreement_cells(v)
    return (v.id, v.technique, json.dumps(v.params, sort_keys=True) if v.params else "", "built",
            str(v.weight_bytes or "-"), _ratio(ref and ref.weight_bytes, v.weight_bytes),
            str(v.size_bytes), _ratio(ref and ref.size_bytes, v.size_bytes),
            str(v.n_params), macs, cos, top1, acc, delta, inputs, f"{v.build_s:.2f}", training)


def variant_table(built) -> list[str]:
    """`built` is a list of (variant or Failure, Reference or None)."""
    rows = [_row(v, ref) for v, ref in built]
    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(len(HEADER))]

    def fmt(r):
        return "  ".join(c.ljust(w) if i in LEFT else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    lines = [fmt(HEADER), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows]
    failures = [v for v, _ in built if isinstance(v, Failure)]
    if failures:
        lines.append("")
        lines.append(f"{len(failures)} variant(s) failed:")
        lines += [f"  {f.id}: {f.reason}" for f in failures]
    unknown = [v for v, _ in built if not isinstance(v, Failure) and v.macs is None]
    for v in unknown:
        lines.append(f"  {v.id}: MACs unknown (shapes not inferable at the manifest's input shapes: "
                     f"{', '.join(v.macs_unknown[:5])})")
    return lines
