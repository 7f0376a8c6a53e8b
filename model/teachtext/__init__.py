"""TeachText's model side: the distillation term."""
