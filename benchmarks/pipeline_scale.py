"""ExampleGen at scale: the pandas run in one process against the Beam run, in one session.

For synthetic sets of about ``--events`` events each (users = events / 20, leads = events /
50, 30 days, as the 1M-event set of docs/benchmarks.md), every implementation runs in a
fresh child process on the default window (14 spans, 2 eval days, 4 negatives, 49 eval
negatives) and writes its Split-* folders:

- ``pandas``: one process, pandas joins (`interactions.build_examples`), one TFRecord file;
- ``beam``: the Beam pipeline with the default ``beam_args`` (DirectRunner in memory);
- ``beam-mp``: the same with ``--direct_running_mode=multi_processing --direct_num_workers=2``;
- ``beam-state`` (``--history`` only): the Beam run of the newest day from the history state
  the previous day's run left (that run is not timed), reading the window's spans only.

The parent polls the child's process tree every 0.2 s and prints, per set and
implementation: wall time, the launcher's peak RSS and the largest worker's, the peak of
their sum, the cost per million events, and the log-log slope of time against events (1.0:
linear). ``--history`` adds the daily run's time against the history length: one set of the
longest history (the users and leads of 30 days at ``--per-day`` events a day), of which
each length keeps its newest 30, 90, 180 days, so every length has the same window (the
same 14 span files) and only the history before it differs; with the examples written (the
same for every length) and the size of the state.

``--pipeline`` runs the whole pipeline (the default configuration, `aiqleads pipeline run`'s
local runner, to a pushed model) on sets of that many events, and prints per component its
wall time (from MLMD) and, from the same polling, the launcher's peak RSS while the component
ran, the largest other process's and the peak of their sum; then the whole run's, the cost
per million events and the slope. With ``--evaluator`` each run is followed by the
Evaluator's TFMA analysis of the pushed model on the run's eval split, twice, each in a fresh
child: with TFMA's default extractors (every feature of every example reaches the per-user
grouping) and with the pipeline's (`pipeline.eval_extractors`: only what the metrics and
slices read); wall time and peak RSS of each and their ratios, and across the sizes the
peak RSS each further eval example adds.

    .venv/bin/python benchmarks/pipeline_scale.py [--events 100000,1000000]
        [--impl pandas,beam,beam-mp,beam-state] [--history 30,90,180] [--per-day 3000]
        [--pipeline 100000,1000000,3000000] [--beam-args="--direct_running_mode=..."]
        [--evaluator]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMPLEMENTATIONS = ("pandas", "beam", "beam-mp", "beam-state")
CARRIED = "beam-state"
MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
WINDOW, EVAL_DAYS, NEGATIVES, EVAL_NEGATIVES = 14, 2, 4, 49


def _synth(
    out: pathlib.Path, events: int, days: int = 30, world_events: int | None = None
) -> pathlib.Path:
    """A default-preset set of about ``events`` events over ``days`` days; its users and
    leads scale with ``world_events`` (default: ``events``)."""
    from aiqleads.data import synth

    size = world_events or events
    users, leads = max(100, size // 20), max(50, size // 50)
    cfg = synth.preset("default", users=users, leads=leads, events=events, days=days)
    synth.generate(cfg, out, overwrite=True)
    return out


def _worker(impl: str, data: str, out: str, state: str = "", yesterday: bool = False) -> None:
    """The child: one ExampleGen run (of the day before the newest with ``yesterday``);
    prints its counts as JSON on the last line."""
    import apache_beam as beam

    from aiqleads.data import uris
    from components.example_gen import beam_examples, interactions, tf_examples, window

    sampling = interactions.SamplingConfig(negatives_per_positive=NEGATIVES)
    as_of = uris.list_spans(data)[-2] if yesterday else None
    days = window.select_window(data, WINDOW, as_of)
    if impl == "pandas":
        window.validate_window(data, days)
        frame = interactions.build_examples(data, days, EVAL_DAYS, sampling, EVAL_NEGATIVES)
        counts = {}
        for split in interactions.SPLITS:
            records = tf_examples.encode(frame[frame[interactions.SPLIT] == split])
            tf_examples.write_split(records, f"{out}/Split-{split}")
            counts[split] = len(records)
    else:
        argv = MULTI_PROCESS if impl == "beam-mp" else IN_MEMORY
        run = beam_examples.plan(data, days, EVAL_DAYS, sampling, EVAL_NEGATIVES, state_root=state)
        if impl == CARRIED and not yesterday and run.carried is None:
            raise SystemExit("no history state to start from")
        counts = beam_examples.generate(beam.Pipeline(argv=argv), run, out)
    print(json.dumps(counts), flush=True)


def _pipeline_worker(data: str, runs: str, beam_args: str) -> None:
    """The child of ``--pipeline``: one whole run to a pushed model; progress lines on
    stdout, then its component timings and the pushed version as JSON on the last line."""
    from pipeline import config, local_runner

    overrides: dict[str, object] = {
        "data_root": data,
        "runs_dir": runs,
        "serving_model_dir": f"{runs}/serving_models/{config.MODEL_NAME}",
    }
    if beam_args:
        overrides["beam_args"] = tuple(beam_args.split())
    cfg = config.load_config().with_overrides(**overrides)
    summary = local_runner.run(cfg, stage="push", say=lambda line: print(line, flush=True))
    timings = [[r.component, r.state, r.seconds] for r in summary.runs]
    print(json.dumps({"runs": timings, "pushed": summary.pushed_to or ""}), flush=True)


def _evaluate_worker(model: str, examples: str, out: str, defaults: bool) -> None:
    """The child of ``--evaluator``: the gate's TFMA analysis (the Evaluator's eval config,
    no baseline) of ``model`` on ``examples``; the eval example count as JSON."""
    from pipeline import config, gate_check

    cfg = config.load_config()
    metrics = gate_check.evaluate(model, examples, cfg.evaluator, out, trimmed=not defaults)
    print(json.dumps({"examples": int(metrics["example_count"])}), flush=True)


def _eval_split(runs: pathlib.Path) -> str:
    """The eval split ExampleGen wrote in the whole run under ``runs`` (a glob)."""
    from components.example_gen import recorded
    from pipeline import registry, run_report

    sqlite = sorted((runs / "metadata").glob("*.sqlite"))[0]
    found = [
        a
        for a in registry.artifacts(run_report.connect(sqlite), "Examples")
        if recorded.WINDOW_LAST_PROPERTY in a.custom_properties
    ]
    return f"{max(found, key=lambda a: a.id).uri}/Split-eval/*"


def _compare_evaluators(
    runs: pathlib.Path, pushed: str, scratch: pathlib.Path
) -> dict[str, dict[str, float]]:
    """TFMA with its default extractors against the pipeline's, on the run's model and
    eval split, one fresh child each; prints both and their ratio."""
    split = _eval_split(runs)
    rows = {}
    for name, flags in (("defaults", ("--defaults",)), ("trimmed", ())):
        extra = ("--model", pushed, "--examples", split, *flags)
        rows[name] = r = _measure("evaluate", runs, scratch, extra, label=name)
        print(
            f"    evaluator, {name:<8} {r['seconds']:>7.1f} s, peak RSS launcher "
            f"{r['launcher_mib']:>6.0f} MiB, sum {r['sum_mib']:>6.0f} MiB "
            f"({int(r['examples']):,} eval examples)",
            flush=True,
        )
    d, t = rows["defaults"], rows["trimmed"]
    print(
        f"    trimmed against defaults: time {t['seconds'] / d['seconds']:.2f}, peak RSS "
        f"{t['sum_mib'] / d['sum_mib']:.2f}",
        flush=True,
    )
    return rows


def _print_marginal(compared: list[dict[str, dict[str, float]]]) -> None:
    """Between the smallest and the largest eval set: the peak RSS each further eval example
    adds, per extractor set, and the eval set whose analysis that would fit in 20 GiB."""
    low, high = compared[0], compared[-1]
    for name in ("defaults", "trimmed"):
        a, b = low[name], high[name]
        added = b["examples"] - a["examples"]
        if added <= 0:
            return
        per = (b["sum_mib"] - a["sum_mib"]) * 2**20 / added
        fixed = a["sum_mib"] * 2**20 - per * a["examples"]
        fits = (20 * 2**30 - fixed) / per if per > 0 else math.inf
        print(
            f"evaluator, {name}: {per:,.0f} bytes of peak RSS per further eval example "
            f"(from {int(a['examples']):,} to {int(b['examples']):,}); 20 GiB would hold "
            f"about {fits / 1e6:.1f}M eval examples",
            flush=True,
        )


def _measure_pipeline(data: pathlib.Path, runs: pathlib.Path, beam_args: str) -> dict:
    """One whole pipeline run in a child; the process tree's RSS polled every 0.2 s and
    attributed to the component running (the child's progress lines say which)."""
    log = runs.parent / f"{runs.name}.log"
    cmd = [sys.executable, __file__, "--worker", "pipeline", "--data", str(data)]
    cmd += ["--out", str(runs), f"--beam-args={beam_args}"]  # "=": the value starts with "--"
    current = ["(start)"]
    lines: list[str] = []

    def follow(stream) -> None:
        for line in stream:
            lines.append(line.rstrip())
            if line.startswith("[") and line.rstrip().endswith(" ..."):
                current[0] = line.split("] ", 1)[1].rsplit(" ...", 1)[0]
                print(f"    {line.rstrip()}", flush=True)

    started = time.perf_counter()
    per: dict[str, dict[str, float]] = {}
    with log.open("w") as sink:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sink, text=True)
        reader = threading.Thread(target=follow, args=(child.stdout,), daemon=True)
        reader.start()
        root = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            launcher, largest, total = 0, 0, 0
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                total += rss
                if proc.pid == child.pid:
                    launcher = rss
                else:
                    largest = max(largest, rss)
            peak = per.setdefault(current[0], {"launcher": 0, "worker": 0, "sum": 0})
            peak["launcher"] = max(peak["launcher"], launcher)
            peak["worker"] = max(peak["worker"], largest)
            peak["sum"] = max(peak["sum"], total)
            time.sleep(0.2)
        reader.join(timeout=10)
    wall = time.perf_counter() - started
    if child.returncode != 0 or not lines or not lines[-1].startswith("{"):
        # What was measured up to the failure (an out-of-memory kill is a result too).
        for component, peak in per.items():
            print(
                f"    {component}: launcher {peak['launcher'] / 2**20:.0f} MiB, largest other "
                f"{peak['worker'] / 2**20:.0f} MiB, sum {peak['sum'] / 2**20:.0f} MiB",
                flush=True,
            )
        tail = log.read_text().splitlines()[-5:]
        raise SystemExit(
            f"the pipeline on {data} failed (exit {child.returncode}) after {wall:.0f} s "
            f"in {current[0]}: {tail}"
        )
    result = json.loads(lines[-1])
    return {"seconds": wall, "runs": result["runs"], "pushed": result["pushed"], "peaks": per}


def _print_pipeline(events: int, r: dict) -> None:
    mib = 2**20
    print(f"{'component':>29} {'state':>9} {'s':>8} {'launcher':>9} {'worker':>8} {'sum':>8}")
    for component, state, seconds in r["runs"]:
        peak = r["peaks"].get(component, {"launcher": 0, "worker": 0, "sum": 0})
        print(
            f"{component:>29} {state:>9} {seconds:>8.1f} {peak['launcher'] / mib:>8.0f}M "
            f"{peak['worker'] / mib:>7.0f}M {peak['sum'] / mib:>7.0f}M"
        )
    top = {k: max(p[k] for p in r["peaks"].values()) / mib for k in ("launcher", "worker", "sum")}
    print(
        f"{events:,} events: whole run {r['seconds']:.1f} s ({r['seconds'] / events * 1e6:.1f} s "
        f"per M events), peak RSS launcher {top['launcher']:.0f} MiB, largest other process "
        f"{top['worker']:.0f} MiB, sum {top['sum']:.0f} MiB; pushed: {r['pushed'] or 'nothing'}",
        flush=True,
    )


def _measure(
    impl: str,
    data: pathlib.Path,
    scratch: pathlib.Path,
    extra: tuple[str, ...] = (),
    label: str = "",
) -> dict[str, float]:
    name = f"{impl}-{label}" if label else impl
    out = scratch / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    log = scratch / f"{name}.log"
    cmd = [sys.executable, __file__, "--worker", impl, "--data", str(data), "--out", str(out)]
    cmd += extra
    started = time.perf_counter()
    with log.open("w") as sink:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sink, text=True)
        root = psutil.Process(child.pid)
        peaks: dict[int, int] = {}
        total_peak = 0
        while child.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                peaks[proc.pid] = max(peaks.get(proc.pid, 0), rss)
                total += rss
            total_peak = max(total_peak, total)
            time.sleep(0.2)
        stdout = child.stdout.read() if child.stdout else ""
    wall = time.perf_counter() - started
    if child.returncode != 0:
        tail = log.read_text().splitlines()[-5:]
        raise SystemExit(f"{impl} on {data} failed (exit {child.returncode}): {tail}")
    counts = json.loads(stdout.strip().splitlines()[-1])
    workers = [v for pid, v in peaks.items() if pid != child.pid]
    shutil.rmtree(out, ignore_errors=True)
    return {
        "seconds": wall,
        "launcher_mib": peaks.get(child.pid, 0) / 2**20,
        "worker_mib": (max(workers) / 2**20) if workers else 0.0,
        "processes": len(peaks),
        "sum_mib": total_peak / 2**20,
        "examples": sum(counts.values()),
    }


def _newest_days(full: pathlib.Path, out: pathlib.Path, days: int) -> pathlib.Path:
    """A data set of ``full``'s tables and its newest ``days`` spans (links, not copies)."""
    out.mkdir(parents=True)
    for entry in full.iterdir():
        if entry.name != "spans":
            (out / entry.name).symlink_to(entry)
    (out / "spans").mkdir()
    for span in sorted((full / "spans").iterdir())[-days:]:
        (out / "spans" / span.name).symlink_to(span)
    return out


def _events_in(data: pathlib.Path) -> int:
    total = 0
    for path in (data / "spans").glob("*/events.csv"):
        with path.open("rb") as fh:
            total += sum(1 for _ in fh) - 1
    return total


def _counts(text: str, flag: str, low: int, high: int) -> list[int]:
    """A comma-separated list of whole numbers in [low, high], or a clear exit."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"{flag} takes whole numbers separated by commas, got {text!r}") from None
    bad = [v for v in values if not low <= v <= high]
    if bad:
        raise SystemExit(f"{flag} values must be in {low}..{high}, got {bad}")
    return values


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of log(seconds) against log(events)."""
    if len(points) < 2:
        return math.nan
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        default=None,
        help="ExampleGen alone (default 100000,1000000 without --history or --pipeline)",
    )
    parser.add_argument("--impl", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--history", default="", help="history lengths in days, e.g. 30,90,180")
    parser.add_argument("--per-day", type=int, default=3000, help="events a day (--history)")
    parser.add_argument(
        "--pipeline", default="", help="event counts for whole pipeline runs, e.g. 100000,3000000"
    )
    parser.add_argument(
        "--beam-args",
        default="",
        help="the whole runs' beam_args, as --beam-args=\"...\" (default: the configuration's)",
    )
    parser.add_argument(
        "--evaluator",
        action="store_true",
        help="after each --pipeline run, TFMA's default extractors against the pipeline's",
    )
    parser.add_argument(
        "--worker", choices=(*IMPLEMENTATIONS, "pipeline", "evaluate"), help=argparse.SUPPRESS
    )
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--examples", help=argparse.SUPPRESS)
    parser.add_argument("--defaults", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--state", default="", help=argparse.SUPPRESS)
    parser.add_argument("--yesterday", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "pipeline":
        _pipeline_worker(args.data, args.out, args.beam_args)
        return
    if args.worker == "evaluate":
        _evaluate_worker(args.model, args.examples, args.out, args.defaults)
        return
    if args.worker:
        _worker(args.worker, args.data, args.out, args.state, args.yesterday)
        return
    impls = [i for i in args.impl.split(",") if i]
    unknown = sorted(set(impls) - set(IMPLEMENTATIONS))
    if unknown:
        raise SystemExit(f"unknown --impl {unknown}; one of {list(IMPLEMENTATIONS)}")
    if args.events is None:
        args.events = "" if (args.history or args.pipeline) else "100000,1000000"
    sizes = _counts(args.events, "--events", 1_000, 50_000_000)
    history = _counts(args.history, "--history", 15, 3_650)
    whole = _counts(args.pipeline, "--pipeline", 1_000, 50_000_000)
    if args.evaluator and not whole:
        raise SystemExit("--evaluator compares on the models of --pipeline runs: give --pipeline")
    if not 1 <= args.per_day <= 1_000_000:
        raise SystemExit(f"--per-day must be in 1..1000000, got {args.per_day}")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="aiqleads-scale-"))
    header = (
        f"{'set':>14} {'impl':>8} {'s':>8} {'s/M ev':>8} {'launcher':>9} "
        f"{'worker':>8} {'sum':>8} {'procs':>5} {'examples':>9}"
    )
    try:
        results: dict[str, list[tuple[int, float]]] = {i: [] for i in impls}
        if sizes and CARRIED in impls:
            print(f"({CARRIED} is measured with --history only)")
        if sizes:
            print(header, flush=True)
        for size in sizes:
            data = _synth(scratch / f"data-{size}", size)
            events = _events_in(data)
            for impl in impls:
                if impl == CARRIED:
                    continue
                r = _measure(impl, data, scratch)
                results[impl].append((events, r["seconds"]))
                print(
                    f"{events:>14,} {impl:>8} {r['seconds']:>8.1f} "
                    f"{r['seconds'] / events * 1e6:>8.1f} {r['launcher_mib']:>8.0f}M "
                    f"{r['worker_mib']:>7.0f}M {r['sum_mib']:>7.0f}M {r['processes']:>5} "
                    f"{r['examples']:>9,}",
                    flush=True,
                )
            shutil.rmtree(data, ignore_errors=True)
        for impl in [i for i in impls if i != CARRIED] if sizes else ():
            print(f"log-log slope of time against events, {impl}: {_slope(results[impl]):.2f}")
        if sizes and len(impls) > 1 and "pandas" in impls:
            base = dict(results["pandas"])
            for impl in [i for i in impls if i != CARRIED]:
                ratios = [f"{s / base[e]:.2f}" for e, s in results[impl] if e in base]
                print(f"time against pandas, {impl}: {' / '.join(ratios)}")
        if history:
            print(f"\ndaily run ({WINDOW}-span window) against history length", flush=True)
            columns = " ".join(f"{i:>10}" for i in impls)
            state_columns = f" {'launcher':>9} {'state':>8}" if CARRIED in impls else ""
            print(f"{'days':>6} {'events':>10} {'examples':>9} {columns}{state_columns}")
            longest = max(history)
            full = _synth(
                scratch / "hist-full",
                args.per_day * longest,
                days=longest,
                world_events=args.per_day * 30,
            )
            for days in history:
                # The same window (the newest 14 spans of one set); only the history differs.
                data = _newest_days(full, scratch / f"hist-{days}", days)
                seconds, extra, examples = [], "", 0
                for impl in impls:
                    if impl != CARRIED:
                        r = _measure(impl, data, scratch)
                        seconds.append(r["seconds"])
                        examples = int(r["examples"])
                        continue
                    state = scratch / f"state-{days}"
                    flags = ("--state", str(state))
                    _measure(impl, data, scratch, (*flags, "--yesterday"))  # leaves the state
                    size = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
                    r = _measure(impl, data, scratch, flags)
                    seconds.append(r["seconds"])
                    examples = int(r["examples"])
                    extra = f" {r['launcher_mib']:>8.0f}M {size / 2**20:>7.1f}M"
                    shutil.rmtree(state, ignore_errors=True)
                print(
                    f"{days:>6} {_events_in(data):>10,} {examples:>9,} "
                    + " ".join(f"{s:>9.1f}s" for s in seconds)
                    + extra,
                    flush=True,
                )
                shutil.rmtree(data, ignore_errors=True)
        points: list[tuple[int, float]] = []
        compared: list[dict[str, dict[str, float]]] = []
        for size in whole:
            data = _synth(scratch / f"whole-{size}", size)
            events = _events_in(data)
            print(f"\nwhole pipeline on {events:,} events ({data})", flush=True)
            r = _measure_pipeline(data, scratch / f"runs-{size}", args.beam_args)
            _print_pipeline(events, r)
            points.append((events, r["seconds"]))
            if args.evaluator and r["pushed"]:
                compared.append(_compare_evaluators(scratch / f"runs-{size}", r["pushed"], scratch))
            shutil.rmtree(scratch / f"runs-{size}", ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)
        if len(points) > 1:
            print(f"log-log slope of the whole run's time against events: {_slope(points):.2f}")
        if len(compared) > 1:
            _print_marginal(sorted(compared, key=lambda c: c["trimmed"]["examples"]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
