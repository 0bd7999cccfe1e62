"""What the kustomize tests share: where the overlays are, the paths the manifests promise,
building an overlay with the real `kubectl kustomize`, and reading the objects it renders."""

from __future__ import annotations

import pathlib
import secrets
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "kustomize"
VENV_BIN = pathlib.Path(sys.executable).parent
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "aiqleads-dev", "prod": "aiqleads"}
KUBERNETES_VERSION = "1.30.0"
TEST_PASSWORD = "test-" + secrets.token_hex(16)
EVENT_STORE_URL = "redis://aiqleads-event-store:6379/0"
ONLINE_STORE_URL = "redis://aiqleads-online-store:6379/0"
REDIS_PASSWORD_FILE = "/etc/aiqleads/secrets/redis/REDIS_PASSWORD"
EVENT_STORE_PASSWORD_FILE = "/etc/aiqleads/secrets/events/EVENT_STORE_PASSWORD"
ONLINE_STORE_PASSWORD_FILE = "/etc/aiqleads/secrets/features/ONLINE_STORE_PASSWORD"
REDIS_AUTH_CONFIG = "/run/redis-auth/auth.conf"
# The Secrets' env files each overlay reads (git-ignored; throwaway values in the tests).
SECRET_ENV_FILES = {
    "redis.env": f"REDIS_PASSWORD={TEST_PASSWORD}\n",
    "events.env": f"EVENT_STORE_PASSWORD={TEST_PASSWORD}\nAIQLEADS_ATTRIBUTION_KEY={'ab' * 32}\n",
    "features.env": f"ONLINE_STORE_PASSWORD={TEST_PASSWORD}\n",
    "auth.env": 'JWKS={"keys": []}\n',
}


def tool(name: str) -> str:
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


def build_overlays(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Overlay name -> the rendered multi-document YAML file, built from a copy of
    ``kustomize/`` with throwaway secrets (the real ones are never committed)."""
    kubectl = shutil.which("kubectl") or pytest.skip("kubectl is not installed")
    tree = root / "kustomize"
    shutil.copytree(KUSTOMIZE, tree, ignore=shutil.ignore_patterns("*.env", "__pycache__"))
    out = {}
    for overlay in OVERLAYS:
        for name, content in SECRET_ENV_FILES.items():
            (tree / "overlays" / overlay / name).write_text(content)
        result = subprocess.run(
            [kubectl, "kustomize", str(tree / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        out[overlay] = root / f"{overlay}.yaml"
        out[overlay].write_text(result.stdout)
    return out


def load_objects(path: pathlib.Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def one(objects: list[dict], kind: str, name_prefix: str) -> dict:
    found = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name_prefix)
    ]
    assert len(found) == 1, f"expected one {kind} {name_prefix}*, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    specs = [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
    ]
    specs += [
        (o["metadata"]["name"], o["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] == "CronJob"
    ]
    return specs


def mounted_secret_file(pod: dict, container: dict, path: str) -> tuple[str, str]:
    """(Secret name, key) of the Secret file a container sees at ``path``."""
    folder, _, file_name = path.rpartition("/")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (item,) = [i for i in volume["secret"]["items"] if i["path"] == file_name]
    assert volume["secret"]["defaultMode"] & 0o007 == 0  # not world-readable
    return volume["secret"]["secretName"], item["key"]


def generated_args(overlay: str) -> dict[str, list[str]]:
    """Container name -> args, from the committed generated/workloads.yaml of an overlay."""
    patches = yaml.safe_load_all(
        (KUSTOMIZE / "overlays" / overlay / "generated" / "workloads.yaml").read_text()
    )
    return {
        c["name"]: c["args"]
        for p in patches
        if p["kind"] in ("Deployment", "StatefulSet")
        for c in p["spec"]["template"]["spec"]["containers"]
    }
