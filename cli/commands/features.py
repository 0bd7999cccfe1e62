"""`aiqleads features describe | materialize | get | put`: the feature store's definitions,
and its online store (a Redis of its own, docs/feature_store.md)."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import time
from typing import Any

import click

from cli.commands.options import DIRECTORY, progress_printer

ONLINE_STORE_ENV = "AIQLEADS_ONLINE_STORE_URL"
URL_HELP = (
    f"Online store URL, redis://HOST:PORT/DB (or the {ONLINE_STORE_ENV} variable, which keeps "
    "a password out of the process list)."
)


def _store(url: str):
    from aiqleads.features.online import OnlineStore

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise click.BadParameter(
            f"{url!r} must start with redis://, rediss:// or unix://", param_hint="--url"
        )
    return OnlineStore(url)


@click.group()
def features() -> None:
    """The feature store: versioned feature views, and their online values."""


@features.command()
@click.option("--url", default=None, envvar=ONLINE_STORE_ENV, help=URL_HELP + " Optional.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def describe(url: str | None, as_json: bool) -> None:
    """Entities and feature views: version, owner, TTL, features (type and default); which
    versions are materialized; with --url, what the online store holds of each."""
    from aiqleads.events.log import redact
    from aiqleads.features.definitions import REGISTRY

    store = _store(url) if url else None
    views: list[dict[str, Any]] = []
    try:
        if store is not None:
            store.ping()
        for name in REGISTRY.names:
            materialized = {v.version for v in REGISTRY.materialized(name)}
            for view in REGISTRY.versions(name):
                meta = (
                    store.meta(view) if store is not None and view.version in materialized else {}
                )
                views.append(
                    {
                        "view": view.name,
                        "version": view.version,
                        "entity": view.entity.name,
                        "owner": view.owner,
                        "ttl_seconds": view.ttl_seconds,
                        "materialized": view.version in materialized,
                        "in_model": REGISTRY.model_versions().get(view.name) == view.version,
                        "features": [
                            {"name": f.name, "type": f.dtype.value, "default": f.default}
                            for f in view.features
                        ],
                        "store": meta,
                    }
                )
    finally:
        if store is not None:
            store.close()
    if as_json:
        click.echo(json.dumps({"views": views}, indent=1))
        return
    if store is not None:
        click.echo(f"online store {redact(store.url)}")
    for v in views:
        ttl = "none" if v["ttl_seconds"] is None else f"{v['ttl_seconds'] / 3600:g} h"
        flags = [
            f
            for f, on in (
                ("materialized", v["materialized"]),
                ("the models' version", v["in_model"]),
            )
            if on
        ]
        click.echo(
            f"\n{v['view']}:{v['version']}  entity {v['entity']}, owner {v['owner']}, "
            f"TTL {ttl}{'; ' + ', '.join(flags) if flags else ''}"
        )
        if v["store"]:
            s = v["store"]
            click.echo(f"  in the store: as of {s.get('as_of', '-')}, {s.get('rows', '-')} rows")
        elif store is not None and v["materialized"]:
            click.echo("  in the store: not materialized yet")
        for f in v["features"]:
            click.echo(f"  {f['name']:<28} {f['type']:<10} default {f['default']!r}")


@features.command()
@click.option("--data", "data_dir", type=DIRECTORY, required=True, help="Data set to read.")
@click.option("--url", required=True, envvar=ONLINE_STORE_ENV, help=URL_HELP)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Values as of the end of this UTC day [default: the newest span before today].",
)
def materialize(data_dir: pathlib.Path, url: str, as_of: dt.datetime | None) -> None:
    """Write the offline values (leads, regional market, users' behaviour) to the online
    store, into every materialized version of each view; a row newer in the store stays."""
    from aiqleads.events.log import redact
    from aiqleads.features import materialize as m

    say = progress_printer("[materialize]")
    store = _store(url)
    try:
        store.ping()
        day = as_of.date() if as_of else m.default_as_of(data_dir)
        say(f"{data_dir} as of {day} into {redact(url)}")
        summary = m.materialize(store, data_dir, day, progress=say)
    finally:
        store.close()
    rate = summary.rows / summary.seconds if summary.seconds > 0 else float("inf")
    click.echo(
        f"materialized as of {summary.as_of}: {summary.leads:,} leads, {summary.regions:,} "
        f"regions, {summary.users:,} users ({summary.events:,} events); {summary.written:,} "
        f"entities written (the others were newer in the store); {summary.seconds:.1f} s, "
        f"{rate:,.0f} rows/s"
    )


@features.command()
@click.option(
    "--entity", required=True, help="<entity>:<id>, e.g. user:u000001, lead:l000001, region:..."
)
@click.option("--url", required=True, envvar=ONLINE_STORE_ENV, help=URL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def get(entity: str, url: str, as_json: bool) -> None:
    """The online values of one entity: every materialized version of each of its views,
    with the event time, and which features read as their defaults (missing, stale, unknown)."""
    from aiqleads.features.online import parse_entity

    try:
        kind, entity_id = parse_entity(entity)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--entity") from e
    store = _store(url)
    try:
        store.ping()  # an unreachable store is named as such, before any read
        now = time.time()
        rows = store.read_entity(kind, entity_id, now)
    finally:
        store.close()
    out: list[dict[str, Any]] = [
        {
            "view": r.view.name,
            "version": r.view.version,
            "found": r.found,
            "event_ts": r.event_ts,
            "age_seconds": None if r.event_ts is None else round(now - r.event_ts, 1),
            "stale": r.stale,
            "missing": list(r.missing),
            "values": r.values,
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps({"entity": entity, "rows": out}, indent=1, default=str))
        return
    for r in out:
        if not r["found"]:
            state = "not in the store: the defaults"
        else:
            when = (
                dt.datetime.fromtimestamp(r["event_ts"], dt.timezone.utc).isoformat(
                    timespec="seconds"
                )
                if r["event_ts"] is not None
                else "-"
            )
            state = f"as of {when}" + (
                "; STALE (older than the TTL): served as the defaults" if r["stale"] else ""
            )
        click.echo(f"{r['view']}:{r['version']}  {state}")
        for name, value in r["values"].items():
            note = "  (default: missing)" if name in r["missing"] and r["found"] else ""
            click.echo(f"  {name:<28} {value!r}{note}")


@features.command()
@click.option(
    "--entity", required=True, help="<entity>:<id> of a lead or a region, e.g. lead:l000001."
)
@click.option(
    "--view",
    "view_name",
    default=None,
    help="The feature view to change [default: the entity's one view: lead_attributes for "
    "a lead, region_market for a region].",
)
@click.option(
    "--set",
    "changes",
    multiple=True,
    required=True,
    metavar="FEATURE=VALUE",
    help="A new value (repeat for several), e.g. --set status=sold --set price=410000; "
    "FEATURE= makes it missing.",
)
@click.option("--url", required=True, envvar=ONLINE_STORE_ENV, help=URL_HELP)
def put(entity: str, view_name: str | None, changes: tuple[str, ...], url: str) -> None:
    """The update path of listings and market data: change features of a lead or a region
    now (a status change, a price cut). The row's other features stay; a lead that becomes
    pending, sold or withdrawn is left out of every recommendation from the next request on."""
    from aiqleads.features.definitions import REGISTRY, USER
    from aiqleads.features.online import parse_entity
    from aiqleads.features.values import parse_text

    try:
        kind, entity_id = parse_entity(entity)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--entity") from e
    if kind == USER:
        raise click.BadParameter(
            "user features follow from the user's events: `aiqleads features materialize` "
            "and the streaming updater write them, not put",
            param_hint="--entity",
        )
    names = REGISTRY.for_entity(kind)
    if view_name is None:
        if len(names) != 1:
            raise click.BadParameter(
                f"{kind.name} has the views {', '.join(names)}: name one", param_hint="--view"
            )
        view_name = names[0]
    if view_name not in names:
        raise click.BadParameter(
            f"{view_name!r} is not a view of {kind.name} (its views: {', '.join(names)})",
            param_hint="--view",
        )
    view = REGISTRY.latest(view_name)
    parsed: dict[str, object] = {}
    for change in changes:
        name, sep, text = change.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{change!r} is not FEATURE=VALUE", param_hint="--set")
        try:
            feature = view.feature(name)
        except KeyError as e:
            raise click.BadParameter(
                f"{view.ref} has no feature {name!r} (its features: {', '.join(view.names)})",
                param_hint="--set",
            ) from e
        parsed[name] = parse_text(view, feature, text)  # a FeatureTypeError names the value
    store = _store(url)
    try:
        store.ping()
        row = store.put(kind, entity_id, view_name, parsed)
    finally:
        store.close()
    shown = ", ".join(f"{name}={row.values[name]!r}" for name in parsed)
    click.echo(f"{entity} {view.ref}: {shown}")
