"""The run's notebook: what worked and what failed, summarized by a model from the archive
every ``interval`` evaluations and shown in every proposal prompt. Each version is an
``llm_scratchpad`` event, so a resumed run starts from the last one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from archive import Archive
from evolve.llm.client import Completion, Message
from evolve.llm.prompts import Prompts
from evolve.llm.settings import Scratchpad as Settings
from evolve.llm.views import Views

log = logging.getLogger("evolve.llm")
EVENT = "llm_scratchpad"


@dataclass
class Notes:
    text: str | None = None
    at_evaluation: int = 0


class Scratchpad:
    def __init__(self, settings: Settings, archive: Archive, views: Views, prompts: Prompts) -> None:
        self.settings, self.archive, self.views, self.prompts = settings, archive, views, prompts
        self.notes = Notes()

    @property
    def text(self) -> str | None:
        return self.notes.text

    def load(self, run_id: int) -> None:
        last = [e.data for e in self.archive.events(run_id) if e.kind == EVENT and e.data]
        if last:
            self.notes = Notes(last[-1]["text"], int(last[-1]["evaluations"]))

    def due(self, evaluations: int) -> bool:
        every = self.settings.interval
        return every > 0 and evaluations > 0 and evaluations - self.notes.at_evaluation >= every

    async def refresh(self, run_id: int, evaluations: int, outcomes: list[dict[str, Any]],
                      ask: Callable[[list[Message], str], Awaitable[Completion]]) -> None:
        best = [self.views.program(t.program_id) for t in self.archive.top(run_id, 5)]
        failures = self.archive.failures(run_id)[:8]
        messages = self.prompts.scratchpad(previous=self.notes.text, best=best, outcomes=outcomes[-20:],
                                           failures=failures, max_chars=self.settings.max_chars)
        answer = await ask(messages, "scratchpad")
        # Tried once per interval whatever happens: a failing helper model is not asked at every proposal.
        self.notes = Notes(self.notes.text, evaluations)
        if not answer.ok or answer.text is None:
            log.warning("the scratchpad was not refreshed: %s", answer.detail)
            return
        text = answer.text.strip()[: self.settings.max_chars]
        self.notes = Notes(text, evaluations)
        self.archive.add_event(run_id, EVENT, f"scratchpad refreshed after {evaluations} evaluations",
                               {"text": text, "evaluations": evaluations, "llm_call": answer.call_id})
