"""Checkpoints: this project's format, the safe (allow-list) loader every read goes through, original checkpoints."""
