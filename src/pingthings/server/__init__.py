"""The embedded BTrDB-v5-compatible server: storage engine, metadata store and gRPC services."""
