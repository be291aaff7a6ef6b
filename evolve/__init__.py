"""The search: MAP-Elites over Triton kernels, its operators, and the ``evolve`` CLI."""
