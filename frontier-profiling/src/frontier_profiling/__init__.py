"""Frontier's profiler: measure a model's operators on real hardware.

``frontier profile linear | attention | moe | all`` times the operators of a
transformer layer over a grid of shapes (CUDA events on a GPU through torch, the
monotonic clock on the CPU through torch or numpy) and writes the newer profile
format (``linear_op.csv``, ``attention.csv``, ``moe.csv``, ``metadata.json``) under
``<out>/compute/<device>/<model>/``, where ``frontier train`` and the learned
predictors read it. ``frontier profile validate`` checks a profile. torch is
needed only to measure a GPU, and is imported only then.
"""
