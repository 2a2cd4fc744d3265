"""SQLite store for stream metadata, devices, units, collection properties and retention."""
