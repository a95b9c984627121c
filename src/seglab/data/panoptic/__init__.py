"""Panoptic data: the dataset, its on-disk format, doctor, converters and synthetic data."""
