"""RANP's model side: relevance-aware losses, nDCG and mAP."""
