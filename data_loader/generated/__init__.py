"""Generated datasets: the embedded Synthetic default and its classes."""
