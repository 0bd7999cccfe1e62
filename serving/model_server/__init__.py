"""A TF-Serving-compatible model server (`aiqleads-model-server`): same flags, APIs and files.

Layers: transports (`rest`, `grpc_server`) -> `dataplane` -> `manager` / `servable`.
"""
