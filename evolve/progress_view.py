"""What a user watches during a long search: a live panel, or (quiet, or for a log file)
a line every so often."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from evolve.search import Progress

log = logging.getLogger("evolve.run")


def _fmt_budget(p: Progress) -> str:
    parts = []
    if "candidates" in p.budget:
        parts.append(f"{p.evaluated}/{p.budget['candidates']} candidates")
    if "seconds" in p.budget:
        parts.append(f"{p.elapsed_s / 60:.1f}/{p.budget['seconds'] / 60:.1f} min")
    return ", ".join(parts)


def _modelled(p: Progress) -> str:
    return " modelled" if p.simulated else ""


def summary_line(p: Progress) -> str:
    best = f"{p.best_fitness:.3f}x{_modelled(p)}" if p.best_fitness is not None else "-"
    tflops = f"{p.best_tflops:.0f} TFLOP/s{_modelled(p)}" if p.best_tflops is not None else "-"
    return (f"run {p.run_id}: {p.evaluated} evaluated ({p.passed} passed, {p.failed} failed, {p.duplicates} duplicates "
            f"skipped), {p.in_flight} in flight, {p.per_minute:.1f}/min; best {best} ({tflops}, program "
            f"{p.best_program}); re-timed beside an elite: {p.confirmed} confirmed, {p.unconfirmed} within the "
            f"noise; coverage {100 * p.coverage:.1f}%; budget {_fmt_budget(p)}")


def _table(p: Progress) -> Table:
    t = Table(title=f"evolve run {p.run_id} — {p.workers}", show_header=False, expand=False)
    t.add_column(style="bold")
    t.add_column()
    best = (f"{p.best_fitness:.3f}x vs baseline" + (" (modelled by --simulate's cost model, not measured)"
                                                     if p.simulated else "")
            if p.best_fitness is not None else "waiting for the seed")
    t.add_row("candidates", f"{p.evaluated} done · {p.in_flight} in flight · {p.failed} failed · "
                            f"{p.duplicates} duplicates skipped")
    t.add_row("rate", f"{p.per_minute:.1f} per minute")
    t.add_row("best", best + (f" · {p.best_tflops:.0f} TFLOP/s{_modelled(p)} mean · program {p.best_program}"
                              if p.best_tflops is not None else ""))
    t.add_row("re-timed", f"{p.confirmed} gains confirmed beside the elite they displace · "
                          f"{p.unconfirmed} within the noise (not admitted)")
    t.add_row("grid coverage", f"{100 * p.coverage:.1f}%")
    t.add_row("budget", _fmt_budget(p))
    return t


class ProgressView:
    def __init__(self, console: Console, quiet: bool, every_s: float = 30.0) -> None:
        self.console, self.quiet, self.every_s = console, quiet, every_s
        self._live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> ProgressView:
        if not self.quiet:
            self._live = Live(console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self.console.line()  # the live panel leaves the cursor at the end of its last line

    def update(self, p: Progress) -> None:
        if self._live is not None:
            self._live.update(_table(p))
        now = time.monotonic()
        if now - self._last_line >= self.every_s:
            self._last_line = now
            log.info(summary_line(p))
