"""Hand-written starting kernels, one per task, as candidate source files."""
