"""Regenerate the golden compiled pipeline on purpose (after a deliberate wiring change).

    .venv/bin/python tests/kfp/regenerate_golden.py

The compile test (`tests/kfp/test_compile.py`) uses the same inputs: the tiny checked-in
data set, default pipeline config, fixed KFP settings. Review the diff before committing.
"""

from __future__ import annotations

import pathlib
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY_DATA = REPO / "tests" / "testdata" / "pipeline" / "tiny"
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "aiqleads_pipeline.yaml"
STAGE = "push"
IMAGE = "registry.example.com/aiqleads/recommendations:0.1.0"
PIPELINE_ROOT = "gs://aiqleads-golden/pipeline-root"


def golden_inputs(**config_overrides):
    """(pipeline config, KFP settings) the golden file is compiled from."""
    from pipeline.config import load_config
    from pipeline.kfp_client import KfpSettings

    config = load_config(environ={}).with_overrides(data_root=str(TINY_DATA), **config_overrides)
    return config, KfpSettings(image=IMAGE, pipeline_root=PIPELINE_ROOT)


def normalise(spec: dict) -> dict:
    from pipeline.kubeflow_v2_runner import normalised_spec

    return normalised_spec(spec, {str(TINY_DATA): "<DATA>", str(REPO): "<REPO>"})


def render(spec: dict) -> str:
    return yaml.safe_dump(normalise(spec), sort_keys=True, width=100)


def main() -> int:
    from pipeline.kubeflow_v2_runner import build_pipeline_spec

    print(f"compiling stage {STAGE!r} (TensorFlow loads first: a minute or more)", flush=True)
    spec = build_pipeline_spec(*golden_inputs(), stage=STAGE)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(render(spec))
    print(f"wrote {GOLDEN.relative_to(REPO)}: {len(spec['root']['dag']['tasks'])} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
