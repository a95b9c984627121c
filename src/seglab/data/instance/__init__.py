"""Instance segmentation data: COCO and mask-folder datasets, their doctor, converters and statistics."""
