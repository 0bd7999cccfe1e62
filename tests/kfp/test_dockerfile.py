"""The pipeline image's Dockerfile, read (no Docker here): pinned, constrained, non-root, and
started the way TFX's Kubeflow V2 launcher starts a step."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import pathlib
import re
import shlex

from pipeline.kubeflow_v2_runner import TFX_V2_ENTRYPOINT

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def _setup_packages() -> set[str]:
    """PACKAGES of setup.py: the image must copy every package the project installs."""
    for node in ast.parse((REPO / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PACKAGES":
            return set(ast.literal_eval(node.value))
    raise AssertionError("PACKAGES not found in setup.py")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _build_args() -> dict[str, str]:
    args = {}
    for word, rest in _instructions():
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    return args


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for word, rest in _instructions():
        if word == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word, rest))
    return stages


def _tfx_launcher_command() -> tuple[str, ...]:
    """KUBEFLOW_TFX_CMD as the installed TFX defines it (read from source, not imported)."""
    tfx_dir = pathlib.Path(importlib.util.find_spec("tfx").submodule_search_locations[0])
    source = (tfx_dir / "orchestration/kubeflow/v2/kubeflow_v2_dag_runner.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "KUBEFLOW_TFX_CMD" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("KUBEFLOW_TFX_CMD not found in the installed TFX")


def test_every_base_image_is_pinned():
    args = _build_args()
    for stage in _stages():
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+[\w.-]*$", image), image
        assert not image.endswith(":latest")


def test_installs_the_project_with_the_committed_constraints():
    runs = [rest for word, rest in _instructions() if word == "RUN"]
    installs = [r for r in runs if "pip install" in r and " . " in f"{r} "]
    assert len(installs) == 1
    assert "-c requirements/constraints.txt" in installs[0]
    assert "-e" not in shlex.split(installs[0])  # a real install, not a link to /src
    copied = {rest.split()[0] for word, rest in _instructions() if word == "COPY"}
    assert "requirements/constraints.txt" in copied
    assert copied >= _setup_packages() >= {"aiqleads", "pipeline", "serving"}
    assert (REPO / "requirements" / "constraints.txt").is_file()
    uv_pin = re.search(r'"uv==([\d.]+)"', DOCKERFILE.read_text()).group(1)
    assert f'UV_VERSION="{uv_pin}"' in (REPO / "scripts" / "setup.sh").read_text()


def test_final_stage_runs_as_a_non_root_user():
    final = _stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    # The gateway Deployment runs with the same uid.
    gateway = (REPO / "kustomize" / "base" / "gateway.yaml").read_text()
    assert f"runAsUser: {uid}" in gateway


def test_entrypoint_is_the_tfx_kubeflow_v2_launcher():
    entrypoints = [rest for word, rest in _stages()[-1] if word == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    command = tuple(json.loads(entrypoints[0]))  # exec form: no shell in between
    assert command == _tfx_launcher_command() == TFX_V2_ENTRYPOINT


def test_dockerignore_keeps_secrets_data_and_venv_out_but_not_the_sources():
    patterns = [
        p.strip()
        for p in (REPO / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, f"{p}/*") or path.split("/")[0] == p
            for p in patterns
        )

    for path in (".venv/bin/python", ".git/HEAD", "runs/x", "kustomize/overlays/prod/redis.env"):
        assert ignored(path), path
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert not ignored(source), f"{source} is copied but excluded"
                assert (REPO / source).exists(), source
