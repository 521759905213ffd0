"""Frontier's execution-time predictors and their training.

Predictors (registered in :mod:`frontier_predictors.plugin`): ``roofline``
(:mod:`.roofline`), ``sklearn`` (:mod:`.sklearn_predictor`), ``lightgbm``
(:mod:`.lightgbm_predictor`) and ``dummy`` (:mod:`.dummy`). The pieces they share:
the operator taxonomy (:mod:`.operators`), batch features (:mod:`.features`),
FLOPs and bytes (:mod:`.costs`), profile readers (:mod:`.profiles`), roofline
calibration (:mod:`.calibration`), training (:mod:`.training`), run-time tables
(:mod:`.tables`), the cache (:mod:`.cache`), held-out validation
(:mod:`.validation`) and the commands (:mod:`.cli`).
"""
