"""The notebooks run top to bottom and are committed without outputs.

Each notebook's code cells run, in order, as one script in a subprocess of
the running interpreter: no Jupyter kernel spec is needed, so this works in
any fresh venv. The notebooks therefore use no IPython magics.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 300


def _cells(path):
    return json.loads(path.read_text())["cells"]


def test_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "marginalization", "real_data"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} has outputs"
            src = "".join(cell["source"])
            assert not any(line.lstrip().startswith(("%", "!")) for line in src.splitlines()), \
                f"{path.name} uses IPython magics"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    code = "\n\n".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "code")
    script = tmp_path / f"{path.stem}.py"
    script.write_text(code)
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stderr[-4000:]}"
