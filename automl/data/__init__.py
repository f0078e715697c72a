"""From a dataset plugin's arrays to train/validation/test tensors and the task they define.

Owns splitting, normalization statistics and the text vocabulary (fitted on the train split).
May import ``automl.plugin``, ``automl.storage`` and ``automl.config``.
"""
