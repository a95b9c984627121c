"""Semantic segmentation data: the folder dataset, its doctor, converters and statistics."""
