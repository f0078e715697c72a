"""The search: a study file becomes a plan, a study in storage, and trials the objective runs.

Owns the plan, the study's creation and resumption, the objective, budgets, warm starts,
samplers and pruners (MO-ASHA). May import every earlier stage.
"""
