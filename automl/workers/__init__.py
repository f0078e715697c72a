"""Running trials: one worker's loop over the queue, a pool of worker processes, signals and
failure streaks.

May import every stage up to ``automl.training``; not ``automl.search``, which drives it.
"""
