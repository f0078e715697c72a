#!/usr/bin/env bash
# The GPU checks in one go, on a fresh GPU machine: under 5 minutes once the machine is up.
#
#   bash benchmarks/on_gpu.sh wheels   # here, with .venv: download the wheels the GPU image lacks into .whl/
#   bash benchmarks/on_gpu.sh          # there, in the repository root: install, GPU tests, benchmarks/gpu_trials.py
#
# The GPU image has torch, lightning, torchmetrics, pluggy, pytest, numpy, scikit-learn, matplotlib,
# pillow, rich and onnx*, but not the packages in MISSING; their versions are those of this .venv.
# The project itself is installed from the working tree (its entry points register the plugins).
# Everything is written under $OUT (default gpu-out/): pytest.txt, gpu_trials.txt, nvidia-smi.txt.
set -uo pipefail
MISSING="alembic annotated-types bottle colorlog Mako optuna optuna-dashboard plotly pydantic pydantic_core
SQLAlchemy typing-inspection"

if [ "${1:-}" = wheels ]; then
    pins=$(.venv/bin/python -c 'import sys; from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in sys.argv[1:]))' $MISSING) || exit 1
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $pins
fi

OUT=${OUT:-gpu-out}
SITE=/tmp/automl-site
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    && python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$SITE" . \
    || { echo "install failed: run 'bash benchmarks/on_gpu.sh wheels' here and carry .whl"; exit 1; }
export PYTHONPATH="$SITE" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'" || exit 1
status=0
# The GPU tests, then the cuda cases of the tests parametrized over devices.
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/training/test_gpu.py 2>&1 | tee "$OUT/pytest.txt" || status=1
timeout 40 python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/training/test_training.py \
    tests/training/test_efficiency.py tests/training/test_augment.py tests/search/test_preflight.py \
    tests/storage/test_trial_queue.py 2>&1 | tee -a "$OUT/pytest.txt" || status=1
# Each part prints as it goes: a part cut short by the timeout still leaves its finished rows. Packing
# runs K = 1 and 4 here (the target); K = 2 and 8 as well without --k, given the time.
(cd benchmarks && timeout 80 python3 gpu_trials.py --skip packing) 2>&1 | tee "$OUT/gpu_trials.txt" || status=1
(cd benchmarks && timeout 70 python3 gpu_trials.py --skip trials --k 1 --k 4) 2>&1 | tee -a "$OUT/gpu_trials.txt" || status=1
exit $status
