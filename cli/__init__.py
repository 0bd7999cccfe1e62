"""The `aiqleads` command line, the top layer: it drives data sets, the pipeline and serving."""
