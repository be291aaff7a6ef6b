"""The real thing: export measured runs of the three tasks (mha_fwd, gqa_fwd, attn_bwd), ``pip
install`` the package into a fresh virtual environment, and run the package's own tests there
with the kernels in Triton's interpreter: among them, that the buckets routed to the default
(D128 at short lengths, see ``factories.measured_run``) call torch's SDPA and the others the
kernels, that grouped-query calls of the measured group run the gqa kernel and others fall back,
and that the evolved backward (D64 without the mask, ``factories.bwd_run``) and torch's default
(everywhere else) give the naive reference's gradients."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from archive import Archive
from tests.export.factories import bwd_run, gqa_run, measured_run

pytestmark = pytest.mark.slow


def _venv(root: Path) -> Path:
    """A fresh venv that sees this interpreter's site-packages through a .pth line: pip finds
    torch and triton installed and never downloads GBs of wheels. Without its own pip (and the
    old setuptools ensurepip bundles, which cannot build wheels) it runs our pip and setuptools,
    installing into the new venv. A path line does not run the .pth files it names, so this
    project's editable install stays invisible there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True,
                   timeout=120)
    python = root / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_exported_package_installs_and_passes_its_tests(evolve, archive: Archive, db: str, seed_source: str,
                                                        tmp_path: Path) -> None:
    run, seed, variant = measured_run(archive, seed_source)
    gqa, gqa_program = gqa_run(archive)
    bwd, bwd_program = bwd_run(archive)
    out = tmp_path / "exported"
    assert evolve("export", run, gqa, bwd, "--out", out, "--name", "evolved_attention", "--db", db,
                  "--no-retime").code == 0

    python = _venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TRITON_INTERPRET": "1"}

    def sh(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(a) for a in args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=timeout)

    # --no-index: everything the package needs must already be there; --no-build-isolation: setuptools too.
    installed = sh(python, "-m", "pip", "install", "--no-index", "--no-build-isolation", out)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    where = sh(python, "-c", "import evolved_attention; print(evolved_attention.__file__)")
    assert str(tmp_path / "venv") in where.stdout, where.stdout + where.stderr
    assert sh(python, "-c", "import harness").returncode != 0  # this project is not what the tests lean on

    report = tmp_path / "junit.xml"
    tests = sh(python, "-m", "pytest", out / "tests", "-q", "-p", "no:cacheprovider", f"--junitxml={report}")
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    ran = {(c.get("classname", "").rsplit(".", 1)[-1], c.get("name", "").split("[")[0])
           for c in ET.parse(report).getroot().iter("testcase") if c.find("skipped") is None}
    for must in [("test_kernels", "test_kernel_matches_naive_reference"),
                 ("test_kernels", "test_covered_call_runs_the_kernels"),
                 ("test_kernels", "test_kernel_files_are_verbatim_copies_of_the_archive"),
                 ("test_kernels", "test_backward_kernel_matches_naive_gradients"),
                 ("test_kernels", "test_grouped_query_call_runs_the_kernels"),
                 ("test_kernels", "test_grouped_query_call_of_an_unmeasured_group_falls_back"),
                 ("test_gradients", "test_gradients_match_naive_reference"),
                 ("test_gradients", "test_evolved_backward_gradients_match_naive_reference"),
                 ("test_gradients", "test_training_call_without_evolved_backward_runs_the_default_whole"),
                 ("test_gradients", "test_grouped_query_gradients_match_naive_reference"),
                 ("test_gradients", "test_no_grad_call_runs_the_forward_tables_choice"),
                 ("test_gradients", "test_flash_refusal_computes_the_logsumexp_exactly_after_a_warning"),
                 ("test_fallback", "test_uncovered_call_falls_back_with_one_warning_per_reason"),
                 ("test_fallback", "test_strict_mode_raises_instead_of_falling_back"),
                 ("test_fallback", "test_strict_environment_variable"),
                 ("test_compile", "test_compiled_model_has_no_graph_breaks"),
                 ("test_compile", "test_compiled_model_matches_eager_forward_and_backward"),
                 ("test_compile", "test_strict_fallback_under_compile_raises_when_run"),
                 ("test_compile", "test_custom_op_passes_opcheck"),
                 ("test_compile", "test_training_custom_ops_pass_opcheck"),
                 ("test_compile", "test_compiled_training_through_the_evolved_backward_matches_eager"),
                 ("test_compile", "test_compiled_grouped_query_model_matches_eager"),
                 ("test_dispatch", "test_grouped_query_rows_are_keyed_by_their_group"),
                 ("test_dispatch", "test_each_length_runs_its_rows_choice"),
                 ("test_dispatch", "test_only_confirmed_rows_run_kernels"),
                 ("test_dispatch", "test_default_rows_call_torchs_sdpa"),
                 ("test_dispatch", "test_default_rows_call_torchs_sdpa_when_compiled")]:
        assert must in ran, f"{must} did not run: {sorted(ran)}"
    kernel_tests = [c.get("name", "") for c in ET.parse(report).getroot().iter("testcase")]
    for program in (seed, variant, gqa_program, bwd_program):
        assert any(f"program_{program}-" in n for n in kernel_tests), (program, kernel_tests)
    assert any(f"program_{gqa_program}-" in n and "-g4" in n for n in kernel_tests)
