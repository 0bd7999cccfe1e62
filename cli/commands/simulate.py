"""`aiqleads simulate`: users with hidden preferences ask the running stack and react."""

from __future__ import annotations

import json
import pathlib

import click

from cli.commands.options import (
    DIRECTORY,
    FILE,
    bounded,
    progress_printer,
    run_dir_option,
    token_option,
)

ACK_LOG_HELP = "Write the id of every acknowledged feedback to this file, one a line."


def _positive(upper: float) -> click.FloatRange:
    """More than 0, at most ``upper``."""
    return click.FloatRange(0, upper, min_open=True)


@click.command()
@click.option("--data", "data_dir", type=DIRECTORY, required=True, help="Synthetic data set.")
@click.option(
    "--url",
    default=None,
    help="Front door of the stack (loopback only) [default: the running `aiqleads serve`'s].",
)
@bounded("--duration", _positive(86_400), 60.0, "Seconds of traffic.", dest="duration_s")
@bounded("--rate", _positive(5_000), 20.0, "Recommendation requests per second.")
@bounded("--seed", click.IntRange(0, 2**63 - 1), 0, "Random seed.")
@bounded("--k", click.IntRange(1, 100), 10)
@click.option(
    "--scenario",
    default=None,
    help="NAME[@SECONDS]: metro-shift, budget-shift, new-users or skew-location, starting "
    "SECONDS into the run (default 0).",
)
@bounded(
    "--max-in-flight",
    click.IntRange(1, 4096),
    256,
    "Requests in flight at most; arrivals beyond are shed and counted.",
)
@click.option("--ack-log", type=FILE, default=None, help=ACK_LOG_HELP)
@run_dir_option("Run directory of the stack.")
@token_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def simulate(
    data_dir: pathlib.Path,
    url: str | None,
    duration_s: float,
    rate: float,
    seed: int,
    k: int,
    scenario: str | None,
    max_in_flight: int,
    ack_log: pathlib.Path | None,
    run_dir: pathlib.Path | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Simulated users ask for recommendations and post what they do with them."""
    from aiqleads.simulator import scenarios, traffic
    from aiqleads.simulator.world import load_world

    if url is None:
        from serving import stack_file
        from serving.settings import DEFAULT_RUN_DIR

        url = stack_file.read(run_dir or DEFAULT_RUN_DIR).front_url
    url = traffic.check_loopback(url)
    from cli.commands.serve import resolve_token

    token = resolve_token(token, run_dir)
    say = progress_printer("[simulate]")
    world = load_world(data_dir)
    chosen = None
    if scenario:
        name, start = scenarios.parse_scenario(scenario)
        chosen = scenarios.build(name, start, world, seed)
        say(f"scenario {name} from {start:g} s: {chosen.description}")
    say(
        f"{len(world.user_ids):,} users, {len(world.lead_ids):,} leads; {rate:g} req/s for "
        f"{duration_s:g} s against {url}"
    )
    stats = traffic.run(
        world,
        url,
        duration=duration_s,
        rate=rate,
        seed=seed,
        k=k,
        scenario=chosen,
        max_in_flight=max_in_flight,
        progress=lambda s, t: say(s.progress_line(t)),
        token=token,
    )
    if ack_log is not None:
        ack_log.parent.mkdir(parents=True, exist_ok=True)
        ack_log.write_text("".join(f"{fid}\n" for fid in stats.acknowledged))
    if as_json:
        click.echo(json.dumps(stats.summary(), indent=2, sort_keys=True))
        return
    click.echo(
        f"requests {stats.requests:,} (answers {stats.answers:,}, errors {stats.errors:,}, "
        f"shed {stats.shed:,}) in {stats.seconds:.1f} s"
    )
    click.echo(
        f"feedback accepted {stats.feedback_accepted:,} of {stats.feedback_sent:,} "
        f"(duplicates {stats.feedback_duplicate:,}, failed {stats.feedback_failed:,}, "
        f"retries {stats.feedback_retries:,})"
    )
    click.echo(f"CTR {stats.ctr:.4f}; events {dict(sorted(stats.events.items()))}")
    for variant, arm in sorted(stats.by_variant.items()):
        click.echo(f"  {variant}: {arm}")
