"""The storage engine: one copy-on-write statistics tree per stream, persisted in SQLite."""
