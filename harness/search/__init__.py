"""Search the compression space on the device itself (optuna, multi-objective).

    space.py       a manifest's search: section -> SearchSpec; a trial's (technique, params)
    objectives.py  objectives and budgets over the metrics, canonical units
    study.py       the trial loop: build (cached), cheap budgets first, BenchSession.measure, optuna
    front.py       Pareto fronts and hypervolume (pure)
    results.py     the found front vs the hand-written variants, as plain data
    pytest_entry.py  `pytest suites/ --device NAME --search MANIFEST`

optuna is the optional extra ``search``; nothing here imports it before a search runs.
"""
