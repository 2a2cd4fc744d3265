"""gRPC handlers: v5api.BTrDB and the pingthings platform service over the engine and metadata."""
