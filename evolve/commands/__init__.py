"""One module per ``evolve`` command; each exposes ``register(app)``."""
