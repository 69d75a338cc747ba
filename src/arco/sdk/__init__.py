"""The asset SDK: describe assets, their partitions, checks and policies in Python."""
