"""TeachText's training side: the distillation term of a batch, exporting a trained model as a teacher."""
