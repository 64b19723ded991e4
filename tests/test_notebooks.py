"""The notebooks run top to bottom and are committed with their outputs, under a size budget.

Each notebook's code cells run, in order, as one script in a subprocess of
the running interpreter: no Jupyter kernel spec is needed, so this works in
any fresh venv. The notebooks therefore use no IPython magics.

The committed copies carry their outputs (tables and figures), so that the
repository shows results; they are written by
``jupyter nbconvert --to notebook --execute --inplace notebooks/<name>.ipynb``
with small draws and figures at 60 dpi, which keeps them small.
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


MAX_BYTES_EACH = 1_500_000
MAX_BYTES_TOTAL = 4_000_000


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs(path):
    cells = [c for c in _cells(path) if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in cells]
    assert all(isinstance(n, int) for n in counts), f"{path.name} has code cells that were not run: {counts}"
    assert counts == sorted(counts), f"{path.name} was not run top to bottom: {counts}"
    kinds = set()
    for cell in cells:
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"{path.name} has an error output"
            kinds |= set(out.get("data", {})) | ({"stream"} if out["output_type"] == "stream" else set())
        src = "".join(cell["source"])
        assert not any(line.lstrip().startswith(("%", "!")) for line in src.splitlines()), \
            f"{path.name} uses IPython magics"
    assert {"image/png", "text/html"} <= kinds, f"{path.name} shows no figure or no table: {sorted(kinds)}"
    assert path.stat().st_size < MAX_BYTES_EACH, f"{path.name} is {path.stat().st_size} bytes"


def test_notebooks_size_budget():
    total = sum(p.stat().st_size for p in NOTEBOOKS)
    assert total < MAX_BYTES_TOTAL, f"notebooks take {total} bytes in all"


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
