"""`harness`: the command line.

    harness devices [list]            the inventory, validated
    harness devices show NAME         one device's validated spec (no secrets)
    harness devices check NAME        connect; the board's OS, CPU, Python, runtimes, variants
    harness devices clean NAME        remove the harness work directory from the board
    harness variants list [MANIFEST...]
    harness variants build [MANIFEST...]   build (cached) and print the compression table
    harness report [DIR|URL] [--out PATH] [--run ID|latest|all] [--static png|svg] [--report-assets DIR]
    harness runs [--store URL]                     run history: id, time, git commit, tag, devices
    harness compare BASE NEW [--compare-fail EXPR...] [--store URL]
    harness export RUN|all --format json|csv|parquet [--samples] [--out FILE] [--store URL]
    harness store stats [--store URL] [--json]     rows, bytes, bytes per sample
    harness store prune --keep-samples 90d|30 [--dry-run] [--store URL]
    harness devices status [--store URL]           who holds which board, until when
    harness search MANIFEST --device NAME --trials N [--study NAME] [--store URL] [--report PATH]
    harness profile MANIFEST --device NAME --variant ID [--top N] [--store URL]   where the time goes

Run from anywhere inside a project: the defaults (devices/, models/, reports/harness.sqlite,
the variant cache) are the project root's (harness.project: the nearest folder up with a
devices/ inventory or a pyproject.toml declaring edge-harness). Commands that read the store
never create one: a missing store is "no store at PATH".
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from . import __version__, variant_build
from .errors import HarnessError
from .inventory import Inventory
from .project import project_root

# Defaults below are relative to the project root (harness.project), found by walking up
# from the current directory; paths a user types stay relative to where they typed them.
DEFAULT_STORE_FILE = Path("reports") / "harness.sqlite"


def _root() -> Path:
    return project_root()


def _inventory(args) -> Inventory:
    # A --devices-dir given must exist; the default may be missing (the built-in local device).
    if args.devices_dir is not None:
        return Inventory(args.devices_dir)
    default = _root() / "devices"
    return Inventory(default if default.is_dir() else None)


def _models_dir(args) -> Path | None:
    """The manifests directory, None when the default one is missing; a given one must exist."""
    if args.models_dir is not None:
        return Path(args.models_dir)
    default = _root() / "models"
    return default if default.is_dir() else None


def cmd_devices_list(args) -> int:
    from .devices import device_class

    inv = _inventory(args)
    rows, extra = [], {}
    for name in inv.names():
        try:
            spec = inv.get(name)
            rows.append((name, spec.kind, ",".join(spec.capabilities.runtimes), spec.description))
            extra[name] = device_class(spec.kind).inventory_lines(spec)  # e.g. a labgrid pool's places
        except HarnessError as exc:
            rows.append((name, "INVALID", "", str(exc)))
    width = max(len(r[0]) for r in rows)
    for name, kind, runtimes, text in rows:
        print(f"{name.ljust(width)}  {kind:8}  {runtimes:30}  {text}")
        for line in extra.get(name, []):
            print(line)
    return 1 if any(r[1] == "INVALID" for r in rows) else 0


def cmd_devices_show(args) -> int:
    spec = _inventory(args).get(args.name)
    print(json.dumps({**spec.public(), "settings": spec.settings, "source": spec.source,
                      "power": [m.get("meter") for m in spec.power]}, indent=2))
    return 0


def cmd_devices_check(args) -> int:
    from .devices import open_device

    spec = _inventory(args).get(args.name)
    models = _models_dir(args)
    variants = [(f"{m.name}/{r.name}", r.runtimes)
                for m in (variant_build.load_manifests(models) if models else []) for r in m.variants]
    with open_device(spec) as device:
        print(device.check(variants))
    return 0


def cmd_devices_clean(args) -> int:
    from .devices import open_device

    print(open_device(_inventory(args).get(args.name)).clean())
    return 0


def _manifests(args) -> list:
    if args.manifests:
        return [variant_build.load_manifest(Path(p)) for p in args.manifests]
    return variant_build.load_manifests(Path(args.models_dir) if args.models_dir else _root() / "models")


def cmd_variants_list(args) -> int:
    for manifest in _manifests(args):
        for recipe in manifest.variants:
            params = json.dumps(recipe.params, sort_keys=True) if recipe.params else ""
            print(f"{manifest.name}/{recipe.name}  {recipe.technique}  {recipe.file or ''} {params}")
    return 0


def cmd_variants_build(args) -> int:
    """Build every variant of every manifest; a failure is a row with its reason, never a stop."""
    from tqdm import tqdm

    from .modelinfo import facts
    from .variant_table import Failure, Reference, variant_table

    built, failed = [], 0
    for manifest in _manifests(args):
        rows = []
        for recipe in tqdm(manifest.variants, desc=manifest.name, unit="variant", file=sys.stderr,
                           disable=args.quiet):
            try:
                rows.append(variant_build.build_variant(manifest, recipe, _cache(args)))
            except HarnessError as exc:
                rows.append(Failure(manifest.name, recipe.name, recipe.technique, str(exc)))
                failed += 1
        try:
            base = facts(manifest.base, manifest.input_shapes)
        except HarnessError:
            base = None
        fp32 = next((v for v in rows if not isinstance(v, Failure) and v.technique == "fp32"), None)
        reference = None if base is None else Reference(
            base.size_bytes, base.weight_bytes, fp32.host_accuracy if fp32 else None)
        built += [(v, reference) for v in rows]
    for line in variant_table(built):
        print(line)
    return 1 if failed else 0


def _cache(args) -> Path:
    return Path(args.cache) if args.cache else _root() / variant_build.DEFAULT_CACHE


def cmd_report(args) -> int:
    from .report import write_report

    target = args.target
    if target is not None and "://" in target:
        url, out = target, Path(args.out) if args.out else _root() / "reports" / "report.html"
    else:
        folder = Path(target) if target is not None else _root() / "reports"
        url = f"sqlite:///{folder / DEFAULT_STORE_FILE.name}"
        out = Path(args.out) if args.out else folder / "report.html"
    store = open_existing_store(url)
    run_id = store.run_scope(args.run)  # an id, 'latest', a tag or 'all'
    # the manifests' accuracy budgets for the decision summary, where the models are here
    models = _models_dir(args)
    manifests = {m.name: m for m in variant_build.load_manifests(models)} if models else None
    path = write_report(store, out, run_id=run_id, manifests=manifests,
                        assets=Path(args.report_assets) if args.report_assets else None)
    print(f"report: {path}")
    if args.static:
        from .report import write_static

        for figure in write_static(store, out.with_name(out.stem + "-figures"), args.static, run_id=run_id):
            print(f"figure: {figure}")
    return 0


# ------------------------------------------------------------------ lab CI commands


def sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite URL (None for another backend or an in-memory one)."""
    if not url.startswith("sqlite:///"):
        return None
    database = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(database) if database not in ("", ":memory:") else None


def open_existing_store(url: str):
    """A store the commands only read (or prune): one that is not there is an error, never a
    new empty database made where the user happens to stand."""
    from .store import Store

    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise HarnessError(f"no store at {path}: run the suites first (pytest suites/), or pass --store URL")
    return Store(url)


def _store(args):
    return open_existing_store(args.store or f"sqlite:///{_root() / DEFAULT_STORE_FILE}")


def cmd_runs(args) -> int:
    rows = _store(args).runs()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no runs in the store")
        return 0
    print(f"{'run':12}  {'started (UTC)':19}  {'finished':8}  {'git':12}  {'rows':>5}  {'tag':16}  devices")
    for r in rows:
        git = (r["git_commit"] or "-")[:12]
        finished = "yes" if r["finished_at"] else "no"
        print(f"{r['id']:12}  {r['started_at'][:19]:19}  {finished:8}  {git:12}  {r['measurements']:>5}  "
              f"{(r['tag'] or '-')[:16]:16}  {','.join(r['devices']) or '-'}")
    return 0


def cmd_compare(args) -> int:
    from . import compare

    store = _store(args)
    gates = compare.parse_gates(args.compare_fail or ["p50:5%"])
    new = store.resolve_run(args.new)
    base = store.resolve_run(args.base, exclude=new)
    result = compare.compare_runs(store.measurements(run_id=base), store.measurements(run_id=new), gates,
                                  base_run=base, new_run=new,
                                  history=lambda key, metric: store.key_history(key, metric, exclude_run=new))
    if args.save:
        store.save_comparison(result, gates)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        for line in result.lines():
            print(line)
    return 1 if result.regressions else 0


def cmd_export(args) -> int:
    from .export import export

    store = _store(args)
    run_id = store.run_scope(args.run)
    scope = "every run" if run_id is None else f"run {run_id}"
    if args.format == "parquet" and not args.out:
        raise HarnessError("--format parquet writes a file: give --out FILE.parquet")
    if not args.out:
        try:
            export(store, sys.stdout, args.format, run_id=run_id, samples=args.samples)
            sys.stdout.flush()
        except BrokenPipeError:  # `harness export ... | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # as the Python docs advise
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # a reader never sees half an export
    try:
        if args.format == "parquet":
            count = export(store, str(partial), args.format, run_id=run_id, samples=args.samples)
        else:
            with open(partial, "w", encoding="utf-8", newline="") as stream:
                count = export(store, stream, args.format, run_id=run_id, samples=args.samples)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    print(f"{scope}: {count} measurements -> {out}", file=sys.stderr)
    return 0


def parse_keep(text: str) -> dict:
    """`--keep-samples`: a time (90d, 12w, 48h) or a number of newest runs (30, 30runs)."""
    time = re.fullmatch(r"(\d+(?:\.\d+)?)([hdw])", text.strip())
    if time:
        return {"keep_days": float(time.group(1)) * {"h": 1 / 24, "d": 1, "w": 7}[time.group(2)]}
    count = re.fullmatch(r"(\d+)\s*(?:runs?)?", text.strip())
    if count:
        return {"keep_runs": int(count.group(1))}
    raise HarnessError(f"--keep-samples: expected a time like 90d, 12w or 48h, or a number of runs like "
                       f"30, got {text!r}")


def _mb(n) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def cmd_store_stats(args) -> int:
    from .store import redact

    store = _store(args)
    figures = store.stats()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    per = figures["bytes_per_sample"]
    print(f"store {redact(store.url)}: {figures['runs']} runs, {figures['measurements']} measurements "
          f"({figures['with_samples']} with samples, {figures['pruned']} without)")
    print(f"samples: {figures['samples']} in {_mb(figures['sample_bytes'])}"
          + (f" ({per:.2f} bytes per sample)" if per is not None else ""))
    print(f"everything else (JSON): {_mb(figures['json_chars'])}; database: {_mb(figures['database_bytes'])}")
    return 0


def cmd_store_prune(args) -> int:
    keep = parse_keep(args.keep_samples)
    store = _store(args)
    before = store.stats()["database_bytes"]
    done = store.prune_samples(**keep, dry_run=args.dry_run)
    verb = "would drop" if args.dry_run else "dropped"
    print(f"{verb} the samples of {done['measurements']} measurements in {done['runs']} runs "
          f"({_mb(done['bytes'])}); every row, summary, verdict and provenance kept")
    if not args.dry_run and done["measurements"]:
        store.vacuum()
        print(f"database: {_mb(before)} -> {_mb(store.stats()['database_bytes'])}")
    return 0


def cmd_devices_status(args) -> int:
    from .lease import describe

    rows = _store(args).leases.all()
    if not rows:
        print("no board is leased")
    for row in rows:
        print(describe(row))
    return 0


def _add_lab_parsers(sub, devices_sub) -> None:
    def with_store(p):
        p.add_argument("--store", help=f"store URL (default: sqlite:///<project root>/{DEFAULT_STORE_FILE})")
        return p

    runs = with_store(sub.add_parser("runs", help="run history: id, time, git commit, tag, devices"))
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.set_defaults(func=cmd_runs)

    cmp = with_store(sub.add_parser("compare", help="compare two runs with statistical regression gates"))
    cmp.add_argument("base", help="baseline: a run id (or unique prefix), 'latest' or a run tag")
    cmp.add_argument("new", help="the run to judge: a run id (or unique prefix), 'latest' or a run tag")
    cmp.add_argument("--compare-fail", action="append", metavar="EXPR",
                     help="gate, repeatable: p50:5%%, p99:5%%, mean:5%%, energy:10%%, memory:5%%, "
                          "accuracy:0.5pt (default p50:5%%)")
    cmp.add_argument("--save", action="store_true", help="store the verdicts (shown in the report)")
    cmp.add_argument("--json", action="store_true", help="machine-readable output")
    cmp.set_defaults(func=cmd_compare)

    export = with_store(sub.add_parser("export", help="measurements as JSON, CSV or Parquet, streamed"))
    export.add_argument("run", help="a run id (or unique prefix), 'latest', a run tag or 'all'")
    export.add_argument("--format", choices=("json", "csv", "parquet"), default="json",
                        help="parquet needs pyarrow (the 'export' extra)")
    export.add_argument("--samples", action="store_true", help="include every per-inference sample")
    export.add_argument("--out", help="file to write (default: stdout; parquet needs a file)")
    export.set_defaults(func=cmd_export)

    store_parser = sub.add_parser("store", help="the store's size and retention")
    ssub = store_parser.add_subparsers(dest="action", required=True)
    stats = with_store(ssub.add_parser("stats", help="rows, bytes and bytes per sample"))
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=cmd_store_stats)
    prune = with_store(ssub.add_parser(
        "prune", help="drop old per-inference samples; keep every summary, verdict and provenance"))
    prune.add_argument("--keep-samples", required=True, metavar="AGE|RUNS",
                       help="keep the samples of runs started within AGE (90d, 12w, 48h) or of the "
                            "newest RUNS runs (30)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be dropped; change nothing")
    prune.set_defaults(func=cmd_store_prune)

    status = with_store(devices_sub.add_parser("status", help="which board is leased, by whom, until when"))
    status.set_defaults(func=cmd_devices_status)


def cmd_search(args) -> int:
    """Search the manifest's search: space on one device (harness.search; docs/search.md)."""
    from .search import cli as search_cli

    return search_cli.run(args)


def _add_search_parser(sub) -> None:
    from .search.cli import add_arguments

    p = sub.add_parser("search", help="search the compression space on a device (optuna, multi-objective)")
    add_arguments(p)
    p.set_defaults(func=cmd_search)


def cmd_profile(args) -> int:
    from .profile_cli import run

    return run(args)


def _add_profile_parser(sub) -> None:
    from .profile_cli import add_arguments

    p = sub.add_parser("profile", help="per-operator profile of one variant on a device, with its roofline")
    add_arguments(p)
    p.set_defaults(func=cmd_profile)


def _add_common_options(parser, default):
    parser.add_argument("--devices-dir", default=default,
                        help="inventory directory (default: <project root>/devices, when it exists)")
    parser.add_argument("--models-dir", default=default,
                        help="model manifests directory (default: <project root>/models)")


def _common_options_everywhere(parser) -> None:
    """--devices-dir and --models-dir also after a subcommand (`harness devices check rpi5
    --devices-dir lab/`), as pytest takes its options anywhere; there they default to
    SUPPRESS so they never overwrite one given before the subcommand."""
    for action in parser._actions:   # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for subparser in set(action.choices.values()):
                if not any("--devices-dir" in a.option_strings for a in subparser._actions):
                    _add_common_options(subparser, default=argparse.SUPPRESS)
                _common_options_everywhere(subparser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Benchmark compressed models on edge devices.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    _add_common_options(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True)

    devices = sub.add_parser("devices", help="the device inventory")
    dsub = devices.add_subparsers(dest="action")
    devices.set_defaults(func=cmd_devices_list)
    dsub.add_parser("list", help="list devices").set_defaults(func=cmd_devices_list)
    show = dsub.add_parser("show", help="show one device's validated spec")
    show.add_argument("name")
    show.set_defaults(func=cmd_devices_show)
    for name, func, text in (("check", cmd_devices_check, "connect and report what the device can run"),
                             ("clean", cmd_devices_clean, "remove the harness work directory from a board")):
        p = dsub.add_parser(name, help=text)
        p.add_argument("name")
        p.set_defaults(func=func)

    variants = sub.add_parser("variants", help="model variants")
    vsub = variants.add_subparsers(dest="action", required=True)
    for name, func in (("list", cmd_variants_list), ("build", cmd_variants_build)):
        p = vsub.add_parser(name)
        p.add_argument("manifests", nargs="*", help="model manifests (default: every models/*.yaml)")
        p.add_argument("--cache", help=f"variant cache directory (default: <project root>/{variant_build.DEFAULT_CACHE})")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=func)

    report = sub.add_parser("report", help="rebuild the HTML report from the store")
    report.add_argument("target", nargs="?",
                        help="a reports directory holding harness.sqlite, or a store URL "
                             "(default: <project root>/reports)")
    report.add_argument("--out", help="HTML file to write (default: <dir>/report.html)")
    report.add_argument("--run", default="latest",
                        help="a run id, 'latest', a run tag or 'all' (default: latest, the newest run)")
    report.add_argument("--static", choices=("png", "svg"),
                        help="also write every figure as a static image (kaleido + Chromium)")
    report.add_argument("--report-assets", metavar="DIR",
                        help="write plotly.js once into DIR and load it from there (many reports share it); "
                             "default: inlined in the page")
    report.set_defaults(func=cmd_report)
    _add_lab_parsers(sub, dsub)
    _add_search_parser(sub)
    _add_profile_parser(sub)
    _common_options_everywhere(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `harness compare ... | head`: the reader has what it wanted; end quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
