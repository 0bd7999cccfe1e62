"""The caching gateway: recommendation API (REST and gRPC) and a caching TF Serving pass-through.

Layers: transports (`rest`, `grpc_service`) -> data plane (`service`, `passthrough`) -> cache
(`cache`) and model servers (`model_client`). Only `__main__` wires them from flags.
"""
