"""The multi-master demo: fruit stores on replicating servers, merging what they write."""
