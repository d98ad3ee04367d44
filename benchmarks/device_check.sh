#!/usr/bin/env bash
# The GPU checks of phasekit in one short call, for a session lent a device machine (issue 16:
# batched starts on a GPU; the CUDA tests; GPU timings).  About 5-8 minutes there.
#
#   1. here, once (needs PyPI):  bash benchmarks/device_check.sh --prepare
#      downloads the wheels the device image lacks (pydantic and its needs, for its Python 3.12)
#      into .whl/ (ignored by git through .git/info/exclude);
#   2. the device call:  run(command="bash benchmarks/device_check.sh", carry=[".whl"],
#      timeout_s=570); the logs and the results come back from $OUT.
#
# Then copy $OUT's cdi_batched_starts_device.* and gpu_speed_device.* into benchmarks/results/
# and commit them.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS="pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0"
if [[ "${1:-}" == "--prepare" ]]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $WHEELS || { echo "device_check: the wheel download failed" >&2; exit 2; }
    ls .whl
    exit 0
fi
OUT=${OUT:-/tmp/phasekit_device_out}
mkdir -p "$OUT"
if ! python3 -c "import pydantic" 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "device_check: no .whl/ (run --prepare here, carry .whl)" >&2; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
fi
export PYTHONPATH="$PWD/src:/tmp/site" PYTHONUNBUFFERED=1
nvidia-smi -L 2>&1 | tee "$OUT/device.log"
python3 -c "import torch, numba, phasekit; print('torch', torch.__version__, 'numba', numba.__version__, \
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())" 2>&1 | tee -a "$OUT/device.log"
# 1. every CUDA test (CDI, batched starts, Kaczmarz, learn, tomography), against the CPU
timeout 150 python3 -m pytest -q -p no:cacheprovider tests -k cuda 2>&1 | tee "$OUT/cuda_tests.log"
# 2. batched starts on the GPU against the same starts one after another
timeout 210 python3 benchmarks/cdi_batched_starts.py --device cuda --sizes 128 256 512 \
    --starts 1 2 4 8 --repeats 3 --tag device --out "$OUT" 2>&1 | tee "$OUT/batched_starts.log"
# 3. CDI per iteration and an ePIE sweep on the GPU against its FFT bound and one CPU thread
timeout 130 python3 benchmarks/gpu_speed.py --device cuda --repeats 3 --block-s 0.1 --tag device \
    --out "$OUT" 2>&1 | tee "$OUT/gpu_speed.log"
