"""The archive: every run, program, evaluation and LLM call, in a SQL database."""
