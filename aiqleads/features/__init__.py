"""The feature store: entities, versioned feature views, the online store, materialization
and streaming updates (docs/feature_store.md)."""
