"""Prompt templates and the knowledge base given to models (data files)."""
