"""Scale-out: a model's design from a Dask DataFrame's sufficient statistics.

``design.py`` reads a Dask frame partition by partition into the record the
plan "all" consumes (:class:`~bayeslmm.ops.data.MarginalData`, sufficient
mode), so the rows never reach the driver. It sits beside ``model/`` in the
data flow (it replaces ``build_design`` for a Dask frame) and may import
``model/`` and ``ops/data.py``; nothing in ``model/`` or ``ops/`` imports it.
Dask itself is imported only when a Dask frame is passed.
"""

from .design import DaskDesign, check_dask_plan, dask_design, is_dask_frame

__all__ = ["DaskDesign", "check_dask_plan", "dask_design", "is_dask_frame"]
