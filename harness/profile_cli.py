"""`harness profile MANIFEST --device NAME --variant ID`: measure one variant with its
per-operator profile (harness.profile) and print where its time goes."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import profile as profiles
from . import variant_build
from .errors import ConfigError


def add_arguments(p) -> None:
    from .store import DEFAULT_URL

    p.add_argument("manifest", help="a model manifest")
    p.add_argument("--device", required=True, help="the device to profile on (from the inventory)")
    p.add_argument("--variant", required=True, help="the variant's name in the manifest (e.g. int8-dynamic)")
    p.add_argument("--top", type=int, default=10, help="operators to list (default 10)")
    p.add_argument("--rounds", type=int, default=1, help="timed rounds before the profiled pass (default 1)")
    p.add_argument("--min-duration", type=float, help="minimum timed-loop seconds")
    p.add_argument("--store", default=DEFAULT_URL, help=f"store URL the measurement is written to (default: {DEFAULT_URL})")
    p.add_argument("--cache", default=str(variant_build.DEFAULT_CACHE), help="variant and peak cache directory")


def measure(manifest_path: Path, device: str, variant: str, *, store_url: str, devices_dir: Optional[Path] = None,
            cache: Path = variant_build.DEFAULT_CACHE, rounds: int = 1, min_duration_s: Optional[float] = None):
    """The variant's Measurement with its profile (stored like any other)."""
    from .inventory import Inventory
    from .session import BenchSession
    from .store import Store

    manifest = variant_build.load_manifest(Path(manifest_path))
    names = [r.name for r in manifest.variants]
    if variant not in names:
        raise ConfigError("--variant", "variant", f"one of {', '.join(names)} (from {manifest_path})", variant)
    inventory = Inventory(devices_dir if devices_dir and Path(devices_dir).is_dir() else None)
    inventory.get(device)
    session = BenchSession(inventory, Store(store_url), [manifest], cache=Path(cache), run_tag="profile",
                      overrides={"min_duration_s": min_duration_s})
    try:
        # settings given: this variant is measured alone, in its own rounds
        return session.measure(device, manifest, manifest.recipe(variant), profile=True, rounds=rounds)
    finally:
        session.close()


def _rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{value / 1e9:.3g} G"


def lines(m, top: int = 10) -> list:
    """The terminal's view of a measurement's profile."""
    prof = m.profile
    head = f"{m.device} {m.variant_id}: p50 {m.latency.p50_ms:.4g} ms (timed rounds)"
    if not profiles.offered(prof):
        reason = (prof or {}).get("reason", "the run was not profiled")
        return [head, f"per-operator profile: not offered: {reason}"]
    out = [head, f"per-operator profile: {prof['source']}, {prof['runs']} inferences, {prof['total_us']:.4g} us "
                 f"each; operators cover {100 * prof['coverage']:.0f}% of it; profiler overhead "
                 + ("-" if prof.get("overhead") is None else f"{100 * prof['overhead']:+.0f}%")]
    by_type = profiles.by_op_type(prof)
    summed = sum(by_type.values()) or 1.0
    out.append("by op type: " + ", ".join(f"{k} {100 * v / summed:.0f}%" for k, v in list(by_type.items())[:6]))
    roof = {o["name"]: o for o in (prof.get("roofline") or {}).get("ops", [])}
    out.append(f"{'#':>3}  {'operator':40}  {'type':22}  {'us':>8}  {'share':>6}  {'MACs':>9}  {'MAC/s':>8}  {'% peak':>7}")
    for i, op in enumerate(profiles.top_ops(prof, top), 1):
        r = roof.get(op["name"], {})
        pct = r.get("pct_of_peak")
        out.append(f"{i:>3}  {op['name'][:40]:40}  {op['op_type'][:22]:22}  {op['time_us']:8.2f}  "
                   f"{100 * op['share']:5.1f}%  {op.get('macs') if op.get('macs') is not None else '-':>9}  "
                   f"{_rate(r.get('achieved_macs_per_s')):>8}  {'-' if pct is None else f'{pct:.2f}':>7}")
    if prof.get("roofline"):
        v, peak = prof["roofline"]["variant"], prof["peak"]
        intensity = "-" if v["intensity"] is None else f"{v['intensity']:.3g}"
        pct = "-" if v["pct_of_peak"] is None else f"{v['pct_of_peak']:.3g}"
        out.append(f"variant: {v['macs']} MACs, {v['bytes']} bytes moved, intensity {intensity} MAC/B, "
                   f"{_rate(v['achieved_macs_per_s'])}MAC/s = {pct}% of the measured peak")
        out.append(f"measured peak: fp32 {_rate(peak['macs_per_s'].get('fp32'))}MAC/s, int8 "
                   f"{_rate(peak['macs_per_s'].get('int8'))}MAC/s, {_rate(peak.get('bytes_per_s'))}B/s "
                   f"({'cached' if peak.get('cached') else 'calibrated now'}, "
                   f"{(peak.get('calibration') or {}).get('time', 'time unknown')})")
    elif prof.get("roofline_error"):
        out.append(f"no roofline: {prof['roofline_error']}")
    return out


def run(args) -> int:
    if args.top < 1:
        raise ConfigError("--top", "top", "a count >= 1", args.top)
    if args.rounds < 1:
        raise ConfigError("--rounds", "rounds", "a count >= 1", args.rounds)
    m = measure(Path(args.manifest), args.device, args.variant, store_url=args.store,
                devices_dir=Path(args.devices_dir or "devices"), cache=Path(args.cache), rounds=args.rounds,
                min_duration_s=args.min_duration)
    for line in lines(m, args.top):
        print(line)
    return 0
