# The emulated aarch64 SSH test board (tests/arm64board.py; sourced by .ci/run as root;
# idempotent, built once per machine and cached outside the repo):
#  - QEMU >= 8.1 user mode, static (bookworm's qemu-user 7.2 passes the host's x86
#    /proc/cpuinfo through and onnxruntime/LiteRT die on import): bookworm-backports'
#    qemu-user .deb fetched with `apt-get download` through a private apt list and unpacked
#    with `dpkg -x`; nothing on the system is upgraded or registered.
#  - an arm64 Debian bookworm root filesystem (mmdebstrap) with python3, python3-numpy and
#    openssh-server, and two board Python environments inside it, from aarch64 wheels:
#      current:   numpy 2, onnxruntime, ai-edge-litert (the versions of ssh.sh's boards)
#      old-image: Debian's python3-numpy 1.24 and tflite-runtime 2.14
# binfmt_misc is registered only while the root filesystem is built (and by the tests
# while a board runs), under a name of its own, and removed again.
# EDGE_HARNESS_ARM64 moves the cache (tests/arm64board.py reads the same variable);
# EDGE_HARNESS_SKIP_ARM64=1 skips this step (the arm64 tests then skip with the reason).
_arm64_build() {
    local cache="${EDGE_HARNESS_ARM64:-/var/cache/edge-harness/arm64}"
    local qemu_version="1:10.0.2+ds-2+deb13u1~bpo12+1"
    local versions="numpy==2.4.6 onnxruntime==1.32.0 ai-edge-litert==2.3.0"
    local root="$cache/rootfs" marker="$cache/rootfs/.edge-harness-complete"
    if [ -f "$marker" ] && [ -x "$cache/qemu-aarch64" ] && [ "$(cat "$marker")" = "$qemu_version $versions" ]; then
        return 0
    fi
    local started=$SECONDS
    mkdir -p "$cache"
    if ! command -v mmdebstrap >/dev/null 2>&1 || ! /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
            mmdebstrap python3-pip >/dev/null
    fi
    if ! "$cache/qemu-aarch64" --version 2>/dev/null | grep -q "version 10.0.2"; then
        local apt="$cache/apt"
        mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/unpacked"
        echo "deb http://deb.debian.org/debian bookworm-backports main" > "$apt/sources.list"
        local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=-"
                    -o "Dir::State::lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=root")
        apt-get "${opts[@]}" update -qq
        (cd "$apt" && rm -f qemu-user_*.deb && apt-get "${opts[@]}" download -qq "qemu-user=$qemu_version")
        dpkg -x "$apt"/qemu-user_*.deb "$apt/unpacked"
        install -m 0755 "$apt/unpacked/usr/bin/qemu-aarch64" "$cache/qemu-aarch64"
        rm -rf "$apt/unpacked" "$apt"/qemu-user_*.deb
    fi
    # binfmt_misc for the build only: our own entry name, 'F' opens the interpreter now, so
    # it runs inside the chroot without being copied there.
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    local entry="edge-harness-arm64-build-$$"
    printf ':%s:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:%s:F\n' \
        "$entry" "$cache/qemu-aarch64" > /proc/sys/fs/binfmt_misc/register
    local rc had_e=0
    case $- in *e*) had_e=1 ;; esac
    set +e  # a failed build must not end .ci/run: its tests skip with the reason instead
    (
        set -e
        export QEMU_CPU=cortex-a76
        if [ ! -f "$root.partial/.edge-harness-base" ]; then  # a failed later step keeps the base
            rm -rf "$root.partial"
            # check/qemu looks for an entry named qemu-aarch64 or /usr/bin/qemu-aarch64-static;
            # ours (flag F) needs neither
            mmdebstrap --quiet --mode=root --arch=arm64 --variant=minbase --skip=check/qemu \
                --include=python3,python3-venv,python3-numpy,openssh-server,procps \
                --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
                --dpkgopt='path-exclude=/usr/share/locale/*' \
                bookworm "$root.partial" http://deb.debian.org/debian
            rm -f "$root.partial"/etc/ssh/ssh_host_*  # every board makes its own host key
            touch "$root.partial/.edge-harness-base"
            echo "arm64 board: base root filesystem in $((SECONDS - started)) s"
        fi
        local wheels="$cache/wheels"
        mkdir -p "$wheels"
        # bookworm's glibc 2.36 runs manylinux_2_17 .. 2_36 wheels (tflite-runtime 2.14: 2_34)
        local plat=(--python-version 3.11 --implementation cp --abi cp311 --only-binary=:all:) glibc
        for glibc in $(seq 17 36); do plat+=(--platform "manylinux_2_${glibc}_aarch64"); done
        /usr/bin/python3 -m pip download -q -d "$wheels/current" "${plat[@]}" $versions
        /usr/bin/python3 -m pip download -q -d "$wheels/old-image" "${plat[@]}" --no-deps tflite-runtime==2.14.0
        local boards="$root.partial/opt/edge-harness/boards"
        mkdir -p "$boards"
        chroot "$root.partial" /usr/bin/python3 -m venv --without-pip /opt/edge-harness/boards/current
        chroot "$root.partial" /usr/bin/python3 -m venv --without-pip --system-site-packages \
            /opt/edge-harness/boards/old-image
        /usr/bin/python3 -m pip install -q --upgrade --no-index --find-links "$wheels/current" "${plat[@]}" \
            --target "$boards/current/lib/python3.11/site-packages" $versions
        /usr/bin/python3 -m pip install -q --upgrade --no-index --find-links "$wheels/old-image" "${plat[@]}" --no-deps \
            --target "$boards/old-image/lib/python3.11/site-packages" tflite-runtime==2.14.0
        chroot "$root.partial" /opt/edge-harness/boards/current/bin/python -c \
            "import numpy, onnxruntime, ai_edge_litert.interpreter; print('current:', numpy.__version__, onnxruntime.__version__)"
        chroot "$root.partial" /opt/edge-harness/boards/old-image/bin/python -c \
            "import numpy, tflite_runtime.interpreter; print('old-image:', numpy.__version__)"
        echo "$qemu_version $versions" > "$root.partial/.edge-harness-complete"
        chmod -R a+rX "$root.partial/opt/edge-harness"
        rm -rf "$root"
        mv "$root.partial" "$root"
    )
    rc=$?
    [ "$had_e" = 1 ] && set -e
    echo -1 > "/proc/sys/fs/binfmt_misc/$entry"
    if [ "$rc" -ne 0 ]; then
        echo "arm64 board: building $root failed (exit $rc); the arm64 tests will skip" >&2
        return 0  # the rest of CI goes on; tests/arm64board.py says why it skips
    fi
    echo "arm64 board: built $root in $((SECONDS - started)) s"
}
if [ "${EDGE_HARNESS_SKIP_ARM64:-}" != 1 ]; then
    _arm64_build
fi
unset -f _arm64_build
