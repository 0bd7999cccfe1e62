"""Tiny hand-made raw interaction examples and a Beam run of `preprocessing_fn` over them.

Shared by the Transform and Trainer tests (loaded by path: tests are not a package).
Geometry (region ``north``): leads L1 (47.0, -122.0) and L2 share a 0.01-deg cell; L4 sits
one degree of latitude north (48.0, -122.0). Region ``south``: L3 at (45.0, -120.0).
"""

from __future__ import annotations

import pathlib

from transforms import features as f

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "pipeline" / "schema" / "schema.pbtxt"

LEADS = {
    # lead_id: (lat, lon, region, type, price, market_median_price)
    "L1": (47.0, -122.0, "north", "house", 500_000.0, 400_000.0),
    "L2": (47.001, -121.999, "north", "condo", 300_000.0, 400_000.0),
    "L3": (45.0, -120.0, "south", "house", None, 200_000.0),
    "L4": (48.0, -122.0, "north", "house", 400_000.0, 400_000.0),
}

# (user_id, lead_id, engagement, user location or None, user median price or None)
INTERACTIONS = (
    ("U1", "L1", 4, (48.0, -122.0), 450_000.0),
    ("U1", "L1", 2, (48.0, -122.0), 450_000.0),
    ("U2", "L1", 0, None, None),
    ("U2", "L2", 0, None, None),
    ("U1", "L4", 1, (48.0, -122.0), 450_000.0),
    ("U2", "L3", 3, None, None),
)
# user_lead_events of (user, lead, engagement); left out (missing, read as 0) elsewhere.
PAIR_HISTORY = {("U1", "L1", 4): 3.0}
# user_type_share of (user, lead, engagement); left out (missing, read as 0) elsewhere.
TYPE_SHARE = {("U1", "L1", 4): 0.6, ("U1", "L4", 1): 0.25}
# user_region_share likewise; 1.5 is out of range (clipped to 1).
REGION_SHARE = {("U1", "L1", 4): 0.8, ("U1", "L4", 1): 1.5}


def raw_example(user_id: str, lead_id: str, engagement: int | None, loc, user_price) -> dict:
    """One raw example as a feature dict of lists (empty list = missing)."""
    lat, lon, region, ptype, price, market_price = LEADS[lead_id]
    ex = {
        f.USER_ID: [user_id.encode()],
        f.LEAD_ID: [lead_id.encode()],
        f.EVENT_TIMESTAMP: [1767225600],
        f.LEAD_LATITUDE: [lat],
        f.LEAD_LONGITUDE: [lon],
        f.REGION: [region.encode()],
        f.PROPERTY_TYPE: [ptype.encode()],
        f.PRICE_BAND: [b"at_market"],
        f.PRICE: [] if price is None else [price],
        f.BEDROOMS: [3],
        f.BATHROOMS: [2.0],
        f.LIVING_AREA: [120.0],
        f.LEAD_AGE_DAYS: [10.0],
        f.USER_LATITUDE: [] if loc is None else [loc[0]],
        f.USER_LONGITUDE: [] if loc is None else [loc[1]],
        f.USER_VIEWS: [3],
        f.USER_CLICKS: [1],
        f.USER_INQUIRIES: [0],
        f.USER_PURCHASES: [0],
        f.USER_DAYS_SINCE_LAST: [2.0],
        f.USER_MEDIAN_PRICE: [] if user_price is None else [user_price],
        f.MARKET_DEMAND: [100.0],
        f.MARKET_MEDIAN_PRICE: [market_price],
        f.MARKET_INVENTORY: [50.0],
        f.MARKET_PRICE_TREND: [0.02],
    }
    history = PAIR_HISTORY.get((user_id, lead_id, engagement))
    if history is not None:
        ex[f.USER_LEAD_EVENTS] = [history]
    for key, values in ((f.USER_TYPE_SHARE, TYPE_SHARE), (f.USER_REGION_SHARE, REGION_SHARE)):
        share = values.get((user_id, lead_id, engagement))
        if share is not None:
            ex[key] = [share]
    if engagement is not None:
        ex[f.ENGAGEMENT] = [engagement]
    return ex


def raw_examples(rows=INTERACTIONS) -> list[dict]:
    return [raw_example(*row) for row in rows]


def load_schema():
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(SCHEMA_PATH.read_text(), schema_pb2.Schema())


def to_tf_example(ex: dict) -> bytes:
    import tensorflow as tf

    feats = {}
    for key, values in ex.items():
        if values and isinstance(values[0], bytes):
            feats[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif values and isinstance(values[0], float):
            feats[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        elif values:
            feats[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def analyze_and_transform(examples: list[dict], out_dir: pathlib.Path, eval_examples=None):
    """Run `preprocessing_fn` through Beam; write the transform graph and transformed data.

    Returns the transformed training rows read back from ``Split-train`` (dicts of scalars). ``out_dir/transform_graph`` is a
    Transform output directory; ``out_dir/Split-{train,eval}/`` hold gzipped TFRecords.
    """
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from transforms.preprocessing import preprocessing_fn

    spec = schema_utils.schema_as_feature_spec(load_schema()).feature_spec
    for ex in examples:  # fill dense features that the examples may omit
        for key in spec:
            ex.setdefault(key, [])
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    eval_examples = eval_examples if eval_examples is not None else examples
    options = PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    context = tft_beam.Context(temp_dir=str(out_dir / "tmp"), force_tf_compat_v1=False)
    with context, beam.Pipeline(options=options) as p:
        data = p | "Train" >> beam.Create(examples)
        (transformed, tmeta), transform_fn = (
            data,
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(out_dir / "transform_graph"))
        ev = p | "Eval" >> beam.Create(eval_examples)
        (ev_t, _) = ((ev, metadata), transform_fn) | tft_beam.TransformDataset()
        coder = tft.coders.ExampleProtoCoder(tmeta.dataset_metadata.schema)
        for name, rows in (("train", transformed), ("eval", ev_t)):
            _ = (
                rows
                | f"Enc{name}" >> beam.Map(coder.encode)
                | f"Write{name}"
                >> beam.io.WriteToTFRecord(
                    str(out_dir / f"Split-{name}" / "transformed_examples"),
                    file_name_suffix=".gz",
                )
            )
    return read_rows(out_dir)


def read_rows(out_dir: pathlib.Path, split: str = "train") -> list[dict]:
    """Transformed rows of ``Split-<split>``, parsed with the transformed feature spec."""
    import tensorflow as tf
    import tensorflow_transform as tft

    spec = tft.TFTransformOutput(str(out_dir / "transform_graph")).transformed_feature_spec()
    files = tf.io.gfile.glob(str(out_dir / f"Split-{split}" / "*"))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        parsed = tf.io.parse_single_example(record, spec)
        rows.append({k: v.numpy().item() for k, v in parsed.items()})
    return rows
