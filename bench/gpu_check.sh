#!/usr/bin/env bash
# The GPU check: every CUDA path of the project once, one line per check, in under 8 minutes on one GPU.
#
#   bash bench/gpu_check.sh            # on a machine with a CUDA GPU; logs and a summary in $OUT (or a temp folder)
#   bash bench/gpu_check.sh --prepare  # here, before: .gpu/ with the MNIST files and the wheels a bare GPU machine lacks
#   bash bench/gpu_check.sh evaluate torchrun-nccl   # only the checks named (to rerun the ones that failed)
#
# Checks, each under its own time limit (seconds in brackets, 7.5 minutes together):
#   backend-equality [100]  the torch backend's equality tests on CUDA (RAM_TEST_DEVICE=cuda:0) and the agent's GPU
#                           tests (resume on CUDA, scores equal CPU and GPU)
#   env-device       [70]   bench/bench_env_device.py --device cuda: numpy episodes against GPU-resident ones
#   train-exp3       [150]  two epochs of --preset exp3 on the GPU-resident env, then its test scoring
#   evaluate         [60]   evaluate.py results/exp1 --device cuda gives the CPU's figures, line for line
#   torchrun-nccl    [70]   torchrun --nproc_per_node 1 train_agent.py --device cuda: one epoch over nccl
#   step-speed       [0..]  bench/bench_step.py --device cuda: the training step in fp32 and bf16 (what time is left)
# A GPU machine lent through the device tool (see results/notes.md, "GPU check"): run --prepare here, then
#   run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=600)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python3}

if [ "${1:-}" = "--prepare" ]; then
    set -e
    mkdir -p .gpu/data/MNIST/raw .gpu/wheels
    cp "${RAM_DATA_DIR:-data}"/MNIST/raw/*.gz .gpu/data/MNIST/raw/
    # What the GPU machine's image lacks (Python 3.12 there): gymnasium, its one dependency, and Stable-Baselines3,
    # which train_agent.py imports for its flags' defaults.
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d .gpu/wheels gymnasium==1.2.2 farama-notifications==0.0.4 \
        stable-baselines3==$($PY -c "import stable_baselines3; print(stable_baselines3.__version__)")
    du -sh .gpu
    exit 0
fi

CHECKS="backend-equality env-device train-exp3 evaluate torchrun-nccl step-speed"
for name in "$@"; do
    if [[ " $CHECKS " != *" $name "* ]]; then
        echo "gpu_check: no check is named '$name'; name some of: $CHECKS (or none, for all)" >&2
        exit 2
    fi
done

if ! $PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    echo "gpu_check: no CUDA here (torch.cuda.is_available() is False with $PY): nothing was checked." \
        "Run it on a machine with an NVIDIA GPU (see the comments at the top of bench/gpu_check.sh)."
    exit 0
fi

ONLY="$*"                 # the checks to run, by name; all of them when none is named
OUT=${OUT:-$(mktemp -d)}  # the device tool's OUT comes back: the summary and one log per check, nothing else
RUNS=$(mktemp -d)         # run folders
export PY OUT RUNS PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -d .gpu/wheels ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu_check_site .gpu/wheels/*.whl || exit 1
    export PYTHONPATH=$PYTHONPATH:/tmp/gpu_check_site
fi
[ -d .gpu/data ] && export RAM_DATA_DIR=$PWD/.gpu/data
export RAM_DATA_DIR=${RAM_DATA_DIR:-data}
START=$SECONDS
CARD=$($PY -c "import torch; print(torch.cuda.get_device_name(0))")
echo "gpu_check: $CARD, torch $($PY -c 'import torch; print(torch.__version__)'), logs in $OUT" | tee "$OUT/summary.txt"

# check NAME SECONDS PATTERN COMMAND: run COMMAND (bash) under a time limit, its output in $OUT/NAME.log; prints one
# line: PASS or FAIL, the seconds it took, and the log's lines matching PATTERN (or, on a failure, its last lines).
check() {
    local name=$1 limit=$2 pattern=$3 command=$4 t0=$SECONDS
    [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]] && return
    timeout "$limit" bash -c "$command" >"$OUT/$name.log" 2>&1
    local code=$?
    local took=$((SECONDS - t0))
    if [ $code -eq 0 ]; then
        local said
        said=$(grep -E "$pattern" "$OUT/$name.log" | tr -s ' ' | paste -sd'|' | cut -c1-600)
        echo "PASS $name (${took}s): $said" | tee -a "$OUT/summary.txt"
    else
        local why
        why=$([ $code -eq 124 ] && echo "time limit of ${limit}s" || echo "exit $code")
        echo "FAIL $name (${took}s, $why): $(tail -n 3 "$OUT/$name.log" | tr -s ' \n' ' ' | cut -c1-400)" |
            tee -a "$OUT/summary.txt"
    fi
}

check backend-equality 100 "passed|failed" \
    'RAM_TEST_DEVICE=cuda:0 $PY -m pytest -q -p no:cacheprovider tests/test_torch_backend.py &&
     $PY -m pytest -q -p no:cacheprovider tests/test_agent.py -k "cuda or gpu"'
check env-device 70 "x$|samples/s" '$PY bench/bench_env_device.py --device cuda --repeats 2'
check train-exp3 150 "^epoch|test error" \
    '$PY train_agent.py --preset exp3 --n-epochs 2 --device cuda --env-device cuda --out $RUNS/exp3 --no-gif \
     --no-tensorboard'
check evaluate 60 "test error|same figures" \
    '$PY evaluate.py results/exp1 --threads 4 | sed "s/ ([0-9]*s)//" >$RUNS/cpu.txt &&
     $PY evaluate.py results/exp1 --device cuda | sed "s/ ([0-9]*s)//" | tee $RUNS/cuda.txt &&
     diff $RUNS/cpu.txt $RUNS/cuda.txt && echo "the same figures on cuda as on the CPU"'
check torchrun-nccl 70 "^backend|^epoch|test error" \
    '$PY -m torch.distributed.run --standalone --nproc_per_node 1 --no-python $PY -c "
import torch, torch.distributed as dist
from agents import distributed
device = distributed.setup(\"cuda\")
x = torch.ones(1, device=device)
dist.all_reduce(x)
print(\"backend\", dist.get_backend(), \"all_reduce on\", x.device, \"gave\", x.item())
distributed.teardown()" &&
     $PY -m torch.distributed.run --standalone --nproc_per_node 1 train_agent.py --device cuda --n-epochs 1 \
     --train-images 16384 --out $RUNS/torchrun --no-gif --no-tensorboard'
LEFT=$((450 - (SECONDS - START)))
if [ $LEFT -gt 40 ]; then
    check step-speed $LEFT "samples/s" '$PY bench/bench_step.py --device cuda --rounds 2 --seconds 2'
else
    echo "SKIP step-speed: ${LEFT}s left of the 7.5 minutes" | tee -a "$OUT/summary.txt"
fi
echo "gpu_check: $(grep -c ^PASS "$OUT/summary.txt") passed, $(grep -c ^FAIL "$OUT/summary.txt") failed," \
    "$((SECONDS - START))s" | tee -a "$OUT/summary.txt"
