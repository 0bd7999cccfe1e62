"""The online feature store's streaming updater process (`python -m serving.feature_store`)."""
