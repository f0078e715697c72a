"""Training one model: the device, the batches, the Lightning classifier and loop, its costs.

Owns the training loop, augmentation, batching and the efficiency measurements (FLOPs,
parameters, latency, peak memory). May import the stages up to ``automl.data``; knows nothing
of Optuna studies.
"""
