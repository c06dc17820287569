"""The PyTorch and JAX ports in examples/ run in their own process and pass ``refvpng check``.

They need the ``interop`` extra (torch, jax[cpu]), which the ``test`` extra installs. They run with
this interpreter, or with the one named by ``REFVPNG_INTEROP_PYTHON`` (an environment holding torch
and jax but not necessarily refvpng). They are never skipped: without the frameworks the test fails
and says what to install.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from refvpng.conformance import check, fixtures_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PORTS = [
    ("torch_logistic_port.py", "torch", {"logistic.exp", "logistic.softplus"}),
    ("jax_vae_port.py", "jax", {"vae_chain"}),
]


def _python_with(module: str) -> str | None:
    for python in (os.environ.get("REFVPNG_INTEROP_PYTHON"), sys.executable):
        if python and subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0:
            return python
    return None


@pytest.mark.parametrize(("script", "module", "cases"), PORTS, ids=[p[1] for p in PORTS])
def test_port_passes_refvpng_check(tmp_path, script, module, cases):
    python = _python_with(module)
    assert python is not None, (
        f"{module} is not installed: pip install -e '.[test]' (it includes the interop extra), "
        "or set REFVPNG_INTEROP_PYTHON to an interpreter that has it"
    )
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the port must not see refvpng
    proc = subprocess.run(
        [python, str(EXAMPLES / script), str(fixtures_dir()), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all quantities agree with refvpng" in proc.stdout
    report = check(out)
    assert report.exit_code == 0, report.format()
    assert {r.case for r in report.rows} == cases and len(report.rows) >= 10
