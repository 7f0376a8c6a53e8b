"""Interfaces shared by the trainer and the models."""
