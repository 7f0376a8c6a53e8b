"""HGR's text inputs: captions tokenised as the original and their role graphs, in the store."""
