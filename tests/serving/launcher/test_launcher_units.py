"""Launcher pieces that need no model: ports, model discovery, binaries, supervision, errors."""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import time

import pytest

from aiqleads.errors import ConfigError, ServiceError
from serving.launcher import ServingStack, model_versions, require_model, resolve_topology
from serving.process import Child, find_binary, redis_ping, wait_until
from serving.settings import ServingSettings


def test_resolve_topology_fills_free_ports_and_keeps_fixed_ones() -> None:
    settings = ServingSettings().with_overrides(
        **{"gateways.replicas": 3, "model_servers.grpc_port": 9500, "model_servers.rest_port": 9600}
    )
    topo = resolve_topology(settings)
    assert [(r.grpc_port, r.rest_port) for r in topo.model_servers] == [(9500, 9600), (9501, 9601)]
    assert len(topo.gateways) == 3
    env = topo.settings.envoy
    assert env.port == 8080  # the front door stays where the user expects it
    free = [topo.settings.redis.port, env.admin_port, env.model_listener_port]
    free += [p for r in topo.gateways for p in (r.grpc_port, r.rest_port)]
    assert 0 not in free and len(set(free)) == len(free)


def test_model_versions_need_a_numeric_dir_with_a_saved_model(tmp_path: pathlib.Path) -> None:
    for name in ("1", "12", "3", "tmp-4", "5"):
        (tmp_path / name).mkdir()
    for name in ("1", "12", "3", "tmp-4"):
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    assert model_versions(tmp_path) == [1, 3, 12]  # "5" has no SavedModel yet
    assert require_model(tmp_path) == 12
    assert model_versions(tmp_path / "missing") == []


def test_no_model_tells_the_user_to_run_the_pipeline(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ServiceError, match=r"run `aiqleads pipeline run` \(or `make demo`\)"):
        require_model(tmp_path)


def test_a_missing_binary_names_what_to_install() -> None:
    with pytest.raises(ServiceError, match=r"no-such-server not found: install Thing \(run `make"):
        find_binary("no-such-server", "Thing")
    assert find_binary("envoy", "Envoy").startswith(str(pathlib.Path(sys.executable).parent))


def test_child_stop_ends_its_whole_process_group(tmp_path: pathlib.Path) -> None:
    # A shell that spawns a grandchild: stopping the child must take the grandchild too.
    pid_file = tmp_path / "grandchild.pid"
    child = Child(
        "shell",
        ["/bin/sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"],
        tmp_path / "shell.log",
        pid_file.exists,
    )
    child.start()
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10, "grandchild")
    grandchild = int(pid_file.read_text())
    child.stop(timeout=5)
    assert child.exit_code() is not None
    wait_until(lambda: not _alive(grandchild), 5, "grandchild gone")


def test_redis_child_starts_answers_and_stops(tmp_path: pathlib.Path) -> None:
    from serving.process import free_port

    port = free_port()
    redis = Child(
        "redis",
        [
            find_binary("redis-server", "redis"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp_path),
            "--save",
            "",
        ],  # fmt: skip
        tmp_path / "redis.log",
        lambda: redis_ping("127.0.0.1", port),
    )
    redis.start()
    try:
        wait_until(redis.ready, 10, "redis")
        redis.signal(signal.SIGKILL)
        wait_until(lambda: redis.exit_code() is not None, 5, "redis exit")
        assert not redis_ping("127.0.0.1", port)
        redis.start()  # what the supervisor does after its backoff
        wait_until(redis.ready, 10, "redis again")
    finally:
        redis.stop()
    assert not redis_ping("127.0.0.1", port)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (reaped later by init) counts as gone.
    stat = pathlib.Path(f"/proc/{pid}/stat")
    time.sleep(0.01)
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_supervisor_restarts_a_crashed_child_with_growing_backoff(tmp_path: pathlib.Path) -> None:
    lines: list[str] = []
    stack = ServingStack(ServingSettings(run_dir=tmp_path), progress=lines.append)
    sleeper = Child("sleeper", ["/bin/sleep", "60"], tmp_path / "s.log", lambda: True)
    crasher = Child("crasher", ["/bin/false"], tmp_path / "c.log", lambda: True)
    stack.children = [sleeper, crasher]
    for child in stack.children:
        child.start()
    first_pid = sleeper.pid
    sleeper.signal(signal.SIGKILL)
    try:
        wait_until(lambda: stack.supervise_once() or sleeper.restarts == 1, 5, "sleeper restart")
        assert sleeper.running() and sleeper.pid != first_pid
        # /bin/false keeps crashing: waits between restarts double (0.5 s, 1 s, 2 s, ...).
        wait_until(lambda: stack.supervise_once() or crasher.restarts == 3, 10, "3 restarts")
        times = [t for t, name in stack.restart_log if name == "crasher"]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[1] > gaps[0]
        assert any(
            line.startswith("crasher exited with code 1; restarting in 2.0 s") for line in lines
        )
    finally:
        stack.stop()
    assert not sleeper.running()


def test_gateway_model_deadline_reaches_the_gateways_and_stays_under_envoys_per_try(
    tmp_path: pathlib.Path,
) -> None:
    settings = ServingSettings(run_dir=tmp_path).with_overrides(
        **{"gateways.model_timeout_ms": 900, "envoy.per_try_timeout_ms": 1200}
    )
    gateways = [c for c in ServingStack(settings)._children() if c.name.startswith("gateway-")]
    assert len(gateways) == 2
    for child in gateways:
        assert "--model-timeout-ms=900" in child.argv
    with pytest.raises(ConfigError, match=r"gateways.model_timeout_ms \(900\) must be below"):
        settings.with_overrides(**{"envoy.per_try_timeout_ms": 900})


def test_children_run_the_command_lines_the_manifests_are_built_with(
    tmp_path: pathlib.Path,
) -> None:
    from serving import command_lines

    stack = ServingStack(ServingSettings(run_dir=tmp_path))
    s, topo = stack.settings, stack.topology
    children = {c.name: c.argv for c in stack._children()}
    model_listener = f"127.0.0.1:{s.envoy.model_listener_port}"
    for i, r in enumerate(topo.gateways):
        assert children[f"gateway-{i}"] == [
            sys.executable,
            "-m",
            "serving.gateway",
            *command_lines.gateway_args(
                s,
                host="127.0.0.1",
                rest_port=r.rest_port,
                grpc_port=r.grpc_port,
                redis_url=f"redis://127.0.0.1:{s.redis.port}/0",
                model_server=model_listener,
                event_store_url=f"redis://127.0.0.1:{s.event_store.port}/0",
                online_store_url=f"redis://127.0.0.1:{s.feature_store.port}/0",
                attribution_key_file=tmp_path / "secrets" / "attribution.key",
                canary_fraction_file=tmp_path / "deployment" / "canary.json",
                drain_seconds=command_lines.gateway_drain_seconds(s),
            ),
        ]
    monitoring = tmp_path / "model-server-monitoring.config"
    model_config = command_lines.ModelConfigFile(
        str(tmp_path / "deployment" / "models.config"), s.model_servers.model_config_poll_seconds
    )
    for i, r in enumerate(topo.model_servers):
        argv = children[f"model-server-{i}"]
        assert argv[1:] == command_lines.model_server_args(
            s, r.grpc_port, r.rest_port, monitoring, host="127.0.0.1", model_config=model_config
        )
        # The deployment's model config (versions and labels), polled every second.
        assert f"--model_config_file={tmp_path / 'deployment' / 'models.config'}" in argv
        assert "--model_config_file_poll_wait_seconds=1" in argv
    assert children["redis"][1:] == command_lines.redis_args(
        s.redis, bind="127.0.0.1", directory=tmp_path / "redis"
    )
    assert children["event-store"][1:] == command_lines.event_store_args(
        s.event_store, bind="127.0.0.1", directory=tmp_path / "events"
    )
    assert "noeviction" in children["event-store"] and "yes" in children["event-store"]
    assert children["online-store"][1:] == command_lines.feature_store_args(
        s.feature_store, bind="127.0.0.1", directory=tmp_path / "features"
    )
    assert children["feature-updater"] == [
        sys.executable,
        "-m",
        "serving.feature_store",
        *command_lines.feature_updater_args(
            host="127.0.0.1",
            port=s.feature_store.updater_port,
            online_store_url=s.feature_store.url,
            event_store_url=s.event_store.url,
        ),
    ]
    assert 0 not in (s.feature_store.port, s.feature_store.updater_port)
    # Without the feature store: neither child, and the gateways read no online store.
    off = ServingStack(ServingSettings(run_dir=tmp_path, feature_store={"enabled": False}))
    names = {c.name: c.argv for c in off._children()}
    assert not {"online-store", "feature-updater"} & set(names)
    assert not any("--online-store-url" in a for a in names["gateway-0"])
    assert children["monitor"][1:4] == [sys.executable, "-m", "monitoring"][1:] + [
        f"--host={s.monitor.host}"
    ]
    assert children["envoy"][1:] == command_lines.envoy_args(
        tmp_path / "envoy.yaml", 2, "warning", hot_restart=False
    )


def test_monitoring_children_come_from_the_writer_and_no_monitoring_drops_them(
    tmp_path: pathlib.Path,
) -> None:
    from serving.launcher import MonitoringFiles

    written = []

    def writer(topology):  # what monitoring.stack_configs.write gives the launcher
        written.append(topology)
        return MonitoringFiles(tmp_path / "prometheus.yml", tmp_path / "alertmanager.yml")

    settings = ServingSettings(run_dir=tmp_path)
    stack = ServingStack(settings, progress=lambda _: None, monitoring=writer)
    s = stack.settings
    ports = [s.prometheus.port, s.alertmanager.port, s.trigger.port]
    assert 0 not in ports and len(set(ports)) == 3
    children = stack._monitoring_children(writer(stack.topology), tmp_path / "logs")
    assert [c.name for c in children] == ["trigger", "alertmanager", "prometheus"]
    trigger, am, prom = (c.argv for c in children)
    assert trigger[1:3] == ["-m", "monitoring.trigger"]
    assert f"--port={s.trigger.port}" in trigger
    assert f"--state-dir={tmp_path / 'trigger'}" in trigger
    assert f"--event-store-url={s.event_store.url}" in trigger
    assert f"--config.file={tmp_path / 'alertmanager.yml'}" in am
    assert f"--web.listen-address=127.0.0.1:{s.prometheus.port}" in prom
    addresses = stack.addresses()
    assert addresses.prometheus_url == f"http://127.0.0.1:{s.prometheus.port}"
    assert addresses.trigger_url == f"http://127.0.0.1:{s.trigger.port}"
    assert "Prometheus" in stack.endpoints()

    off = ServingStack(settings.with_overrides(monitoring=False), monitoring=writer)
    assert off.monitoring is None
    assert off.addresses().prometheus_url is None and "Prometheus" not in off.endpoints()
