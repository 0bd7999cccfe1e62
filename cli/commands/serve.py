"""`aiqleads serve` (the local serving stack) and `aiqleads recommend` (a call through Envoy)."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from collections.abc import Callable

import click

from aiqleads.errors import ServiceError
from cli.commands.options import (
    EXISTING_FILE,
    TOKEN_ENV,
    bounded,
    config_option,
    progress_printer,
    run_dir_option,
    token_option,
)

DEFAULT_URL = "http://127.0.0.1:8080"
MAX_K = 100
MAX_USER_ID = 128


def _replicas_option(flag: str, what: str) -> Callable:
    """How many replicas of a service the stack runs (1 to 16; the settings' 2 by default)."""
    return click.option(
        flag, type=click.IntRange(1, 16), default=None, help=f"{what} replicas [default: 2]."
    )


def _coordinate_option(flag: str, name: str, limit: int, help_text: str) -> Callable:
    """The user's current latitude or longitude, in degrees within ±``limit``."""
    return click.option(
        flag, name, type=click.FloatRange(-limit, limit), default=None, help=help_text
    )


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Front port (REST and gRPC) on 127.0.0.1; 0 picks a free one [default: 8080].",
)
@click.option(
    "--model-base-path",
    type=click.Path(path_type=pathlib.Path),
    default=None,
    help="Versioned SavedModels (<dir>/<version>/saved_model.pb) "
    "[default: the pipeline's push destination].",
)
@_replicas_option("--model-servers", "Model server")
@_replicas_option("--gateways", "Caching gateway")
@config_option("Serving settings YAML (serving/settings.py); flags override it.", EXISTING_FILE)
@run_dir_option("Logs, Redis data and the Envoy config [default: runs/serve].")
@click.option(
    "--monitoring/--no-monitoring",
    default=None,
    help="Start Prometheus, Alertmanager and the retraining trigger [default: on].",
)
def serve(
    port: int | None,
    model_base_path: pathlib.Path | None,
    model_servers: int | None,
    gateways: int | None,
    config_file: pathlib.Path | None,
    run_dir: pathlib.Path | None,
    monitoring: bool | None,
) -> None:
    """Run Redis, model servers, caching gateways, Envoy, the event store, the monitor and
    (unless --no-monitoring) Prometheus, Alertmanager and the retraining trigger on loopback
    until Ctrl-C."""
    from monitoring import stack_configs
    from serving.launcher import ServingStack, serve_forever
    from serving.settings import load_settings

    overrides = {
        "envoy.port": port,
        "model_base_path": model_base_path and str(model_base_path.resolve()),
        "model_servers.replicas": model_servers,
        "gateways.replicas": gateways,
        "run_dir": run_dir and str(run_dir.resolve()),
        "monitoring": monitoring,
    }
    settings = load_settings(config_file).with_overrides(
        **{k: v for k, v in overrides.items() if v is not None}
    )
    stack = ServingStack(
        settings, progress=progress_printer("[serve]"), monitoring=stack_configs.write
    )

    def report() -> None:  # progress goes to stderr, the endpoints to stdout once healthy
        ms, gw = len(stack.topology.model_servers), len(stack.topology.gateways)
        click.echo(f"AIQLeads serving stack up: {ms} model servers, {gw} gateways, Envoy, Redis")
        for name, address in stack.endpoints().items():
            click.echo(f"  {name:<16} {address}")
        click.echo(f"  {'logs':<16} {stack.settings.run_dir / 'logs'}")
        front = f"http://{stack.settings.envoy.host}:{stack.settings.envoy.port}"
        if stack.credentials is not None:
            token = stack.credentials.token_file
            click.echo(
                f"  {'token':<16} {token} (development token: every scope, every user; "
                f"{stack.settings.auth.dev_token_hours:g} h)"
            )
            click.echo(
                f"try: aiqleads recommend --user <id> --url {front} --run-dir {stack.settings.run_dir}"
            )
            click.echo(
                f'  or: curl -H "Authorization: Bearer $(cat {token})" '
                f'-H \'content-type: application/json\' -d \'{{"user_id": "u1", "k": 5}}\' '
                f"{front}/v1/recommendations"
            )
        else:
            click.echo(f"try: aiqleads recommend --user <id> --url {front}")

    serve_forever(stack, on_ready=report)
    restarts = sum(c.restarts for c in stack.children)
    click.echo(f"stopped every process ({len(stack.children)} children, {restarts} restarts)")


def _validate_location(latitude: float | None, longitude: float | None) -> None:
    if (latitude is None) != (longitude is None):
        raise click.BadParameter("give both --lat and --lon, or neither")


@click.command()
@click.option("--user", "user_id", required=True, help="The user to recommend leads to.")
@bounded("--k", click.IntRange(1, MAX_K), 10, "How many leads.")
@_coordinate_option("--lat", "latitude", 90, "Current latitude of the user (with --lon).")
@_coordinate_option("--lon", "longitude", 180, "Current longitude of the user (with --lat).")
@click.option(
    "--url", default=DEFAULT_URL, show_default=True, help="The Envoy front door of a running stack."
)
@bounded("--timeout", click.FloatRange(0.1, 60), 5.0, "Seconds to wait for the answer.")
@token_option
@run_dir_option(
    "Run dir of `aiqleads serve`, whose secrets/dev.token is used [default: runs/serve].",
    click.Path(path_type=pathlib.Path),
)
def recommend(
    user_id: str,
    k: int,
    latitude: float | None,
    longitude: float | None,
    url: str,
    timeout: float,
    token: str | None,
    run_dir: pathlib.Path | None,
) -> None:
    """Ask the running stack (through Envoy) for a user's top-K leads and print them."""
    if not user_id.strip() or len(user_id) > MAX_USER_ID:
        raise click.BadParameter(f"must be 1..{MAX_USER_ID} characters", param_hint="--user")
    _validate_location(latitude, longitude)
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--url")
    body: dict = {"user_id": user_id, "k": k}
    if latitude is not None:
        body.update(latitude=latitude, longitude=longitude)
    answer = call_recommendations(url, body, timeout, resolve_token(token, run_dir))
    items = answer.get("items", [])
    click.echo(
        f"user {user_id} | model version {answer.get('model_version')} | "
        f"variant {answer.get('variant')} | cached {'yes' if answer.get('cached') else 'no'} | "
        f"request {answer.get('request_id')}"
    )
    click.echo(f"{'rank':>4}  {'lead_id':<24} {'score':>8}")
    for rank, item in enumerate(items, start=1):
        click.echo(f"{rank:>4}  {item['lead_id']:<24} {item['score']:>8.4f}")
    click.echo(f"{len(items)} leads")


def resolve_token(token: str | None, run_dir: pathlib.Path | None) -> str | None:
    """The token to send: given (flag or $AIQLEADS_TOKEN), else the run dir's development
    token when there is one, else None (a stack with auth off)."""
    from serving import auth
    from serving.settings import DEFAULT_RUN_DIR

    if token:
        return token.strip()
    path = auth.dev_token_path(run_dir or DEFAULT_RUN_DIR)
    if run_dir is None and not path.exists():
        return None
    return auth.read_token(path)


def call_recommendations(url: str, body: dict, timeout: float, token: str | None = None) -> dict:
    """POST /v1/recommendations; ServiceError with the server's reason on any failure."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/recommendations",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace").strip().replace("\n", " ")[:300]
        if e.code == 401:
            detail += (
                f"; pass --token (or set {TOKEN_ENV}), or --run-dir of the `aiqleads serve` "
                "whose secrets/dev.token to use"
            )
        raise ServiceError(f"{url} answered {e.code}: {detail}") from e
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise ServiceError(
            f"no serving stack answers at {url} ({reason}): start one with `aiqleads serve`"
        ) from e
    except json.JSONDecodeError as e:
        raise ServiceError(f"{url} answered something that is not JSON: {e}") from e
