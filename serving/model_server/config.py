"""TF Serving's text-format config files: ModelServerConfig, BatchingParameters, Monitoring.

`ModelServerConfig` comes from the `tensorflow_serving` package. The batching and monitoring
protos are not shipped in the pip package, so their messages are declared here with the same
names, field numbers and types, and every file is parsed with `google.protobuf.text_format`:
the files a real `tensorflow_model_server` reads are read the same way.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

from aiqleads.errors import ConfigError

PLATFORM = "tensorflow"
_MAX_CONFIG_BYTES = 4 * 1024 * 1024
_MAX_BATCH_SIZE = 1 << 16


def _declare_messages() -> dict[str, type[Message]]:
    """BatchingParameters and MonitoringConfig as TF Serving declares them."""
    t = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="aiqleads/model_server/serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )

    def add(
        msg: descriptor_pb2.DescriptorProto,
        name: str,
        number: int,
        kind: int,
        type_name: str = "",
        repeated: bool = False,
    ) -> None:
        label = t.LABEL_REPEATED if repeated else t.LABEL_OPTIONAL
        field = msg.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name

    int64v, boolv, strv = (
        ".google.protobuf.Int64Value",
        ".google.protobuf.BoolValue",
        ".google.protobuf.StringValue",
    )
    batching = fdp.message_type.add(name="BatchingParameters")
    add(batching, "max_batch_size", 1, t.TYPE_MESSAGE, int64v)
    add(batching, "batch_timeout_micros", 2, t.TYPE_MESSAGE, int64v)
    add(batching, "max_enqueued_batches", 3, t.TYPE_MESSAGE, int64v)
    add(batching, "num_batch_threads", 4, t.TYPE_MESSAGE, int64v)
    add(batching, "thread_pool_name", 5, t.TYPE_MESSAGE, strv)
    add(batching, "allowed_batch_sizes", 6, t.TYPE_INT64, repeated=True)
    add(batching, "pad_variable_length_inputs", 7, t.TYPE_BOOL)
    add(batching, "enable_large_batch_splitting", 8, t.TYPE_MESSAGE, boolv)
    add(batching, "max_execution_batch_size", 9, t.TYPE_MESSAGE, int64v)
    prometheus = fdp.message_type.add(name="PrometheusConfig")
    add(prometheus, "enable", 1, t.TYPE_BOOL)
    add(prometheus, "path", 2, t.TYPE_STRING)
    monitoring = fdp.message_type.add(name="MonitoringConfig")
    add(monitoring, "prometheus_config", 1, t.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    factory = message_factory.MessageFactory(pool)
    return {
        name: factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig")
    }


_MESSAGES = _declare_messages()
BatchingParametersProto = _MESSAGES["BatchingParameters"]
MonitoringConfigProto = _MESSAGES["MonitoringConfig"]


def _read_text_proto(path: str | os.PathLike[str], message: Message, what: str) -> Message:
    p = pathlib.Path(path)
    try:
        if p.stat().st_size > _MAX_CONFIG_BYTES:
            raise ConfigError(f"{what} {p} is larger than {_MAX_CONFIG_BYTES} bytes")
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {p}: {e.strerror or e}") from e
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise ConfigError(
            f"Invalid protobuf file: '{p}' is not a valid text-format "
            f"{message.DESCRIPTOR.name}. {parse_error_text(message.DESCRIPTOR.full_name, e)}"
        ) from e


_LOCATION = re.compile(r"^\d+(?::\d+)? : ")


def parse_error_text(message_type: str, error: text_format.ParseError) -> str:
    """A text-format parse error as TF Serving reports it on stderr (the protobuf parser's
    log line): `Error parsing text-format <type>: <line>:<column>: <what is wrong>`."""
    what = _LOCATION.sub("", str(error), count=1)
    line, column = error.GetLine(), error.GetColumn()
    if line is None:
        return f"Error parsing text-format {message_type}: {what}"
    where = f"{line}:{column}" if column is not None else f"{line}"
    return f"Error parsing text-format {message_type}: {where}: {what}"


def validate_model_server_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    """Reject configs TF Serving would reject (or that this server cannot honour)."""
    which = config.WhichOneof("config")
    if which != "model_config_list":
        raise ConfigError(
            "ModelServerConfig must hold model_config_list "
            f"(custom_model_config is not supported), got {which or 'nothing'}"
        )
    seen: set[str] = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise ConfigError("a model in model_config_list has no name")
        if model.name in seen:
            raise ConfigError(f"Illegal to list model {model.name} multiple times in config list")
        seen.add(model.name)
        if not model.base_path:
            raise ConfigError(f"model {model.name}: base_path is empty")
        if model.model_platform not in ("", PLATFORM):
            raise ConfigError(
                f"model {model.name}: model_platform {model.model_platform!r} is not "
                f"supported; use {PLATFORM!r}"
            )
        policy = model.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        if kind == "specific" and not policy.specific.versions:
            raise ConfigError(f"model {model.name}: specific version policy lists no versions")
        if kind == "latest" and policy.latest.num_versions < 0:
            raise ConfigError(f"model {model.name}: latest.num_versions must be >= 0")
        for label, version in model.version_labels.items():
            if not label or version < 0:
                raise ConfigError(f"model {model.name}: bad version label {label!r} -> {version}")


def load_model_server_config(
    path: str | os.PathLike[str],
) -> model_server_config_pb2.ModelServerConfig:
    """Read and validate a `ModelServerConfig` text proto; base paths made absolute."""
    config = _read_text_proto(path, model_server_config_pb2.ModelServerConfig(), "model config")
    validate_model_server_config(config)
    for model in config.model_config_list.config:
        model.base_path = os.path.abspath(model.base_path)
        if not model.model_platform:
            model.model_platform = PLATFORM
    return config


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config `--model_name`/`--model_base_path` stand for."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = os.path.abspath(base_path)
    model.model_platform = PLATFORM
    validate_model_server_config(config)
    return config


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Batching parameters with TF Serving's defaults."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 100
    num_batch_threads: int = 1


def load_batching_parameters(path: str | os.PathLike[str] | None) -> BatchingOptions:
    """Read a `BatchingParameters` text proto (defaults for unset fields or no file)."""
    if not path:
        return BatchingOptions()
    proto = _read_text_proto(path, BatchingParametersProto(), "batching parameters")
    values: dict[str, int] = {}
    for field in dataclasses.fields(BatchingOptions):
        if proto.HasField(field.name):
            values[field.name] = getattr(proto, field.name).value
    options = BatchingOptions(**values)
    if not 1 <= options.max_batch_size <= _MAX_BATCH_SIZE:
        raise ConfigError(f"max_batch_size must be in 1..{_MAX_BATCH_SIZE}")
    if options.batch_timeout_micros < 0 or options.max_enqueued_batches < 1:
        raise ConfigError("batch_timeout_micros must be >= 0 and max_enqueued_batches >= 1")
    if options.num_batch_threads < 1:
        raise ConfigError("num_batch_threads must be >= 1")
    return options


PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # TF Serving's default endpoint path


def monitoring_config_text(path: str = PROMETHEUS_PATH) -> str:
    """A `MonitoringConfig` text proto enabling Prometheus metrics at `path` on the REST port
    (what the local launcher and the Kubernetes manifests give every model server). The
    proto is not in the tensorflow-serving-api wheel; its text here is two fields."""
    return f'prometheus_config {{\n  enable: true\n  path: "{path}"\n}}\n'


def load_monitoring_path(path: str | os.PathLike[str] | None) -> str | None:
    """The Prometheus endpoint path a `MonitoringConfig` enables, or None."""
    if not path:
        return None
    proto = _read_text_proto(path, MonitoringConfigProto(), "monitoring config")
    prom = proto.prometheus_config
    if not prom.enable:
        return None
    endpoint = prom.path or PROMETHEUS_PATH
    if not endpoint.startswith("/"):
        raise ConfigError(f"prometheus_config.path must start with '/', got {endpoint!r}")
    return endpoint
