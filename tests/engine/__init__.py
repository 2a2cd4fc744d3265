"""Tests of the storage engine (pingthings.server.engine)."""
