"""What the interaction ExampleGen records in MLMD, named once and free of TFX imports, so
that readers of MLMD (the model registry) need not import TFX to find a run's window."""

from __future__ import annotations

FINGERPRINT_KEY = "input_fingerprint"  # execution property: the window's files, then the code

# Custom properties recorded on the Examples artifact.
WINDOW_FIRST_PROPERTY = "window_first_span"
WINDOW_LAST_PROPERTY = "window_last_span"
FEATURE_VIEWS_PROPERTY = "feature_views"  # JSON {view: version} of the features retrieved
COUNT_PROPERTY_PREFIX = "num_examples_"
