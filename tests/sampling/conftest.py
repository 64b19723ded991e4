import jax
import pytest


@pytest.fixture(autouse=True)
def float64():
    """JAX in float64, as inside a fit (the kernels here are called directly)."""
    with jax.enable_x64(True):
        yield
