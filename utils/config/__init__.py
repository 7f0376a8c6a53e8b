"""Configs: loading (inherit_from, --set, eval_settings), validation, and the plain option sections."""
