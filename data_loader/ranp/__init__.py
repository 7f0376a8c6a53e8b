"""RANP's data side: verb/noun classes in the store and the relevance built from them."""
