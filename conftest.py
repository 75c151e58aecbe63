"""Doctest collection: the modules of optional extras need their engines."""

import importlib.util

# sklearn_protonet.dask needs the [dask] extra, .accelerated the [accelerate]
# one, .onnx the [onnx] one; without them, their doctests are not collected
# (CI installs all three).
collect_ignore = [
    path
    for path, engine in (
        ("sklearn_protonet/dask.py", "distributed"),
        ("sklearn_protonet/accelerated.py", "accelerate"),
        ("sklearn_protonet/onnx.py", "skl2onnx"),
    )
    if importlib.util.find_spec(engine) is None
]
