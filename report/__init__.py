"""The results site: run folders, run pages, the site index, ranking pages, plots and seed tables."""
