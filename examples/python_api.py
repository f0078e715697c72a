"""automl from Python: arrays in memory -> a study -> its Pareto front -> predictions from a front model.

Run it from any folder (it stores the study in python-api.db there): python examples/python_api.py
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import automl

# 8x8 images as scikit-learn gives them: pixel values 0..16, shape [N, 64] (a table of 64 features).
x, y = load_digits(return_X_y=True)
x_fit, x_new, y_fit, y_new = train_test_split(x, y, test_size=200, random_state=0, stratify=y)

config = automl.StudyConfig(
    name="digits-in-memory",
    storage="sqlite:///python-api.db",
    n_trials=6,
    search={"families": ["mlp"]},
    train={"max_epochs": 6, "batch_size": [64]},
)
study = automl.run(config, data=(x_fit, y_fit), progress=False)  # an optuna.Study

front = automl.pareto_front(study)  # optuna FrozenTrials: values = [validation accuracy, FLOPs per sample]
for trial in front:
    print(f"trial {trial.number}: validation accuracy {trial.values[0]:.3f}, {trial.values[1]:,.0f} FLOPs per sample")

best = max(front, key=lambda trial: trial.values[0])
model = automl.load_model(study, best.number)  # eval mode; takes pixels 0..16 as x holds them
with torch.no_grad():
    predicted = model(torch.as_tensor(x_new, dtype=torch.float32)).argmax(dim=-1).numpy()
print(f"trial {best.number} on {len(y_new)} new digits: accuracy {np.mean(predicted == y_new):.3f}")
