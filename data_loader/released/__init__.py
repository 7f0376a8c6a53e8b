"""The original releases: per-dataset facts, which files a config needs, reading and converting them into the store."""
