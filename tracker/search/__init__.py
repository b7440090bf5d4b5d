"""Automatic optimisation (``tracker optimize``): a search over an experiment's space, on Optuna.

- :mod:`tracker.search.space`: the space from the experiment's ``search:`` (and ``grid:``) as
  Optuna distributions, and the finite grid.
- :mod:`tracker.search.strategies`: grid, random, tpe, gp, hyperband, bohb behind one small
  interface (a sampler, an optional learning-curve pruner, an optional fixed order).
- :mod:`tracker.search.optimizer`: the feed that asks for configurations, runs their seeds as
  normal trials through the driver, prunes and tells; its Optuna study is rebuilt from the
  store on resume, so the store stays the one record of a search.
- :mod:`tracker.search.results`: status, best, list; :mod:`tracker.search.report`: the HTML report.
"""
