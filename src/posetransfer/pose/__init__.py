"""Pose representation: the 18-keypoint schema, annotation I/O, encodings and keypoint transforms."""
