"""A TF-Serving-compatible model server (`aiqleads-model-server`): same flags, APIs and files.

Layers: transports (`protocol.rest`, `protocol.grpc`) -> data plane (`dataplane`) -> models
(`manager`, with `warmup`) -> one loaded version (`inference`, `servable`); `server` wires
them into one process from the flags, and `main` is the console script.
"""
