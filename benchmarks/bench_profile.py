"""Per-operator profiles of every demo variant on `local` (issue 20).

    python benchmarks/bench_profile.py [--rounds R] [--min-duration S] [--store URL]

One profiled campaign over the demo zoo (digits-cnn, digits-mlp: every variant the local
device can run) with the device's measured peak (calibrated once, cached under
.harness-cache/peaks). Prints, per variant: the top three operator types by share of the
operators' time, the whole variant's achieved MAC/s as % of the measured peak, how much of the
profiled inference the operators' kernels cover, and the profiler's own overhead (a profiled
inference against the timed rounds' mean). A runtime without per-operator timing is listed
as "not offered" with its reason. Numbers only; nothing here asserts.
"""
from __future__ import annotations

import argparse
import sys
import tempfile

from repo_root import ROOT as REPO
sys.path.insert(0, str(REPO))

from harness import profile, variant_build  # noqa: E402
from harness.inventory import Inventory  # noqa: E402
from harness.session import BenchSession  # noqa: E402
from harness.store import Store  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--min-duration", type=float, default=1.0, help="timed seconds per variant over all rounds")
    p.add_argument("--store", help="store URL (default: a temporary SQLite file)")
    args = p.parse_args(argv)
    store_url = args.store or f"sqlite:///{tempfile.mkdtemp(prefix='bench-profile-')}/s.sqlite"
    manifests = [variant_build.load_manifest(REPO / "models" / f"{stem}.yaml") for stem in ("digits_cnn", "digits_mlp")]
    store = Store(store_url)
    session = BenchSession(Inventory(REPO / "devices" if (REPO / "devices").is_dir() else None), store, manifests,
                      cache=REPO / variant_build.DEFAULT_CACHE, run_tag="bench-profile",
                      overrides={"profile": True, "rounds": args.rounds, "min_duration_s": args.min_duration},
                      progress=lambda text: print(text, file=sys.stderr))
    pairs = variant_build.select(manifests, None)
    session.select(pairs)
    try:
        for manifest in manifests:
            session.measure("local", manifest, manifest.variants[0])
    finally:
        session.close()
    peak = None
    print(f"{'variant':28} {'top op types by share':58} {'% peak':>8} {'cover':>6} {'overhead':>9}")
    for m in sorted(session.measured, key=lambda m: m.variant_id):
        prof = m.profile
        if not profile.offered(prof):
            print(f"{m.variant_id:28} not offered: {(prof or {}).get('reason')}")
            continue
        by_type = profile.by_op_type(prof)
        summed = sum(by_type.values()) or 1.0
        top = ", ".join(f"{k} {100 * v / summed:.0f}%" for k, v in list(by_type.items())[:3])
        v = (prof.get("roofline") or {}).get("variant") or {}
        pct = "-" if v.get("pct_of_peak") is None else f"{v['pct_of_peak']:.3g}"
        overhead = "-" if prof.get("overhead") is None else f"{100 * prof['overhead']:+.0f}%"
        print(f"{m.variant_id:28} {top:58} {pct:>8} {100 * prof['coverage']:5.0f}% {overhead:>9}")
        peak = prof.get("peak") or peak
    if peak:
        cal = peak["calibration"]
        print(f"measured peak on local ({cal['runtime']['name']} {cal['runtime']['version']}, {cal['threads']} "
              f"thread(s)): fp32 {peak['macs_per_s']['fp32'] / 1e9:.3g} GMAC/s, int8 "
              f"{peak['macs_per_s']['int8'] / 1e9:.3g} GMAC/s, stream {peak['bytes_per_s'] / 1e9:.3g} GB/s "
              f"({'cached' if peak.get('cached') else 'calibrated in this run'}, {cal['time']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
