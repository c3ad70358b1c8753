"""Scale-out on Ray: sharded jobs (harvest, feature build, labeling) and engine replicas for ``serve``.

Ray is an optional runtime dependency at this layer: nothing here imports it until a ``--ray``
address (or ``--replicas``) is given, so single-machine commands never pay for it.
"""
