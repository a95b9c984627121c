"""Datasets, the dataset doctor, transforms, statistics, converters and synthetic data."""
