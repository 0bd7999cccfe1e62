"""The caching gateway: recommendation API (REST and gRPC) and a caching TF Serving pass-through.

Layers, as in the model server: transports (`protocol.rest`, `protocol.grpc`) -> data plane
(`dataplane`, `passthrough`) -> cache (`cache`) and model servers (`model_client`); `server`
wires one replica from a `GatewayConfig`, and `__main__` builds that config from flags.
"""
