"""The gateway's transports: REST (`rest`) and gRPC (`grpc`) over the data plane."""
