"""Networks: the protocol every tool accepts, and everything that satisfies it.

`protocol` (Net, its Cache), `graph` (the LayerGraph view every tool reads; `traced` builds it from any
function's jaxpr), `network` (the shipped Flax ports, `load_model`), `function` (any JAX function),
`onnx/` (ONNX graphs), `models/` (one file per architecture + model cards), `steps`/`ops`/`layers` (how the
ports run), `weights` and `convert/` (files), `receptive`, `analysis`, `classes`, `cpu`.
"""
