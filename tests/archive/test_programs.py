"""Programs: de-duplication by normalized code, parents, descriptors and states."""

from __future__ import annotations

import pytest

from archive import Archive, ArchiveError, ProgramState, code_hash
from tests.archive.factories import kernel


@pytest.fixture
def run(archive: Archive) -> int:
    return archive.create_run("mha_fwd", {}, simulated=True)


def test_the_same_code_in_a_run_is_stored_once(archive: Archive, run: int) -> None:
    first, created = archive.add_program(run, kernel(1), operator="seed")
    again, created_again = archive.add_program(run, kernel(1, comment=" Reformatted."), operator="mutate")
    assert created and not created_again
    assert again == first
    assert archive.get_program(first).operator == "seed"


def test_the_same_code_in_another_run_is_a_new_program(archive: Archive, run: int) -> None:
    other = archive.create_run("mha_fwd", {}, simulated=True)
    a, _ = archive.add_program(run, kernel(1), operator="seed")
    b, created = archive.add_program(other, kernel(1), operator="seed")
    assert created and a != b
    assert archive.find_program_by_code(None, kernel(1, comment=" x")) == a
    assert archive.find_program_by_code(other, kernel(1)) == b
    assert archive.find_program_by_code(run, kernel(2)) is None
    assert archive.has_code_hash(run, code_hash(kernel(1))) and not archive.has_code_hash(run, code_hash(kernel(2)))


def test_a_program_keeps_its_source_parents_in_order_and_descriptors(archive: Archive, run: int) -> None:
    a, _ = archive.add_program(run, kernel(1), operator="seed")
    b, _ = archive.add_program(run, kernel(2), operator="seed")
    source = kernel(3, comment=" Exact text kept.")
    child, _ = archive.add_program(
        run, source, parents=[b, a], operator="crossover", generation=4, island=2,
        descriptors={"block_m": 128.0, "warps": 8.0}, meta={"model": "m"},
    )
    info = archive.get_program(child)
    assert info.source == source
    assert info.parents == (b, a)
    assert (info.operator, info.generation, info.island) == ("crossover", 4, 2)
    assert info.descriptors == {"block_m": 128.0, "warps": 8.0}
    assert info.meta == {"model": "m"}
    assert info.code_hash == code_hash(source) and info.content_hash != info.code_hash
    assert info.state is ProgramState.PENDING and info.latest_evaluation is None


def test_unknown_runs_parents_and_programs_are_named_in_errors(archive: Archive, run: int) -> None:
    with pytest.raises(ArchiveError, match="^no run 77$"):
        archive.add_program(77, kernel(1), operator="seed")
    with pytest.raises(ArchiveError, match="^no program 555$"):
        archive.add_program(run, kernel(1), parents=[555], operator="mutate")
    with pytest.raises(ArchiveError, match="^no program 555$"):
        archive.get_program(555)
    assert archive.find_program_by_code(run, kernel(1)) is None


def test_pending_and_evaluating_programs_are_what_a_resume_requeues(archive: Archive, run: int) -> None:
    ids = [archive.add_program(run, kernel(i), operator="seed")[0] for i in range(3)]
    archive.set_program_state(ids[0], "evaluating")
    archive.set_program_state(ids[1], "evaluated")
    assert archive.pending_programs(run) == [ids[0], ids[2]]


def test_a_runs_programs_are_listed_oldest_first_and_only_its_own(archive: Archive, run: int) -> None:
    other = archive.create_run("mha_fwd", {}, simulated=True)
    mine = [archive.add_program(run, kernel(i), operator="seed")[0] for i in (1, 2)]
    theirs, _ = archive.add_program(other, kernel(3), operator="seed")
    archive.add_program(run, kernel(1, comment=" again"), operator="mutate")  # a duplicate adds nothing
    assert archive.program_ids(run) == mine and archive.program_ids(other) == [theirs]
