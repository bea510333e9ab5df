"""The gRPC door: a thin grpc.aio servicer over the inference core."""
