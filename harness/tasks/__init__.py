"""Built-in tasks; each module registers itself with ``harness.task.register``."""
