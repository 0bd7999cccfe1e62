"""Run `preprocessing_fn` over ExampleGen output outside a pipeline (tests, benchmarks).

Same inputs and outputs as TFX's Transform component, minus MLMD: analyze on
``Split-train``, transform every split, write ``transform_graph/`` (a TFTransformOutput
directory) and ``transformed_examples/Split-<name>/`` gzipped TFRecords that `run_fn`
reads. The pipeline itself uses the real Transform component.
"""

from __future__ import annotations

import os
import pathlib

import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.options.pipeline_options import PipelineOptions
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tfx_bsl.coders import example_coder
from tfx_bsl.public import tfxio

from transforms.preprocessing import preprocessing_fn

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "pipeline" / "schema" / "schema.pbtxt"
SPLITS = ("train", "eval")


def load_schema(path: pathlib.Path = SCHEMA_PATH) -> schema_pb2.Schema:
    return text_format.Parse(pathlib.Path(path).read_text(), schema_pb2.Schema())


def transform_splits(examples_dir: str, out_dir: str, splits=SPLITS) -> dict[str, str]:
    """Analyze ``Split-train`` and transform ``splits``; returns output paths by name."""
    schema = load_schema()
    out = pathlib.Path(out_dir)
    graph_dir = out / "transform_graph"
    paths = {"transform_graph": str(graph_dir)}

    def source(split: str):
        pattern = os.path.join(examples_dir, f"Split-{split}", "*")
        return tfxio.TFExampleRecord(file_pattern=pattern, schema=schema)

    options = PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    with tft_beam.Context(temp_dir=str(out / "tmp")), beam.Pipeline(options=options) as p:
        train = source("train")
        raw = p | "ReadTrain" >> train.BeamSource()
        transform_fn = (
            raw,
            train.TensorAdapterConfig(),
        ) | tft_beam.AnalyzeDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(graph_dir))
        for split in splits:
            io = source(split)
            data = p | f"Read{split}" >> io.BeamSource()
            transformed, _ = ((data, io.TensorAdapterConfig()), transform_fn) | (
                f"Transform{split}" >> tft_beam.TransformDataset(output_record_batches=True)
            )
            target = out / "transformed_examples" / f"Split-{split}"
            paths[split] = str(target)
            _ = (
                transformed
                | f"Encode{split}"
                >> beam.FlatMap(lambda batch_and_extras: _encode(batch_and_extras[0]))
                | f"Write{split}"
                >> beam.io.WriteToTFRecord(
                    str(target / "transformed_examples"), file_name_suffix=".gz"
                )
            )
    # The raw schema beside the graph, as the Transform component writes it (serving
    # signatures parse raw tf.Examples with it).
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema),
        str(graph_dir / tft.TFTransformOutput.RAW_METADATA_DIR),
    )
    return paths


def _encode(record_batch) -> list[bytes]:
    return example_coder.RecordBatchToExamplesEncoder().encode(record_batch)
