"""The ``evolve`` command line. Each command lives in ``evolve/commands/``; this module only
assembles them and turns user mistakes into one-line errors at the edge."""

from __future__ import annotations

import sys

import typer

from archive.errors import ArchiveError
from evolve.errors import UserError

app = typer.Typer(
    name="evolve",
    help="Evolve faster Triton attention kernels: check candidates, run MAP-Elites searches, "
    "browse the archive and export the winners as a library.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Evolve faster Triton attention kernels."""


def _register() -> None:
    from evolve.commands import archive, check, export, llm, run, ui

    for command in (check, run, archive, llm, export, ui):
        command.register(app)


_register()


def main() -> None:
    try:
        app()
    except (UserError, ArchiveError) as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
