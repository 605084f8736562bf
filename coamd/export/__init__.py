"""Export of the generation graphs to ONNX (and TensorRT engines) plus parity checks.

``coamd.export.onnx_export``: the graphs and their manifest; ``coamd.export.text``: the host-side
tokenizer; ``coamd.export.parity``: ONNX Runtime vs PyTorch checks; ``coamd.export.tensorrt``:
prebuilt TensorRT engines with optimisation profiles (needs the ``tensorrt`` package and a GPU);
``coamd.export.manifest``: manifest, graph names and the cache key, without torch;
``coamd.export.cache``: export-on-first-use cache keyed by the checkpoint files' hashes.
"""
