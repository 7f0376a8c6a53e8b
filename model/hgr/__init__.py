"""HGR (Hierarchical Graph Reasoning, Chen et al., CVPR 2020), the model behind RANP's published numbers."""
