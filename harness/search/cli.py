"""`harness search MANIFEST --device NAME --trials N`: the options and one search end to end,
shared by the command line and the pytest entry (``harness.search.pytest_entry``)."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .. import variant_build
from ..errors import ConfigError


@dataclass
class SearchOutcome:
    study: str
    store_url: str
    outcomes: list                   # this worker's TrialOutcomes
    summary: dict                    # harness.search.results.summarize_search
    run_id: Optional[str]


def add_arguments(p) -> None:
    from ..store import DEFAULT_URL

    p.add_argument("manifest", help="a model manifest with a search: section")
    p.add_argument("--device", required=True, help="the device to measure on (from the inventory)")
    p.add_argument("--trials", type=int, default=20, help="the study's total number of trials (default 20); "
                   "a resumed or shared study runs only what is missing")
    p.add_argument("--study", help="study name (default: <model>-<device>); workers naming the same study "
                   "on the same store share it")
    p.add_argument("--store", default=DEFAULT_URL, help=f"store URL, also the study's storage (default: {DEFAULT_URL})")
    p.add_argument("--worker-trials", type=int, help="at most this many trials by this process")
    p.add_argument("--with-variants", action="store_true",
                   help="also measure the manifest's hand-written variants (the front's comparison)")
    p.add_argument("--min-duration", type=float, help="minimum timed-loop seconds per measurement")
    p.add_argument("--warmup", type=int, help="untimed inferences before the timed loop")
    p.add_argument("--remeasure", type=int, default=2, help="re-measurements of an invalid measurement (default 2)")
    p.add_argument("--cache", default=str(variant_build.DEFAULT_CACHE), help="variant cache directory")
    p.add_argument("--report", help="write the search's HTML page here")


def execute(manifest_path: Path, device: str, *, trials: int, store_url: str, study: Optional[str] = None,
            devices_dir: Optional[Path] = None, cache: Path = variant_build.DEFAULT_CACHE, overrides: Optional[dict] = None,
            worker_trials: Optional[int] = None, with_variants: bool = False, remeasure: int = 2,
            log: Callable[[str], None] = print) -> SearchOutcome:
    from ..inventory import Inventory
    from ..session import BenchSession
    from ..store import Store
    from . import study as study_mod
    from .results import handwritten_points, summarize_search
    from .space import load_search

    manifest = variant_build.load_manifest(Path(manifest_path))
    spec = load_search(manifest)
    name = study_mod.check_study_name(study or study_mod.default_study_name(manifest, device))
    inventory = Inventory(devices_dir if devices_dir and Path(devices_dir).is_dir() else None)
    inventory.get(device)            # an unknown device is named before anything is built
    store = Store(store_url)
    session = BenchSession(inventory, store, [manifest], cache=Path(cache), overrides=overrides or {},
                      run_tag=f"search:{name}", run_settings={"search": name})
    try:
        if with_variants:
            for recipe in manifest.variants:
                if session.skip_reason(device, recipe) is None:
                    session.measure(device, manifest, recipe)
        outcomes = study_mod.run_search(spec, manifest, session, device, trials=trials, storage_url=store_url,
                                        study_name=name, worker_trials=worker_trials, remeasure=remeasure,
                                        log=log)
        run_id = session.run_id if session.measured else None
        reference = (study_mod.reference_accuracy(session, manifest) if any(b.drop for b in spec.budgets)
                     else None)
    finally:
        session.close()
    objectives = [o.name for o in spec.objectives]
    trials_rows = study_mod.trials_data(name, store_url)
    hand = handwritten_points([m for m in store.measurements() if m.device == device and m.model == manifest.name],
                              objectives, spec.budgets, reference)
    return SearchOutcome(name, store_url, outcomes, summarize_search(trials_rows, hand, objectives), run_id)


def front_lines(summary: dict) -> list:
    lines = [f"front ({sum(t['on_front'] for t in summary['trials'])} of {len(summary['trials'])} trials; "
             f"hypervolume found {summary['hypervolume_found']:.4g}, hand-written "
             f"{summary['hypervolume_handwritten']:.4g}, same reference point):"]
    for t in sorted((t for t in summary["trials"] if t["on_front"]), key=lambda t: t["number"]):
        values = ", ".join(f"{k} {v:.4g}" for k, v in t["values"].items())
        mark = "  [dominates or ties every hand-written variant]" if t["number"] in summary["dominating"] else ""
        lines.append(f"  trial {t['number']}: {values} | {t['description']}{mark}")
    return lines


def run(args) -> int:
    overrides = {"min_duration_s": args.min_duration, "warmup": args.warmup}
    if args.trials < 1:
        raise ConfigError("--trials", "trials", "a positive number", args.trials)
    result = execute(Path(args.manifest), args.device, trials=args.trials, store_url=args.store, study=args.study,
                     devices_dir=Path(args.devices_dir or "devices"), cache=Path(args.cache), overrides=overrides,
                     worker_trials=args.worker_trials, with_variants=args.with_variants,
                     remeasure=args.remeasure, log=lambda line: print(line, flush=True))
    for line in front_lines(result.summary):
        print(line)
    if args.report:
        path = write_search_page(result, Path(args.report))
        print(f"report: {path}", file=sys.stderr)
    return 0


def write_search_page(result: SearchOutcome, out: Path) -> Path:
    from ..frame import measurements_frame
    from ..report.page import render_page, write_page
    from ..report.search import front_table_html, search_figures
    from ..store import Store, redact

    store = Store(result.store_url)
    ms = store.measurements(run_id=result.run_id) if result.run_id else []
    meta = [f"study {result.study} · store {redact(result.store_url)}"]
    return write_page(out, render_page(f"Search {result.study}", meta, [], search_figures(result.summary),
                                       measurements_frame(ms), sections=[front_table_html(result.summary)]))
