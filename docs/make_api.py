"""Write docs/api.md from the docstrings of the public API: ``python docs/make_api.py``.

The public API is what ``bayeslmm`` and each of its rooms export in
``__all__``; tests/test_docs.py fails when docs/api.md is out of date.
"""

import importlib
import inspect
from pathlib import Path

ROOMS = ["bayeslmm", "bayeslmm.model", "bayeslmm.ops", "bayeslmm.pymc_model", "bayeslmm.sampling",
         "bayeslmm.posterior", "bayeslmm.distributed"]
# Modules whose __all__ the rooms re-export only in part, documented in full.
MODULES = ["bayeslmm.model.plan", "bayeslmm.model.moments", "bayeslmm.pymc_model.lkj",
           "bayeslmm.posterior.predict", "bayeslmm.posterior.plots", "bayeslmm.posterior.effects",
           "bayeslmm.posterior.emmeans", "bayeslmm.posterior.hypothesis", "bayeslmm.posterior.prior", "bayeslmm.datasets"]


def _entry(obj, prefix="", level="###"):
    name = prefix + obj.__name__
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = ""
    doc = inspect.getdoc(obj) or "(no docstring)"
    kind = "property " if isinstance(obj, property) else ""
    out = [f"{level} {kind}`{name}{sig if not inspect.isclass(obj) else ''}`", "", "```text", doc, "```", ""]
    if inspect.isclass(obj):
        for mname, m in inspect.getmembers(obj):
            if mname.startswith("_"):
                continue
            if isinstance(m, property):
                out += _property(m, f"{obj.__name__}.{mname}")
            elif inspect.isfunction(m) or inspect.ismethod(m):
                if m.__qualname__.split(".")[0] != obj.__name__:
                    continue
                out += _entry(m, f"{obj.__name__}.", "####")
    return out


def _property(p, name):
    doc = inspect.getdoc(p) or "(no docstring)"
    return [f"#### property `{name}`", "", "```text", doc, "```", ""]


def render() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand. "
             "Each section is a module's `__all__`; an object appears once, where it is first exported.", ""]
    seen = set()
    for modname in ROOMS + MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        objs = [getattr(mod, n) for n in getattr(mod, "__all__", []) if not n.startswith("__")]
        objs = [o for o in objs if (inspect.isclass(o) or callable(o)) and id(o) not in seen]
        if not objs:
            continue
        lines += [f"## `{modname}`", "", (inspect.getdoc(mod) or "").split("\n\n")[0], ""]
        for obj in objs:
            seen.add(id(obj))
            lines += _entry(obj)
    return "\n".join(lines)


if __name__ == "__main__":
    Path(__file__).with_name("api.md").write_text(render())
    print("wrote docs/api.md")
