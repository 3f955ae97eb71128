"""The search against the hand-written variants, on the demo MLP on `local`.

    python benchmarks/bench_search.py                      # N = 40 trials, seed from the manifest
    python benchmarks/bench_search.py --trials 40 --min-duration 0.2 --sampler tpe

Measures the manifest's hand-written variants (models/compression/digits_mlp.yaml) and then
runs its search: section for N trials on the same device, in a fresh store and cache (so
build times are real), and prints: the hypervolume of the found front and of the
hand-written variants (same reference point, axes scaled to one box), the found variants
that dominate or tie every hand-written one, and the wall time per trial split into build
and measure. Prints numbers; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT
sys.path.insert(0, str(ROOT))

from harness import variant_build  # noqa: E402
from harness.search import space  # noqa: E402
from harness.search.cli import execute, front_lines  # noqa: E402

MANIFEST = ROOT / "models" / "compression" / "digits_mlp.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--device", default="local")
    ap.add_argument("--min-duration", type=float, default=0.5, help="timed-loop seconds per measurement")
    ap.add_argument("--sampler", choices=space.SAMPLERS, help="override the manifest's sampler")
    ap.add_argument("--seed", type=int, help="override the manifest's seed")
    ap.add_argument("--keep", help="keep the store and cache in this directory")
    args = ap.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-search-"))
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = MANIFEST
    if args.sampler or args.seed is not None:
        manifest_path = _with_overrides(folder, args.sampler, args.seed)
    url = f"sqlite:///{folder / 'harness.sqlite'}"
    start = time.perf_counter()
    result = execute(manifest_path, args.device, trials=args.trials, store_url=url, study="bench",
                     devices_dir=ROOT / "devices", cache=folder / "cache",
                     overrides={"min_duration_s": args.min_duration}, with_variants=True,
                     log=lambda line: print(line, flush=True))
    wall = time.perf_counter() - start
    s = result.summary
    spec = space.load_search(variant_build.load_manifest(manifest_path))
    print()
    print(f"device {args.device}, {args.trials} trials, sampler {spec.sampler}, seed {spec.seed}, "
          f"objectives {', '.join(s['objectives'])}, budgets {', '.join(b.text for b in spec.budgets) or 'none'}")
    states = [t["state"] for t in s["trials"]]
    print("trials: " + ", ".join(f"{k} {states.count(k)}" for k in sorted(set(states))))
    print(f"hand-written variants measured: {len(s['handwritten'])} "
          f"(front: {', '.join(h['name'] for h in s['handwritten'] if h['on_front'])})")
    print("reference point: " + ", ".join(f"{k} {v:.4g}" for k, v in (s["reference"] or {}).items()))
    print(f"hypervolume: found {s['hypervolume_found']:.4f}, hand-written {s['hypervolume_handwritten']:.4f}")
    for line in front_lines(s):
        print(line)
    dominating = [t for t in s["trials"] if t["number"] in s["dominating"]]
    if dominating:
        best = max(dominating, key=lambda t: t["values"][s["objectives"][0]]
                   * (1 if s["directions"][0] == "maximize" else -1))
        print(f"best found variant dominating or tying every hand-written one: trial {best['number']} "
              f"({', '.join(f'{k} {v:.4g}' for k, v in best['values'].items())}) | {best['description']}")
    else:
        print("no found variant dominates or ties every hand-written one")
    built = [o.build_s for o in result.outcomes]
    measured = [o.measure_s for o in result.outcomes if o.state == "complete"]
    print(f"wall time per trial: build median {_med(built):.3f} s (mean {_mean(built):.3f}), "
          f"measure median {_med(measured):.3f} s (mean {_mean(measured):.3f}) over {len(measured)} measured; "
          f"whole run {wall:.1f} s incl. the hand-written variants")
    print(f"store: {url}")
    return 0


def _with_overrides(folder: Path, sampler, seed) -> Path:
    import yaml

    data = yaml.safe_load(MANIFEST.read_text())
    data["base"] = str((MANIFEST.parent / data["base"]).resolve())
    if sampler:
        data["search"]["sampler"] = sampler
    if seed is not None:
        data["search"]["seed"] = seed
    out = folder / "manifest.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _med(values) -> float:
    return statistics.median(values) if values else float("nan")


def _mean(values) -> float:
    return statistics.fmean(values) if values else float("nan")


if __name__ == "__main__":
    sys.exit(main())
