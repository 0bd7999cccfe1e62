"""Passwords by file, never in a process's arguments: the URL a client gets, a real Redis
started the way the manifests start it, and every container's arguments in the manifests."""

from __future__ import annotations

import pathlib
import subprocess

import pytest
import redis
import yaml

from aiqleads.errors import ConfigError
from serving import command_lines
from serving.gateway.config import parse_config as parse_gateway_config
from serving.process import LOOPBACK, Child, find_binary, free_port, redis_ping, wait_until
from serving.secret_files import url_with_password
from serving.settings import EventStoreSettings, FeatureStoreSettings, RedisSettings
from tests.security.conftest import SECRET_IN_ARGUMENT

REPO = pathlib.Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "kustomize"
PASSWORD = "s3cr/t:@x"  # every character a URL must escape
ESCAPED = "s3cr%2Ft%3A%40x"
AUTH_CONFIG_DIR = "/run/redis-auth"  # where base/redis.yaml's initContainer writes
# Each Redis manifest and the Secret key its initContainer renders into the config file.
PASSWORD_ENV = {
    "redis.yaml": "REDIS_PASSWORD",
    "event-store.yaml": "EVENT_STORE_PASSWORD",
    "online-store.yaml": "ONLINE_STORE_PASSWORD",
}


@pytest.fixture
def password_file(tmp_path) -> pathlib.Path:
    path = tmp_path / "secrets" / "REDIS_PASSWORD"
    path.parent.mkdir()
    path.write_text(PASSWORD + "\n")  # a Secret file may end with a newline
    path.chmod(0o600)
    return path


def test_the_password_goes_into_the_url_escaped(password_file) -> None:
    assert url_with_password("redis://aiqleads-redis:6379/0", None) == (
        "redis://aiqleads-redis:6379/0"
    )
    assert url_with_password("redis://aiqleads-redis:6379/0", password_file) == (
        f"redis://:{ESCAPED}@aiqleads-redis:6379/0"
    )
    assert url_with_password("rediss://default@h:6380/2", password_file) == (
        f"rediss://default:{ESCAPED}@h:6380/2"
    )
    assert url_with_password("redis://:old@h:1/0", password_file) == f"redis://:{ESCAPED}@h:1/0"
    assert url_with_password("unix:///run/r.sock?db=1", password_file) == (
        f"unix:///run/r.sock?db=1&password={ESCAPED}"
    )
    # redis-py reads back the password the file holds.
    kwargs = redis.connection.parse_url(url_with_password("redis://h:1/0", password_file))
    assert kwargs["password"] == PASSWORD


def test_a_missing_or_empty_password_file_is_an_error_that_names_it(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the password file .*nope"):
        url_with_password("redis://h:1/0", tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="must hold one non-empty line"):
        url_with_password("redis://h:1/0", empty)


def test_gateway_and_monitor_read_their_passwords_from_files(password_file, tmp_path) -> None:
    from monitoring.config import parse_config as parse_monitor_config

    events_file = tmp_path / "events-password"
    events_file.write_text("ev3nts")
    gateway = parse_gateway_config(
        {
            "model_servers": ("127.0.0.1:1",),
            "redis_url": "redis://127.0.0.1:2/0",
            "redis_password_file": password_file,
            "event_store_url": "redis://127.0.0.1:3/0",
            "event_store_password_file": events_file,
        }
    )
    assert gateway.redis_url == "redis://127.0.0.1:2/0"  # the flags: no password
    resolved = gateway.with_passwords()
    assert resolved.redis_url == f"redis://:{ESCAPED}@127.0.0.1:2/0"
    assert resolved.event_store_url == "redis://:ev3nts@127.0.0.1:3/0"
    monitor = parse_monitor_config(
        {"event_store_url": "redis://127.0.0.1:3/0", "event_store_password_file": events_file}
    )
    assert monitor.with_passwords().event_store_url == "redis://:ev3nts@127.0.0.1:3/0"
    # Without files the URLs are used as given (a local stack on loopback).
    plain = parse_gateway_config({"model_servers": ("127.0.0.1:1",)})
    assert plain.with_passwords() == plain


def _init_container_script(manifest: str) -> str:
    docs = yaml.safe_load_all((KUSTOMIZE / "base" / manifest).read_text())
    (pod,) = [d for d in docs if d and d["kind"] == "StatefulSet"]
    (init,) = pod["spec"]["template"]["spec"]["initContainers"]
    assert init["command"][:2] == ["sh", "-c"]
    return init["command"][2]


@pytest.mark.parametrize("manifest", sorted(PASSWORD_ENV))
def test_redis_takes_its_password_from_the_rendered_config_file_not_argv(
    manifest, tmp_path
) -> None:
    """The initContainer's own script renders the config; redis-server started with the
    arguments the manifests give it requires the password, which no argument holds."""
    conf_dir = tmp_path / "redis-auth"
    conf_dir.mkdir()
    script = _init_container_script(manifest).replace(AUTH_CONFIG_DIR, str(conf_dir))
    env_name = PASSWORD_ENV[manifest]
    subprocess.run(["sh", "-c", script], env={env_name: PASSWORD}, check=True, timeout=30)
    conf = conf_dir / "auth.conf"
    assert conf.read_text() == f"requirepass {PASSWORD}\n"
    assert conf.stat().st_mode & 0o077 == 0

    port = free_port()
    if manifest == "redis.yaml":
        args = command_lines.redis_args(RedisSettings(port=port), bind=LOOPBACK, config_file=conf)
    elif manifest == "event-store.yaml":
        args = command_lines.event_store_args(
            EventStoreSettings(port=port), bind=LOOPBACK, directory=tmp_path, config_file=conf
        )
    else:
        args = command_lines.feature_store_args(
            FeatureStoreSettings(port=port), bind=LOOPBACK, directory=tmp_path, config_file=conf
        )
    child = Child(
        "redis",
        [find_binary("redis-server", "the Debian package redis-server"), *args],
        tmp_path / "redis.log",
        ready=lambda: redis_ping(LOOPBACK, port),  # PING answers NOAUTH: not ready this way
    )
    child.start()
    try:
        url = f"redis://{LOOPBACK}:{port}/0"
        anonymous = redis.Redis.from_url(url, socket_timeout=2)

        def refuses_anonymous() -> bool:
            try:
                anonymous.ping()
            except redis.AuthenticationError:
                return True
            except redis.ConnectionError:
                return False
            raise AssertionError("Redis answered a client without the password")

        wait_until(refuses_anonymous, 30, "redis-server with the config file")
        password_file = tmp_path / "password"
        password_file.write_text(PASSWORD)
        client = redis.Redis.from_url(url_with_password(url, password_file), socket_timeout=2)
        assert client.ping() is True
        client.close()
        anonymous.close()
        # What it was started with names the file only (redis-server also retitles itself).
        assert str(conf) in child.argv and not any(PASSWORD in a for a in child.argv)
        assert PASSWORD not in pathlib.Path(f"/proc/{child.pid}/cmdline").read_text()
    finally:
        child.stop()


def _manifest_containers() -> list[tuple[str, dict]]:
    """(where, container) for every container and initContainer of base/, with the args
    each overlay's generated/workloads.yaml gives it."""
    out = []
    for path in sorted((KUSTOMIZE / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            spec = (doc or {}).get("spec", {})
            pod = spec.get("template", {}).get("spec") or (
                spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
            )
            for c in (pod or {}).get("containers", []) + (pod or {}).get("initContainers", []):
                out.append((f"{path.name}:{c['name']}", c))
    for overlay in sorted((KUSTOMIZE / "overlays").glob("*/generated/workloads.yaml")):
        for doc in yaml.safe_load_all(overlay.read_text()):
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                out.append((f"{overlay.parent.parent.name}:{doc['metadata']['name']}", c))
    return out


def test_no_manifest_passes_a_secret_in_a_process_argument() -> None:
    containers = _manifest_containers()
    names = {where.split(":")[1] for where, _ in containers}
    assert {
        "redis",
        "event-store",
        "online-store",
        "gateway",
        "monitor",
        "feature-updater",
        "auth-config",
    } <= names
    for where, container in containers:
        for arg in [*container.get("command", []), *container.get("args", [])]:
            assert not SECRET_IN_ARGUMENT.search(str(arg)), f"{where}: {arg!r}"
    # The pattern itself catches what the manifests used to pass.
    for old in (
        "--requirepass",
        "--redis-url=redis://:$(REDIS_PASSWORD)@aiqleads-redis:6379/0",
        "$(EVENT_STORE_PASSWORD)",
    ):
        assert SECRET_IN_ARGUMENT.search(old)
