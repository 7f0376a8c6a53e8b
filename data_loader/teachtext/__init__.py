"""TeachText's data side: teacher embeddings and denoising caption masks in the store."""
