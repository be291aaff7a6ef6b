"""The queries shared by the search, the exporter and the CLI, on a small populated run."""

from __future__ import annotations

import pytest

from archive import Archive, ArchiveError
from tests.archive.factories import BENCH_SHAPES, GRID, Populated, kernel, passed, populate, rejected


@pytest.fixture
def pop(archive: Archive) -> Populated:
    return populate(archive)


def test_a_cell_keeps_the_fitter_program(archive: Archive, pop: Populated) -> None:
    assert not archive.update_cell(pop.run, 9, [2, 0, 1], pop.crossover, 1.2)
    assert archive.update_cell(pop.run, 9, [2, 0, 1], pop.crossover, 2.5)
    cell = next(c for c in archive.cells(pop.run) if c.index == 9)
    assert (cell.coords, cell.program_id, cell.fitness) == ((2, 0, 1), pop.crossover, 2.5)
    assert len(archive.cells(pop.run)) == 3


def test_a_cell_refuses_coordinates_outside_the_grid(archive: Archive, pop: Populated) -> None:
    with pytest.raises(ValueError, match="outside dimension 'block_m'"):
        archive.update_cell(pop.run, 1, [3, 0, 0], pop.best, 9.0)
    with pytest.raises(ValueError, match="2 coordinates for a grid of 3"):
        archive.update_cell(pop.run, 1, [0, 0], pop.best, 9.0)


def test_the_grid_shows_the_best_fitness_over_the_hidden_dimensions(archive: Archive, pop: Populated) -> None:
    view = archive.grid(pop.run)
    assert (view.x.name, view.y and view.y.name) == ("block_m", "warps")
    assert view.x.labels == tuple(GRID["dims"][0]["labels"])
    assert view.fitness == ((1.0, 1.5, 2.0), (None, None, None))
    assert (view.filled, view.size) == (3, 12)
    by_stages = archive.grid(pop.run, x="stages", y="block_m")
    assert by_stages.fitness == ((1.0, None), (1.5, None), (None, 2.0))


def test_the_grid_names_the_dimensions_when_asked_for_an_unknown_one(archive: Archive, pop: Populated) -> None:
    with pytest.raises(ArchiveError, match="no grid dimension 'tile'; its dimensions: block_m, warps, stages"):
        archive.grid(pop.run, x="tile")


def test_a_run_without_a_grid_config_is_drawn_from_its_cells(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    with pytest.raises(ArchiveError, match="has no grid"):
        archive.grid(run)
    program, _ = archive.add_program(run, kernel(1), operator="seed")
    archive.update_cell(run, 5, [1, 2], program, 1.1)
    view = archive.grid(run)
    assert (view.x.name, view.x.labels, view.y and view.y.labels) == ("dim0", ("0", "1"), ("0", "1", "2"))
    assert view.fitness[2][1] == 1.1


def test_top_ranks_programs_by_their_best_passed_evaluation(archive: Archive, pop: Populated) -> None:
    archive.add_evaluation(pop.best, passed(1.1, 1.1), key="e-best-again", simulated=False)
    entries = archive.top(pop.run, 10)
    assert [e.program_id for e in entries] == [pop.best, pop.child, pop.crossover, pop.seed]
    assert (entries[0].fitness, entries[0].tflops) == (pytest.approx(2.0), pytest.approx(200.0))
    assert pop.crossover not in [e.program_id for e in archive.top(pop.run, 10, measured_only=True)]
    assert len(archive.top(pop.run, 2)) == 2


def test_best_per_case_picks_the_fastest_measured_program_per_shape(archive: Archive, pop: Populated) -> None:
    mixed, _ = archive.add_program(pop.run, kernel(9), operator="mutate")
    archive.add_evaluation(mixed, passed(1.0, 3.0), key="e-mixed", simulated=False)
    fast_but_simulated, _ = archive.add_program(pop.run, kernel(10), operator="mutate")
    archive.add_evaluation(fast_but_simulated, passed(9.0, 9.0), key="e-sim", simulated=True)
    cases = archive.best_per_case(pop.run)
    assert len(cases) == len(BENCH_SHAPES)
    by_shape = {tuple(sorted(c.timing.shape.items())): c for c in cases}
    first = by_shape[tuple(sorted(BENCH_SHAPES[0].items()))]
    second = by_shape[tuple(sorted(BENCH_SHAPES[1].items()))]
    assert (first.program_id, first.timing.speedup) == (pop.best, pytest.approx(2.0))
    assert (second.program_id, second.timing.speedup) == (mixed, pytest.approx(3.0))


def test_lineage_follows_first_parents_to_the_root(archive: Archive, pop: Populated) -> None:
    steps = archive.lineage(pop.crossover)
    assert [s.program_id for s in steps] == [pop.crossover, pop.best, pop.child, pop.seed]
    assert [s.operator for s in steps] == ["crossover", "mutate", "mutate", "seed"]
    assert steps[0].parents == (pop.best, pop.seed)
    assert steps[-1].program_id == pop.seed and steps[-1].parents == ()
    assert [s.fitness for s in steps] == pytest.approx([1.2, 2.0, 1.5, 1.0])


def test_diff_is_a_unified_diff_labelled_by_program(archive: Archive, pop: Populated) -> None:
    text = archive.diff(pop.seed, pop.best)
    assert text.startswith(f"--- program {pop.seed}\n+++ program {pop.best}\n")
    assert "-    return q * 0 + k" in text and "+    return q * 2 + k" in text
    assert archive.diff(pop.seed, pop.seed) == ""
    with pytest.raises(ArchiveError, match="no program 999"):
        archive.diff(pop.seed, 999)


def test_stats_count_outcomes_and_coverage(archive: Archive, pop: Populated) -> None:
    stats = archive.stats(pop.run)
    assert (stats.programs, stats.pending, stats.evaluations) == (6, 1, 5)
    assert stats.by_outcome == {"passed": 4, "rejected": 1}
    assert (stats.cells, stats.grid_size, stats.coverage) == (3, 12, pytest.approx(0.25))
    assert stats.qd_score == pytest.approx(4.5) and stats.best_fitness == pytest.approx(2.0)
    assert stats.evaluations_per_hour is not None and stats.evaluations_per_hour > 0


def test_failures_are_grouped_by_stage_and_reason_with_an_example(archive: Archive, pop: Populated) -> None:
    another, _ = archive.add_program(pop.run, kernel(11), operator="mutate")
    archive.add_evaluation(another, rejected(), key="e-another", simulated=False)
    [group] = archive.failures(pop.run)
    assert (group.stage.value, group.count, group.example_program_id) == ("sweep", 2, pop.failed)


def test_list_runs_counts_programs_by_their_fate(archive: Archive, pop: Populated) -> None:
    [summary] = archive.list_runs()
    assert (summary.programs, summary.evaluated, summary.passed, summary.failed) == (6, 5, 4, 1)
    assert summary.best_fitness == pytest.approx(2.0)


def test_operator_stats_count_each_operators_programs_passes_and_elites(archive: Archive, pop: Populated) -> None:
    stats = {s.operator: s for s in archive.operator_stats(pop.run)}
    assert list(stats) == ["crossover", "mutate", "seed"]
    mutate = stats["mutate"]
    # child, best, failed, pending: the pending one is not evaluated, the failed one did not pass
    assert (mutate.programs, mutate.evaluated, mutate.passed, mutate.best_fitness, mutate.elites) == (4, 3, 2, 2.0, 2)
    assert (stats["seed"].passed, stats["seed"].elites) == (1, 1)
    assert (stats["crossover"].passed, stats["crossover"].elites) == (1, 0)


def test_llm_calls_are_found_by_id_and_events_by_kind(archive: Archive, pop: Populated) -> None:
    ids = [archive.add_llm_call(pop.run, model=f"m{i}", purpose="mutate", prompt="p", response="r", prompt_tokens=1,
                                completion_tokens=1, cost_usd=0.0, latency_s=0.1, error=None) for i in range(3)]
    assert [c.model for c in archive.llm_calls_by_id([ids[2], ids[0], 10_000])] == ["m0", "m2"]
    archive.add_event(pop.run, "llm_credit", "credited", {"model": "m0"})
    archive.add_event(pop.run, "migration", "migrated")
    assert [e.kind for e in archive.events(pop.run, kind="llm_credit")] == ["llm_credit"]
    assert len(archive.events(pop.run)) == 2
    assert [e.kind for e in archive.events(pop.run, last=1)] == ["migration"]
    assert [e.kind for e in archive.events(pop.run, last=5)] == ["llm_credit", "migration"]


def test_model_credit_sums_each_models_credit_events(archive: Archive, pop: Populated) -> None:
    for model, program, reward in (("b", pop.best, 0.5), ("a", None, 0.0), ("b", pop.child, 0.25)):
        archive.add_event(pop.run, "llm_credit", "credited", {"model": model, "program_id": program, "reward": reward,
                                                               "cost_usd": 0.01, "tokens": 100})
    archive.add_event(pop.run, "other", "not credit", {"model": "b", "reward": 9.0})
    credit = archive.model_credit(pop.run, "llm_credit")
    assert [(c.model, c.proposals, c.programs, c.tokens) for c in credit] == [("a", 1, 0, 100), ("b", 2, 2, 200)]
    assert credit[1].reward == pytest.approx(0.75) and credit[1].cost_usd == pytest.approx(0.02)
    assert archive.model_credit(pop.run, "nothing") == []


def test_undecided_programs_are_passed_candidates_outside_the_grid_never_retimed(
        archive: Archive, pop: Populated) -> None:
    # the crossover passed and holds no cell: undecided; the seed, the elites, the rejected and
    # the pending program are not
    assert archive.undecided_programs(pop.run) == [(pop.crossover, pytest.approx(1.2))]
    archive.add_confirmation(pop.run, pop.crossover, pop.best, key="duel-1", speedup=0.6, low=0.59, high=0.61,
                             admitted=False, mode="gpu", device="H200", shapes=[])
    assert archive.undecided_programs(pop.run) == []
