"""A search on a Ray cluster of several nodes sharing a PostgreSQL archive, losing a node
mid-run: its candidates go back to the queue and nothing is lost or judged twice."""

from __future__ import annotations

import asyncio
import os

import pytest

from archive import Archive
from evolve.config import validate
from evolve.executor import RayExecutor
from evolve.operators import BUILTIN
from evolve.search import Search

from .test_search_run import assert_each_program_judged_once

pytestmark = [pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.skipif(not os.environ.get("EVOLVE_TEST_POSTGRES_URL"),
                                 reason="$EVOLVE_TEST_POSTGRES_URL is not set")]


def test_losing_a_node_mid_run_loses_and_repeats_nothing(postgres_url: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    cfg = validate({"budget": {"candidates": 10}, "simulate": True, "random_seed": 11, "operators": {"mutate": 1.0}})
    archive = Archive.open(postgres_url)
    executor = RayExecutor("mha_fwd", simulate=True, workers=2, per_worker=1, ray_address=cluster.address,
                           check_options={}, job_timeout_s=300)
    search = Search(cfg, archive, executor, {"mutate": BUILTIN["mutate"]()})
    removed: list[str] = []

    def lose_a_busy_node(p) -> None:  # type: ignore[no-untyped-def]
        if removed or p.evaluated < 3:
            return
        busy = [s for s in executor._slots if s.jobs]
        if not busy:
            return
        node_id = ray.get(busy[0].actor.info.remote())["node"]
        victim = next(n for n in nodes if n.node_id == node_id)
        cluster.remove_node(victim)
        removed.append(node_id)

    search.on_progress = lose_a_busy_node
    try:
        run_id = search.open()
        progress = asyncio.run(search.run())
        assert removed, "no node was lost during the run"
        assert progress.evaluated == 10 and progress.status == "finished"
        assert_each_program_judged_once(archive, run_id)
        judged_on = {archive.get_program(pid).latest_evaluation.outcome.value for pid in archive.program_ids(run_id)}
        assert "crashed" not in judged_on
    finally:
        executor.close()
        archive.close()
        cluster.shutdown()
