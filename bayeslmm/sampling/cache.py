"""A persistent JAX compilation cache, switched on for the duration of one fit.

Small data sets are bound by compilation: most of a short fit is XLA
compiling the sampler's program. JAX can keep compiled programs on disk, so
that the same model fitted again, in a new process, loads them instead. The
cache is set through JAX's public configuration only while a fit runs and
put back afterwards; importing bayeslmm changes nothing. A cache directory
the user configured for JAX is used as it is.

Where: ``compile_cache=`` of :meth:`bayeslmm.BayesLMM.fit`, else the
environment variable ``BAYESLMM_JAX_CACHE`` (a directory, or ``0`` / ``off``
/ ``false`` to turn it off), else ``bayeslmm/jax`` in the user's cache
directory (``platformdirs.user_cache_dir``, ``~/.cache`` on Linux).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import jax
import platformdirs
from jax.experimental.compilation_cache import compilation_cache as _jax_cache

__all__ = ["CACHE_ENV", "compilation_cache", "default_cache_dir", "resolve_cache_dir"]

CACHE_ENV = "BAYESLMM_JAX_CACHE"
_OFF = {"0", "off", "false", "no", "none"}
_ON = {"1", "on", "true", "yes"}


def default_cache_dir() -> Path:
    """``bayeslmm/jax`` under the user's cache directory."""
    return Path(platformdirs.user_cache_dir("bayeslmm")) / "jax"


def resolve_cache_dir(compile_cache=None) -> Path | None:
    """The cache directory a fit uses, or None when caching is off.

    ``compile_cache``: None (the environment variable, else the default
    directory), True (the default directory), False (off), or a path.
    """
    if compile_cache is None:
        env = os.environ.get(CACHE_ENV)
        if env is None or env.strip().lower() in _ON:
            return default_cache_dir()
        if env.strip().lower() in _OFF or not env.strip():
            return None
        return Path(env).expanduser()
    if compile_cache is True:
        return default_cache_dir()
    if compile_cache is False:
        return None
    if isinstance(compile_cache, (str, os.PathLike)):
        return Path(compile_cache).expanduser()
    raise TypeError(f"compile_cache must be None, True, False or a directory, got {compile_cache!r}.")


@contextlib.contextmanager
def compilation_cache(path: Path | None):
    """Within the block, JAX writes and reads compiled programs under ``path``.

    Does nothing when ``path`` is None or when JAX already has a cache
    directory of its own. Every compilation is cached (no minimum compile
    time): a small model's many short compilations are what a repeated fit
    saves. Afterwards the previous settings are restored and JAX's cache
    object is reset, so that later compilations in the process are not
    written there.
    """
    if path is None or jax.config.jax_compilation_cache_dir:
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    before = {n: getattr(jax.config, n) for n in names}
    _jax_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    try:
        yield
    finally:
        for n, v in before.items():
            jax.config.update(n, v)
        _jax_cache.reset_cache()
