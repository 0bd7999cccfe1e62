"""Execute the notebooks (jupytext percent scripts) against a pipeline run; save them with
their outputs as .ipynb.

    .venv/bin/python notebooks/execute.py [--config pipeline.yaml] [--run ID] [--out DIR]
                                          [--event-store URL] [NAME...]

The notebooks read the pipeline config named by ``AIQLEADS_NOTEBOOK_CONFIG`` (the default
config when unset) and the run named by ``AIQLEADS_NOTEBOOK_RUN`` (``latest`` when unset),
and 04 the event store ``AIQLEADS_NOTEBOOK_EVENT_STORE`` (the running stack's when unset);
this script sets them for the kernel, and the notebooks read them with `inputs.py`. A cell
that raises fails the run (exit code 1) and names the notebook and the cell. `make
notebooks` and the notebook test call ``execute``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

NOTEBOOKS = pathlib.Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent
CONFIG_ENV = "AIQLEADS_NOTEBOOK_CONFIG"
RUN_ENV = "AIQLEADS_NOTEBOOK_RUN"
EVENT_STORE_ENV = "AIQLEADS_NOTEBOOK_EVENT_STORE"  # 04's event log (default: the stack's)
CELL_TIMEOUT_SECONDS = 900
# The kernel's environment: TensorFlow's C++ info lines and the dependencies' FutureWarnings
# would fill the saved outputs; the notebooks' own results are what they are for.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore::FutureWarning"}


def notebook_paths(names: list[str] | None = None) -> list[pathlib.Path]:
    """The notebooks in order (``NN_name.py``), or those whose name starts with one of
    ``names``."""
    found = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    if names:
        found = [p for p in found if any(p.stem.startswith(n) for n in names)]
    return found


def execute(
    path: pathlib.Path,
    out_dir: pathlib.Path,
    config: pathlib.Path | None = None,
    run: str = "latest",
    extra_env: dict[str, str] | None = None,
) -> pathlib.Path:
    """Run every cell of ``path`` in a fresh kernel (working directory: the repository);
    write ``out_dir/<name>.ipynb`` with the outputs, also when a cell fails, then re-raise."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    env = {**QUIET_ENV, RUN_ENV: run, **(extra_env or {})}
    if config is not None:
        env[CONFIG_ENV] = str(config.resolve())
    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name="python3",
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not its warning about TCP
        resources={"metadata": {"path": str(REPO)}},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{path.stem}.ipynb"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        nbformat.write(notebook, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (name prefixes); default all")
    parser.add_argument("--config", type=pathlib.Path, help="pipeline config YAML")
    parser.add_argument("--run", default="latest", help="run id or latest (default)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "runs" / "notebooks")
    parser.add_argument("--event-store", help="event store URL for 04 (default: the stack's)")
    args = parser.parse_args(argv)
    extra = {EVENT_STORE_ENV: args.event_store} if args.event_store else {}
    from nbclient.exceptions import CellExecutionError

    failed = []
    for path in notebook_paths(args.names):
        started = time.perf_counter()
        try:
            out = execute(path, args.out, args.config, args.run, extra)
        except CellExecutionError as e:
            print(
                f"notebook {path.name} failed (its outputs so far: {args.out}):\n{e}",
                file=sys.stderr,
            )
            failed.append(path.name)
            continue
        print(f"{path.name} -> {out} ({time.perf_counter() - started:.0f}s)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
