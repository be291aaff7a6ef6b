"""Sandboxed checking and timing of candidate kernels.

Kept free of heavy imports: the sandbox bootstrap imports this package before it is safe
to load torch.
"""
