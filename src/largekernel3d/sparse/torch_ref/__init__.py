"""The pure-PyTorch dataflow: kernel maps (:mod:`.maps`), gather-GEMM-scatter (:mod:`.conv`) and the group
aggregation (:mod:`.group_conv`) written with ``index_select`` / ``index_add_`` / ``searchsorted``. It runs on
any device and dtype (today's CUDA path) and is the oracle the faster dataflows are tested against.
"""
