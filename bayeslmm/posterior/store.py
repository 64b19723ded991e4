"""Save a fit to one netCDF file and load it back.

The file is ArviZ's own netCDF of ``fit.idata`` (every group it has:
posterior, sample_stats, log_likelihood, posterior_predictive, ...) plus two
groups that ArviZ ignores on its own reading:

- ``bayeslmm_design``: the design arrays (y, X, each factor's group index,
  covariates and levels) and, as a JSON attribute, the specification: formula,
  family, every prior in use as a :class:`~bayeslmm.Prior` string with exact
  arguments, the marginalization plan, sampler and timings;
- ``bayeslmm_fixed_data``: the training columns of the fixed part, from which
  the formulae matrix that evaluates ``newdata`` is rebuilt (categorical
  levels and the state of ``center``/``scale`` come from these).

Storing the evaluated design rather than re-evaluating the formula on the
raw data makes a loaded fit independent of how formulae evaluates it in a
later version; ``az.from_netcdf(path)`` still reads the file (with two extra
groups).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..sampling.interrupt import check_interrupt, interrupt_guard

__all__ = ["save", "read"]

FORMAT_VERSION = 1
_DESIGN, _FIXED = "bayeslmm_design", "bayeslmm_fixed_data"
_ENGINE = "h5netcdf"


def _prior_text(p) -> str:
    # repr keeps every digit, so parse_dist gives back the same floats.
    return f"{p.dist}({', '.join(repr(float(a)) for a in p.args)})"


def _plain(v):
    """JSON-safe copy of a plan's ``requested`` value (str, list or tuple)."""
    return list(v) if isinstance(v, (list, tuple)) else v


def _design_dataset(fit):
    import xarray as xr

    d = fit.design
    obs = np.arange(d.n)
    data = {"y": ("obs", np.asarray(d.y, float)), "y_original": ("obs", np.asarray(d.y_original, float)),
            "X": (("obs", "fixef_col"), np.asarray(d.X, float))}
    for name in ("offset", "weights", "trials"):
        if getattr(d, name) is not None:
            data[name] = ("obs", np.asarray(getattr(d, name), float))
    blocks = []
    for k, b in enumerate(d.blocks):
        data[f"block{k}_group_index"] = ("obs", b.group_index.astype(np.int64))
        data[f"block{k}_values"] = (("obs", f"block{k}_effect"), np.asarray(b.values, float))
        data[f"block{k}_levels"] = (f"block{k}_level", np.asarray(b.levels, dtype=str))
        blocks.append({"name": b.name, "terms": list(b.terms), "corr_groups": [list(g) for g in b.corr_groups]})
    spec = {
        "format_version": FORMAT_VERSION,
        "formula": d.spec.formula,
        "family": d.family.name,
        "link": d.family.link,
        "fixed_names": list(d.fixed_names),
        "n_dropped": int(d.n_dropped),
        "blocks": blocks,
        "priors": [{"prior": _prior_text(p), "cls": p.cls, "coef": p.coef, "group": p.group, "source": p.source}
                   for p in fit.priors],
        "plan": {"marginalized": list(fit.plan.marginalized), "sampled": list(fit.plan.sampled),
                 "requested": _plain(fit.plan.requested), "reason": fit.plan.reason,
                 "approximation": fit.plan.approximation},
        "sampler": fit.sampler,
        "timings": {k: float(v) for k, v in fit.timings.items()},
    }
    return xr.Dataset(data, coords={"obs": obs}, attrs={"bayeslmm_spec": json.dumps(spec)})


def _fixed_dataset(fit):
    """Training columns of the fixed part; categorical dtypes are kept as codes plus categories."""
    import xarray as xr

    fm = fit.design.fixed_matrix
    frame = getattr(fm, "data", None)
    if frame is None:
        frame = pd.DataFrame(index=range(fit.design.n))
    data, cols = {}, []
    for i, (name, col) in enumerate(frame.items()):
        info = {"name": str(name)}
        if isinstance(col.dtype, pd.CategoricalDtype):
            info.update(kind="categorical", categories=col.cat.categories.tolist(), ordered=bool(col.cat.ordered))
            values = col.cat.codes.to_numpy(np.int64)
        elif pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            info["kind"] = "numeric"
            values = col.to_numpy()
        else:
            info["kind"] = "string"
            values = np.asarray(col.astype(str), dtype=str)
        data[f"col{i}"] = ("row", values)
        cols.append(info)
    return xr.Dataset(data, coords={"row": np.arange(len(frame))}, attrs={"columns": json.dumps(cols)})


def save(fit, path) -> Path:
    """Write ``fit`` to the netCDF file ``path`` (replaced if it exists); returns the path.

    The file is written under a temporary name in the same folder and
    renamed into place only once complete, so a crash or an interrupt
    during the save leaves any earlier file at ``path`` as it was.

    Cost: the size of the posterior plus O(N (p + sum_g d_g)) for the design.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # A Ctrl-C that lands in a callback during the write (h5py's weakref finalizers) is swallowed by
    # CPython; the guard remembers it, and the save ends with KeyboardInterrupt instead of going on.
    with interrupt_guard():
        try:
            fit.idata.to_netcdf(tmp, engine=_ENGINE)
            _design_dataset(fit).to_netcdf(tmp, mode="a", group=_DESIGN, engine=_ENGINE)
            _fixed_dataset(fit).to_netcdf(tmp, mode="a", group=_FIXED, engine=_ENGINE)
            check_interrupt()
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return path


def _read(path, group):
    import xarray as xr

    with xr.open_dataset(path, group=group, engine=_ENGINE) as ds:
        return ds.load()


def _frame(ds) -> pd.DataFrame:
    cols = json.loads(ds.attrs["columns"])
    out = {}
    for i, info in enumerate(cols):
        v = ds[f"col{i}"].values
        if info["kind"] == "categorical":
            out[info["name"]] = pd.Categorical.from_codes(v, info["categories"], ordered=info["ordered"])
        elif info["kind"] == "string":
            out[info["name"]] = pd.Series(v.astype(str))
        else:
            out[info["name"]] = v
    return pd.DataFrame(out, index=pd.RangeIndex(ds.sizes["row"]))


def _design(ds, fixed_ds):
    from bayeslmm.model.design import Design, ReBlock, common_matrix
    from bayeslmm.model.families import get_family
    from bayeslmm.model.formula import parse_formula

    spec = json.loads(ds.attrs["bayeslmm_spec"])
    fspec = parse_formula(spec["formula"])
    blocks = tuple(
        ReBlock(b["name"], ds[f"block{k}_group_index"].values.astype(np.int64), ds[f"block{k}_values"].values,
                tuple(str(v) for v in ds[f"block{k}_levels"].values), tuple(b["terms"]),
                tuple(tuple(g) for g in b["corr_groups"]))
        for k, b in enumerate(spec["blocks"]))
    X = ds["X"].values.reshape(ds.sizes["obs"], -1)
    fixed_matrix = None
    if spec["fixed_names"]:
        X_new, names, fixed_matrix = common_matrix(fspec.fixed, _frame(fixed_ds))
        if tuple(names) != tuple(spec["fixed_names"]) or not np.allclose(X_new, X):
            warnings.warn("The fixed-effects matrix rebuilt from the saved data differs from the saved one "
                          "(another formulae version?); predictions on newdata may be off.", UserWarning,
                          stacklevel=3)
    extra = {k: (ds[k].values if k in ds else None) for k in ("offset", "weights", "trials")}
    design = Design(fspec, get_family(spec["family"], spec.get("link")), ds["y"].values, ds["y_original"].values,
                    X, tuple(spec["fixed_names"]), blocks, spec["n_dropped"], fixed_matrix, **extra)
    return design, spec


def read(path):
    """The parts of a fit written by :func:`save`: ``(idata, design, priors, plan, sampler, timings)``.

    Raises ``ValueError`` for a file that :func:`save` did not write.
    """
    import arviz as az
    import h5netcdf

    from bayeslmm.model.plan import MarginalizationPlan
    from bayeslmm.model.priors import ResolvedPrior, parse_dist

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike naming a saved fit, got {path!r} "
                        f"({type(path).__name__}).")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a saved fit.")
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}.")
    try:
        with h5netcdf.File(path, "r") as fh:
            groups = list(fh.groups)
    except OSError as err:  # h5py's message names neither the file nor what it expected
        raise ValueError(f"{path} is not a bayeslmm fit file (not readable as netCDF4/HDF5: {err}); it may be "
                         "truncated or another format.") from err
    if _DESIGN not in groups:
        raise ValueError(f"{path} was not written by bayeslmm.save (no {_DESIGN!r} group: saved without its "
                         "model spec).")
    try:
        design, spec = _design(_read(path, _DESIGN), _read(path, _FIXED))
    except (OSError, KeyError) as err:
        raise ValueError(f"{path} has an incomplete bayeslmm model spec ({type(err).__name__}: {err}).") from err
    if spec["format_version"] > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {spec['format_version']}; this bayeslmm reads up to "
                         f"{FORMAT_VERSION}.")
    idata = az.InferenceData(**{g: _read(path, g) for g in groups if g not in (_DESIGN, _FIXED)})
    priors = [ResolvedPrior(p["cls"], p["group"], p["coef"], *parse_dist(p["prior"]), p["source"])
              for p in spec["priors"]]
    pl = spec["plan"]
    requested = tuple(pl["requested"]) if isinstance(pl["requested"], list) else pl["requested"]
    plan = MarginalizationPlan(tuple(pl["marginalized"]), tuple(pl["sampled"]), requested, pl["reason"],
                               pl.get("approximation"))
    return idata, design, priors, plan, spec["sampler"], spec["timings"]
