# What the ssh device kind's tests need (sourced by .ci/run, as root; idempotent).
#  - openssh-server: sshd for the test boards (it is never started as a system service here)
#  - iproute2: `ip netns` and veth pairs; cgroup-tools: cgexec/lscgroup for debugging boards
#  - two board Python environments from Debian's python3, outside the repo and cached:
#      current:   numpy 2, onnxruntime, ai-edge-litert      (a current Pi / Linux image)
#      old-image: numpy < 2, tflite-runtime 2.14, NO onnxruntime (an older image; also the
#                 "board missing a runtime" case)
# EDGE_HARNESS_BOARD_PYTHONS moves them (tests/sshboards.py reads the same variable).
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ] || ! command -v ip >/dev/null 2>&1 \
   || ! dpkg -s python3-venv >/dev/null 2>&1 || ! command -v cgexec >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
        openssh-server openssh-client iproute2 cgroup-tools python3-venv >/dev/null
fi
_boards="${EDGE_HARNESS_BOARD_PYTHONS:-/opt/edge-harness/boards}"
mkdir -p "$_boards"
if [ ! -x "$_boards/current/bin/python" ] || ! "$_boards/current/bin/python" -c "import numpy, onnxruntime, ai_edge_litert" 2>/dev/null; then
    rm -rf "$_boards/current"
    /usr/bin/python3 -m venv "$_boards/current"
    "$_boards/current/bin/pip" install -q numpy onnxruntime ai-edge-litert
fi
if [ ! -x "$_boards/old-image/bin/python" ] || ! "$_boards/old-image/bin/python" -c "import numpy, tflite_runtime.interpreter" 2>/dev/null; then
    rm -rf "$_boards/old-image"
    /usr/bin/python3 -m venv "$_boards/old-image"
    "$_boards/old-image/bin/pip" install -q 'numpy<2' tflite-runtime==2.14.0
fi
chmod -R a+rX "$_boards"
unset _boards
