"""Recommendation quality: the model vs per-region popularity vs item-item CF, one time split.

    .venv/bin/python benchmarks/quality.py [--data DIR] [--eval-days 5] [--train-steps 3000]

Every method learns from the spans before the last ``--eval-days`` days and is evaluated on
the engagements of those days (users with at least one), over the catalogue active at the
cut-off. Two protocols:

- full: rank the whole active catalogue (the model through its ``recommend`` path:
  dot-product shortlist then the full scorer);
- sampled: 1 held-out positive (the user's strongest engagement) + 99 random catalogue
  negatives per user; every method ranks those 100.

Prints HR@k, NDCG@k and recall@k per method and protocol, and ratios against popularity.
The model is trained by the project's own path: ExampleGen's ``generate``, the Transform
analysis of ``preprocessing_fn`` (``local_transform``) and the Trainer's ``train``.

On synthetic data (``ground_truth/user_preferences.csv`` present) an ``oracle`` row is the
ceiling: it ranks by each user's *hidden* preferences with the generator's own choice
model (candidate draw x match score), which no method that learns from events can know.

``--work DIR`` keeps the examples and the Transform output there and reuses them on the
next run with the same data and split (for model experiments); ``--hp key=value``
overrides a `model.ModelConfig` field (e.g. ``--hp l2=1e-4 --hp shortlist=300``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import sys
import tempfile
import time

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPLITS = ("train", "eval")
LEVELS = {"view": 1.0, "click": 2.0, "inquiry": 3.0, "purchase": 4.0}


def say(msg: str) -> None:
    print(f"[quality {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ground_truth(events: pd.DataFrame, catalogue_ids: set) -> dict[str, dict[str, float]]:
    """user -> {lead: strongest engagement level} over the evaluation days."""
    ev = events[events["lead_id"].isin(catalogue_ids)]
    gains = ev.assign(g=ev["event_type"].map(LEVELS)).groupby(["user_id", "lead_id"])["g"].max()
    out: dict[str, dict[str, float]] = {}
    for (user, lead), g in gains.items():
        out.setdefault(user, {})[lead] = float(g)
    return out


def _prepare(data: pathlib.Path, work: pathlib.Path, eval_days: int, seed: int, sampling: dict):
    """(transform paths, window days): ExampleGen + Transform, reused when already in ``work``."""
    from aiqleads import layout
    from components.example_gen import executor, interactions
    from components.trainer import local_transform

    days = layout.list_spans(data)
    key = {"data": str(data.resolve()), "eval_days": eval_days, "seed": seed, "days": len(days)}
    key["sampling"] = sampling
    done = work / "prepared.json"
    tft_dir = work / "tft"
    if done.is_file() and json.loads(done.read_text()) == key:
        say(f"reusing examples and Transform output in {work}")
        paths = {"transform_graph": str(tft_dir / "transform_graph")}
        paths.update({s: str(tft_dir / "transformed_examples" / f"Split-{s}") for s in SPLITS})
        return paths, days
    result = executor.generate(
        str(data),
        str(work / "examples"),
        window_spans=len(days),
        eval_days=eval_days,
        sampling=interactions.SamplingConfig(seed=seed, **sampling),
    )
    say(f"examples: {result.counts}")
    paths = local_transform.transform_splits(str(work / "examples"), str(tft_dir))
    say("transform: done")
    done.write_text(json.dumps(key))
    return paths, result.window


def train_model(data, work, eval_days: int, steps: int, seed: int, hp: dict, sampling: dict):
    from tfx.components.trainer.fn_args_utils import FnArgs

    from components.example_gen import interactions
    from components.trainer import run_fn

    paths, window = _prepare(data, work, eval_days, seed, sampling)
    cut = window[-1] - dt.timedelta(days=eval_days)
    fn_args = FnArgs(
        train_files=[paths["train"]],
        eval_files=[paths["eval"]],
        transform_output=paths["transform_graph"],
        serving_model_dir=str(work / "model"),
        train_steps=steps,
        eval_steps=50,
        custom_config={"data_root": str(data), "as_of": cut.isoformat(), "seed": seed, **hp},
    )
    model, tft_output, metrics = run_fn.train(fn_args)
    say(f"trained {steps} steps: " + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    module = run_fn.build_export(
        model,
        tft_output,
        str(data),
        cut,
        sampling=interactions.SamplingConfig(seed=seed, **sampling),
        window_spans=None,  # the examples came from every span up to the cut-off
        prior_weight=model.cfg.sampling_prior_weight,
    )
    return module, cut, window


def evaluate(args: argparse.Namespace) -> None:
    from components.baselines.item_knn import ItemKNN
    from components.baselines.metrics import HIT_RATE, NDCG, RECALL, ranking_metrics
    from components.baselines.popularity import RegionalPopularity
    from components.example_gen import raw_tables, snapshots
    from transforms import features as f

    data = pathlib.Path(args.data)
    if args.work:
        work = pathlib.Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = pathlib.Path(tempfile.mkdtemp(prefix="aiqleads-quality-"))
    started = time.perf_counter()
    module, cut, window = train_model(
        data, work, args.eval_days, args.train_steps, args.seed, args.hp, args.sampling
    )
    train_time = time.perf_counter() - started
    catalogue = snapshots.load_catalogue(data, cut)
    lead_ids = catalogue[f.LEAD_ID].to_numpy()
    row_of = {lead: i for i, lead in enumerate(lead_ids)}
    train_events = raw_tables.read_events(data, raw_tables.spans_up_to(data, cut))
    eval_days = [d for d in window if d > cut]
    truth = ground_truth(raw_tables.read_events(data, eval_days), set(lead_ids))
    rng = np.random.default_rng(args.seed)
    users = sorted(truth)
    if len(users) > args.max_users:
        users = sorted(rng.choice(users, args.max_users, replace=False).tolist())
    say(f"evaluating {len(users)} users over {len(lead_ids)} active leads, cut-off {cut}")

    pop = RegionalPopularity(lead_ids, catalogue[f.REGION].to_numpy()).fit(train_events)
    knn = ItemKNN(lead_ids).fit(train_events)
    tie = 1e-6 * pop.scores  # break CF ties (cold users) by popularity
    scorers = {"popularity": pop.score, "item_cf": lambda u: knn.score(u) + tie}
    oracle = HiddenPreferenceOracle.load(data, catalogue)
    if oracle is not None:
        scorers["oracle"] = oracle.score

    results: dict[tuple[str, str], list[dict]] = {}
    k = args.k
    batch = 64
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        nan = np.full(len(chunk), np.nan, np.float32)
        out = module.recommend(
            user_id=np.array(chunk), latitude=nan, longitude=nan, k=np.full(len(chunk), k, np.int32)
        )
        ranked = [[x.decode() for x in row] for row in out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()]
        # Sampled protocol: 1 positive + N negatives per user.
        cands = []
        for user in chunk:
            gains = truth[user]
            best = max(gains.values())
            positive = sorted(x for x, g in gains.items() if g == best)[0]
            pool = np.array([row_of[x] for x in lead_ids if x not in gains])
            neg = rng.choice(pool, min(args.negatives, len(pool)), replace=False)
            cands.append(np.concatenate([[row_of[positive]], neg]))
        cands = np.stack(cands)
        model_scores = module.score_pairs(np.array(chunk), cands)
        for i, user in enumerate(chunk):
            gains = truth[user]
            pos = lead_ids[cands[i, 0]]
            sampled_gain = {pos: gains[pos]}
            results.setdefault(("model", "full"), []).append(ranking_metrics(ranked[i], gains, k))
            order = lead_ids[cands[i][np.argsort(-model_scores[i], kind="stable")]]
            results.setdefault(("model", "sampled"), []).append(
                ranking_metrics(list(order), sampled_gain, k)
            )
            for name, scorer in scorers.items():
                s = scorer(user)
                full = list(lead_ids[np.argsort(-s, kind="stable")[:k]])
                results.setdefault((name, "full"), []).append(ranking_metrics(full, gains, k))
                sub = lead_ids[cands[i][np.argsort(-s[cands[i]], kind="stable")]]
                results.setdefault((name, "sampled"), []).append(
                    ranking_metrics(list(sub), sampled_gain, k)
                )
        say(f"users {min(start + batch, len(users))}/{len(users)}")

    print()
    print(f"data: {data}  users: {len(users)}  catalogue: {len(lead_ids)}  k={k}")
    hp = " ".join(f"{k}={v}" for k, v in {**args.hp, **args.sampling}.items()) or "defaults"
    print(f"model: train+transform+export {train_time:.0f} s, {args.train_steps} steps, {hp}")
    header = (
        f"{'protocol':<8} {'method':<11} {'HR@k':>7} {'NDCG@k':>7} {'recall@k':>8} {'NDCG/pop':>8}"
    )
    print(header)
    for protocol in ("full", "sampled"):
        base = np.mean([r[NDCG] for r in results[("popularity", protocol)]])
        for name in ("model", "popularity", "item_cf", "oracle"):
            if (name, protocol) not in results:
                continue
            rows = results[(name, protocol)]
            m = {key: float(np.mean([r[key] for r in rows])) for key in (HIT_RATE, NDCG, RECALL)}
            ratio = m[NDCG] / base if base > 0 else float("nan")
            print(
                f"{protocol:<8} {name:<11} {m[HIT_RATE]:7.3f} {m[NDCG]:7.3f} "
                f"{m[RECALL]:8.3f} {ratio:8.2f}"
            )


class HiddenPreferenceOracle:
    """Ranks by the synthetic users' hidden preferences with the generator's choice model.

    Expected views of a lead ~ P(drawn as a candidate) x (match + 0.02)^(1/T): candidates
    come from the home region (uniformly) or the metro, and the choice among them is a
    softmax of log(match + 0.02) / T (`aiqleads.data.synth_behaviour`).
    """

    def __init__(self, prefs: pd.DataFrame, catalogue: pd.DataFrame) -> None:
        from aiqleads.data import synth_behaviour as sb
        from transforms import features as f

        self.sb = sb
        self.prefs = prefs
        self.region = catalogue[f.REGION].astype(str).to_numpy()
        self.metro = np.array([r.rsplit("-", 1)[0] for r in self.region])
        self.types = catalogue[f.PROPERTY_TYPE].astype(str).to_numpy()
        self.price = pd.to_numeric(catalogue[f.PRICE], errors="coerce").to_numpy(float)
        self.lat = catalogue[f.LEAD_LATITUDE].to_numpy(float)
        self.lon = catalogue[f.LEAD_LONGITUDE].to_numpy(float)

    @classmethod
    def load(cls, data: pathlib.Path, catalogue: pd.DataFrame) -> HiddenPreferenceOracle | None:
        from aiqleads import contracts, layout

        path = data / layout.GROUND_TRUTH_DIR / layout.USER_PREFERENCES
        if not path.is_file():
            return None
        return cls(pd.read_csv(path).set_index(contracts.USER_ID), catalogue)

    def score(self, user: str) -> np.ndarray:
        sb = self.sb
        if user not in self.prefs.index:
            return np.zeros(len(self.region))
        g = self.prefs.loc[user]
        km = sb.distance_km(g.home_latitude, g.home_longitude, self.lat, self.lon)
        place = np.exp(-0.5 * (km / g.radius_km) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_ratio = np.log(self.price / g.budget)
        fit = np.where(
            np.isfinite(log_ratio), np.exp(-0.5 * (log_ratio / sb.PRICE_TOLERANCE) ** 2), 0.5
        )
        preferred = set(str(g.preferred_types).split("|"))
        kind = np.where([t in preferred for t in self.types], 1.0, sb.OTHER_TYPE_AFFINITY)
        local = self.region == g.home_region
        metro = self.metro == g.metro
        draw = sb.LOCAL_CANDIDATE_SHARE * local / max(local.sum(), 1) + (
            1 - sb.LOCAL_CANDIDATE_SHARE
        ) * metro / max(metro.sum(), 1)
        return draw * (place * fit * kind + 0.02) ** (1.0 / sb.CHOICE_TEMPERATURE)


def _hyperparameter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO / "runs" / "data" / "default"))
    parser.add_argument("--eval-days", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=3000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--negatives", type=int, default=99)
    parser.add_argument("--max-users", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", help="keep and reuse examples + Transform output here")
    parser.add_argument(
        "--hp", type=_hyperparameter, action="append", default=[], help="model key=value"
    )
    parser.add_argument(
        "--sampling",
        type=_hyperparameter,
        action="append",
        default=[],
        help="negative sampling key=value (hard_fraction, popularity_exponent, ...)",
    )
    args = parser.parse_args(argv)
    args.hp = dict(args.hp)
    from aiqleads.errors import DataError
    from components.example_gen import interactions
    from components.trainer.model_config import ModelConfig

    try:  # coerced and range-checked as the Trainer does
        checked = interactions.SamplingConfig.from_settings(dict(args.sampling))
    except DataError as e:
        parser.error(f"--sampling: {e}")
    args.sampling = {key: getattr(checked, key) for key, _ in args.sampling}
    try:  # before minutes of example generation, not after
        ModelConfig.from_custom_config(args.hp, strict=True)
    except ValueError as e:
        parser.error(f"--hp: {e}")
    if not pathlib.Path(args.data).is_dir():
        parser.error(
            f"no data set at {args.data}: make one with "
            "`aiqleads data synth --preset default --out runs/data/default`"
        )
    evaluate(args)


if __name__ == "__main__":
    main()
