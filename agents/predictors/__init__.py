"""ML predictors as policies: labels, models, regime detection, walk-forward training, the policy.

``labels`` (forward returns a decision can earn), ``inputs`` (causal features and regime inputs),
``regime`` (HMM/mixture detector, filtered), ``trees`` / ``nets`` / ``ensemble`` (the models, by name via
``models.make_predictor``), ``pipeline`` (detector + model(s) fitted on one window), ``walk_forward``
(fit per fold, forecast the next test window), ``scoring`` (accuracy, log loss, IC) and ``policy``
(probability -> signal -> sized weights).
"""
