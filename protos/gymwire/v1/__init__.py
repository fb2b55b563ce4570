"""Generated gymwire.v1 protobuf and gRPC stubs (see protos/generate.py)."""
