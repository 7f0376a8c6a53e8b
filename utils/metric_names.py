"""Names of the retrieval metrics that configs, logs, pages and tables refer to."""

GMEAN_KEY = "geometric_mean_R1-R5-R10"  # geometric mean of R1, R5 and R10
