"""The parts of ``benchmarks/gpu_check.py``: dense-reference checks of the engine on a device
(:mod:`.reference`), the benchmark workloads (:mod:`.workloads`, shared with ``bench_training.py``), timing
under a wall-clock budget (:mod:`.timing`) and the Markdown report (:mod:`.report`)."""
