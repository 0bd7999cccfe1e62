# The project image: the TFX pipeline steps on Kubeflow Pipelines and the caching gateway.
#
#   docker build -t registry.example.com/aiqleads/recommendations:0.1.0 .
#
# Reproducible: the base image is an exact tag, every Python package comes from the committed
# constraints file (the same one scripts/setup.sh installs with). Runs as a non-root user.
# The ENTRYPOINT is the container launcher of TFX's Kubeflow V2 runner; the compiled pipeline
# also sets it as each step's command, and the gateway Deployment overrides it.

ARG PYTHON_IMAGE=python:3.10.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1
# uv (the resolver scripts/setup.sh uses) lives in the build stage only, outside the venv.
RUN pip install "uv==0.13.9" \
 && python -m venv /opt/venv
WORKDIR /src
# The packages of setup.py, installed (not editable) at the versions the constraints pin.
COPY requirements/constraints.txt requirements/constraints.txt
COPY setup.py pyproject.toml README.md ./
COPY aiqleads aiqleads
COPY pipeline pipeline
COPY components components
COPY transforms transforms
COPY serving serving
COPY monitoring monitoring
COPY cli cli
RUN uv pip install --python /opt/venv/bin/python -c requirements/constraints.txt .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 aiqleads \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin aiqleads
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
