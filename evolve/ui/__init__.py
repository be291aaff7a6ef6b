"""``evolve ui``: a read-only web view of the archive (Starlette, Jinja2 templates, SVG charts
drawn on the server, no JavaScript). Imported only by the ``ui`` command, so the rest of the
CLI works where starlette and uvicorn are not installed."""
