"""The feature store: its HDF5 layout, writing and opening it, rows read on demand."""
