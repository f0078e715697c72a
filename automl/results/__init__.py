"""What a study produced: its Pareto front, reports and figures, hypervolume, stored trials
rebuilt for export and retraining.

May import every earlier stage; only ``automl.cli`` and the conformance checks sit above it.
"""
