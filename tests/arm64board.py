"""An emulated aarch64 SSH test board: a Raspberry Pi / Jetson class Linux board the tests
can start on an x86 machine.

The board is a cached arm64 Debian root filesystem (.ci/install.d/arm64.sh) run through
QEMU user mode: a binfmt_misc entry of our own (flag F: the kernel opens the static
qemu-aarch64 once, so it works inside the chroot) sends every aarch64 program to QEMU while
the tests run and is removed afterwards. The board's own arm64 sshd then runs chrooted in it
like the x86 boards of tests/sshboards.py (network namespace, cgroups, own host key), with
the CPU model pinned (QEMU_CPU=cortex-a76: QEMU's default "max" CPU has vector features the
runtimes pick kernels for that are slow to emulate).

Two Python environments inside the tree, as on the x86 boards:
    /opt/edge-harness/boards/current     numpy 2, onnxruntime, ai-edge-litert (aarch64 wheels)
    /opt/edge-harness/boards/old-image   Debian's python3-numpy 1.24, tflite-runtime 2.14
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import sshboards

CACHE = Path(os.environ.get("EDGE_HARNESS_ARM64", "/var/cache/edge-harness/arm64"))
ROOTFS = CACHE / "rootfs"
QEMU = CACHE / "qemu-aarch64"
QEMU_CPU = "cortex-a76"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BOARD_PYTHONS = "/opt/edge-harness/boards"
# The ELF header of an aarch64 executable and which of its bits count (QEMU's
# scripts/qemu-binfmt-conf.sh, aarch64_magic / aarch64_mask).
MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
MIN_QEMU = (8, 1)  # 7.2 shows the host's x86 /proc/cpuinfo: onnxruntime and LiteRT crash


def python(env: str = "current") -> str:
    """The board interpreter's path inside the root filesystem."""
    return f"{BOARD_PYTHONS}/{env}/bin/python"


def qemu_version(qemu: Path = QEMU) -> tuple:
    out = subprocess.run([str(qemu), "--version"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"version (\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def skip_reason() -> str | None:
    """Why the emulated arm64 board cannot run here, or None."""
    reason = sshboards.skip_reason()
    if reason:
        return reason
    if not (ROOTFS / ".edge-harness-complete").exists() or not QEMU.exists():
        return f"no arm64 root filesystem at {ROOTFS}; run .ci/install.d/arm64.sh as root (builds it once)"
    if qemu_version() < MIN_QEMU:
        return f"{QEMU} is older than QEMU {'.'.join(map(str, MIN_QEMU))}; rerun .ci/install.d/arm64.sh"
    if not (BINFMT / "register").exists():
        try:
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True,
                           capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"binfmt_misc is not available here ({exc}): aarch64 programs cannot run through QEMU"
    return None


class Binfmt:
    """aarch64 programs run through our QEMU while this entry exists (and only then)."""

    def __init__(self, name: str, qemu: Path = QEMU):
        self.entry = BINFMT / name
        (BINFMT / "register").write_text(f":{name}:M::{MAGIC}:{MASK}:{qemu}:F")

    def close(self):
        if self.entry.exists():
            self.entry.write_text("-1")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def remove_stale_entries() -> list[str]:
    """binfmt entries of test sessions killed outright (their pid is gone): see
    `python tests/sshboards.py --cleanup`."""
    removed = []
    for entry in BINFMT.glob("edge-harness-arm64-*"):
        pid = entry.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            entry.write_text("-1")
            removed.append(f"binfmt_misc entry {entry.name}")
    return removed


def add_board(lab: "sshboards.Lab", name: str, env: str = "current", **kw) -> "sshboards.Board":
    """An arm64 board in `lab` with the given board Python environment."""
    return lab.add_board(name, python_env=env, rootfs=ROOTFS, python=python(env),
                         env={"QEMU_CPU": QEMU_CPU},
                         start_timeout_s=120.0,  # an emulated sshd on a busy 2-core host
                         **kw)


def spec_top(timeout_s: float = 900.0) -> dict:
    """Top-level YAML fields of an arm64 board: emulated by the wall clock of an emulated CPU,
    and room for imports that take seconds under QEMU."""
    return {"emulated": True, "emulation": "wall-clock", "timeout_s": timeout_s}
