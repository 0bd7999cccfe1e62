"""The Trainer module: model, run_fn and serving signatures."""
