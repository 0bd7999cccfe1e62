"""The model server's transports: REST (`rest`, JSON formats in `rest_json`) and gRPC (`grpc`)
over the data plane."""
