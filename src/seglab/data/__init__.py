"""Datasets, the dataset doctor, transforms, statistics, converters and synthetic data."""

from seglab.data.checks import Problem, check_dataset, render_problems
from seglab.data.folder import SegmentationFolder

__all__ = ["Problem", "SegmentationFolder", "check_dataset", "render_problems"]
