"""The archive: every run, program, evaluation and LLM call, in a SQL database.

``Archive.open(url)`` is the entry point; its methods return the frozen records of
``archive.records``. See ``archive/store.py`` for the API.
"""

from archive.engine import default_url
from archive.errors import ArchiveError
from archive.hashing import code_hash, content_hash, normalize_code
from archive.models import ProgramState, RunStatus
from archive.records import (
    CaseBest,
    CellInfo,
    ConfirmationInfo,
    EvaluationInfo,
    EventInfo,
    FailureGroup,
    GenerationStats,
    GridAxis,
    GridView,
    LineageStep,
    LlmCallInfo,
    ModelCredit,
    OperatorStats,
    ProgramInfo,
    RunInfo,
    RunStats,
    RunSummary,
    ShapeResultInfo,
    Spend,
    TimingInfo,
    TopEntry,
)
from archive.schema import SchemaChange
from archive.store import Archive, upgrade_archive

__all__ = [
    "Archive",
    "ArchiveError",
    "CaseBest",
    "CellInfo",
    "ConfirmationInfo",
    "EvaluationInfo",
    "EventInfo",
    "FailureGroup",
    "GenerationStats",
    "GridAxis",
    "GridView",
    "LineageStep",
    "LlmCallInfo",
    "ModelCredit",
    "OperatorStats",
    "ProgramInfo",
    "ProgramState",
    "RunInfo",
    "RunStats",
    "RunStatus",
    "RunSummary",
    "SchemaChange",
    "ShapeResultInfo",
    "Spend",
    "TimingInfo",
    "TopEntry",
    "code_hash",
    "content_hash",
    "default_url",
    "normalize_code",
    "upgrade_archive",
]
