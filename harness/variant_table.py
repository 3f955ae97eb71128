"""The compression table printed by `harness variants build` (and the README's figures)."""
from __future__ import annotations

import json


def variant_table(built) -> list[str]:
    """`built` is a list of (variant, fp32 reference variant or None)."""
    header = ("variant", "technique", "params", "file B", "storage B", "ratio", "params#", "MACs",
              "top-1 %", "Δ pt", "build s", "training")
    rows = []
    for v, ref in built:
        ratio = f"{ref.size_bytes / v.storage_bytes:.2f}x" if ref else "-"
        acc = "-" if v.host_accuracy is None else f"{100 * v.host_accuracy:.2f}"
        delta = ("-" if v.host_accuracy is None or ref is None or ref.host_accuracy is None
                 else f"{100 * (v.host_accuracy - ref.host_accuracy):+.2f}")
        training = "prebuilt" if v.info.get("prebuilt") else (
            "fine-tuned" if v.info.get("fine_tuned") else "post-training")
        rows.append((v.id, v.technique, json.dumps(v.params, sort_keys=True) if v.params else "",
                     str(v.size_bytes), str(v.storage_bytes), ratio, str(v.n_params), str(v.macs),
                     acc, delta, f"{v.build_s:.2f}", training))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i < 3 or i == 11 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return [fmt(header), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows]
