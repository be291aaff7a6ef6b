"""The web app through Starlette's test client: every page and JSON endpoint on a filled archive
(SQLite, and PostgreSQL when a server is configured), escaping, errors, and read-only routes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from archive import Archive
from evolve.ui.app import create_app

from .data import HOSTILE_ANSWER, HOSTILE_LOG, SCRIPT, Filled


@pytest.fixture(scope="module")
def client(filled: tuple[Archive, Filled]) -> TestClient:
    return TestClient(create_app(filled[0]))


def test_the_runs_page_lists_each_run_with_its_progress_and_best(client: TestClient, filled: tuple[Archive, Filled]) -> None:
    run = filled[1].pop.run
    page = client.get("/")
    assert page.status_code == 200
    assert f'href="/runs/{run}"' in page.text and "demo" in page.text and "2.300x" in page.text
    assert "refresh" not in page.text  # no run is going
    runs = client.get("/api/runs").json()
    assert [r["run"]["id"] for r in runs] == [run]
    assert runs[0]["stats"]["evaluations"] == 6 and runs[0]["summary"]["best_fitness"] == pytest.approx(2.3)


def test_a_running_run_refreshes_its_pages(tmp_path: Path) -> None:
    with Archive.open(f"sqlite:///{tmp_path / 'live.db'}") as archive:
        run = archive.create_run("mha_fwd", {}, simulated=True, budget={"candidates": 10})
        client = TestClient(create_app(archive))
        assert '<meta http-equiv="refresh"' in client.get("/").text
        assert '<meta http-equiv="refresh"' in client.get(f"/runs/{run}").text
        assert "No grid yet" in client.get(f"/runs/{run}").text
        assert client.get("/api/runs").json()[0]["progress"]["candidates"] == 10


def test_the_run_page_draws_the_grid_linking_each_cell_to_its_elite(client: TestClient, filled: tuple[Archive, Filled]) -> None:
    f = filled[1]
    page = client.get(f"/runs/{f.pop.run}")
    assert page.status_code == 200
    links = set(re.findall(r'<a class="cell-link" href="/programs/(\d+)"', page.text))
    assert links == {str(p) for p in (f.pop.seed, f.pop.child, f.pop.best, f.hostile)}
    assert page.text.count('class="cell empty"') == 6 - 4  # 3 block_m x 2 warps
    assert page.text.count('class="point"') == 2 * 4  # best fitness and QD-score, four generations each
    for section in ("operators", "models", "failures", "top", "events"):
        assert f'id="{section}"' in page.text
    assert "fake-model" in page.text and "llm_mutate" in page.text and "rel err 0.31" in page.text
    by_stages = client.get(f"/runs/{f.pop.run}", params={"x": "stages", "y": "block_m"})
    assert by_stages.status_code == 200 and by_stages.text.count('class="cell ') == 2 * 3


def test_the_run_json_holds_grid_stats_operators_and_failures(client: TestClient, filled: tuple[Archive, Filled]) -> None:
    f = filled[1]
    data = client.get(f"/api/runs/{f.pop.run}").json()
    assert data["grid"]["fitness"][0] == [1.0, 1.5, 2.0]
    assert data["stats"]["cells"] == 4 and len(data["cells"]) == 4
    assert [g["best_fitness"] for g in data["generations"]] == [1.0, 1.5, 2.0, 2.3]
    operators = {o["operator"]: o for o in data["operators"]}
    assert operators["mutate"]["programs"] == 4 and operators["llm_mutate"]["passed"] == 1
    assert data["models"] == [{"model": "fake-model", "proposals": 1, "programs": 1, "reward": 0.3,
                               "cost_usd": 0.0012, "tokens": 200}]
    assert data["failures"][0]["stage"] == "sweep" and data["top"][0]["program_id"] == f.hostile


def test_the_program_page_shows_source_diff_lineage_speed_log_and_calls(client: TestClient, filled: tuple[Archive, Filled]) -> None:
    f = filled[1]
    page = client.get(f"/programs/{f.hostile}")
    assert page.status_code == 200
    text = page.text
    assert 'class="highlight"' in text and '<span class="k">def</span>' in text  # pygments-highlighted
    assert f'id="diff-{f.pop.best}"' in text and 'class="gi"' in text  # the diff's inserted lines
    assert [int(i) for i in re.findall(r'<li><a href="/programs/(\d+)"', text)] == [f.hostile, f.pop.best, f.pop.child,
                                                                                      f.pop.seed]
    assert text.count('class="bar candidate"') == 2 and text.count('class="interval"') == 1
    assert "B4 H16 N1024 D64 fp16" in text
    assert f'id="call-{f.call}"' in text and "fake-model" in text
    assert "1.120x [1.080, 1.160], admitted" in text


def test_candidate_and_model_text_is_escaped_never_markup(client: TestClient, filled: tuple[Archive, Filled]) -> None:
    f = filled[1]
    page = client.get(f"/programs/{f.hostile}")
    assert "<script" not in page.text.lower() and "<img" not in page.text.lower() and "<b>" not in page.text
    assert "&lt;script&gt;document.title" in page.text
    log = re.search(r'<pre class="log" id="log-text">(.*?)</pre>', page.text, re.S)
    assert log is not None and log.group(1) == str(escape(HOSTILE_LOG))
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    assert "default-src 'none'" in page.headers["content-security-policy"]
    data = client.get(f"/api/programs/{f.hostile}").json()  # JSON carries the text as it was
    assert data["evaluations"][0]["log"] == HOSTILE_LOG
    assert data["llm_calls"][0]["response"] == HOSTILE_ANSWER and SCRIPT in data["program"]["source"]


def test_the_program_json_holds_evaluations_lineage_confirmations_and_calls(client: TestClient, filled: tuple[Archive, Filled]) -> None:
    f = filled[1]
    data = client.get(f"/api/programs/{f.hostile}").json()
    assert data["program"]["parents"] == [f.pop.best] and "latest_evaluation" in data["program"]
    assert data["evaluations"][0]["timings"][0]["speedup_low"] == 2.1
    assert [s["program_id"] for s in data["lineage"]][:2] == [f.hostile, f.pop.best]
    assert data["confirmations"][0]["rival_id"] == f.pop.best
    assert [c["id"] for c in data["llm_calls"]] == [f.call]
    pending = client.get(f"/programs/{f.pop.pending}")
    assert pending.status_code == 200 and "Not evaluated yet" in pending.text


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/runs/999", 404, "no run 999"),
    ("/programs/999", 404, "no program 999"),
    ("/programs/abc", 404, "no program &#39;abc&#39;"),
    ("/api/runs/999", 404, "no run 999"),
    ("/api/programs/999", 404, "no program 999"),
    ("/nowhere", 404, "Not Found"),
])
def test_unknown_pages_answer_404_with_the_reason(client: TestClient, path: str, status: int, message: str) -> None:
    r = client.get(path)
    assert r.status_code == status
    assert message in (r.json()["error"] if path.startswith("/api/") else r.text)


def test_an_unknown_grid_dimension_names_the_known_ones(client: TestClient, filled: tuple[Archive, Filled]) -> None:
    r = client.get(f"/runs/{filled[1].pop.run}", params={"x": "<tile>"})
    assert r.status_code == 400
    assert "no grid dimension &#39;&lt;tile&gt;&#39;; its dimensions: block_m, warps, stages" in r.text


def test_the_app_is_read_only(client: TestClient, filled: tuple[Archive, Filled]) -> None:
    for method in ("post", "put", "delete"):
        assert getattr(client, method)(f"/api/runs/{filled[1].pop.run}").status_code == 405
    assert client.get("/static/style.css").status_code == 200 and client.get("/highlight.css").status_code == 200
