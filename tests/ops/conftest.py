import jax
import pytest


@pytest.fixture(autouse=True)
def float64():
    """The ops functions compute in float64 and refuse to run without it, as a fit provides."""
    with jax.enable_x64(True):
        yield
