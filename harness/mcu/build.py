"""Build the reference firmware for one model and read its memory use from the ELF.

The build is cached by the SHA-256 of the firmware sources, the generated model source
and the build options, so an unchanged firmware is neither rebuilt nor reflashed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeviceError
from .export import Exported

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
BUILD_TIMEOUT_S = 300


@dataclass(frozen=True)
class Firmware:
    elf: Path
    bin: Path
    hex: Path
    version: str         # the cache key's prefix: changes whenever anything built changes
    sizes: dict          # text, rodata, data, bss, flash_bytes, ram_static_bytes
    model: dict          # Exported.summary()

    def placeholders(self) -> dict:
        return {"elf": str(self.elf), "bin": str(self.bin), "hex": str(self.hex)}


def toolchain_missing(cross: str = "arm-none-eabi-") -> str | None:
    """Why the firmware cannot be built here, or None."""
    for tool in ("gcc", "objcopy", "size"):
        if shutil.which(cross + tool) is None:
            return f"{cross}{tool} not found (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"
    if shutil.which("make") is None:
        return "make not found (apt-get install make)"
    return None


def _source_digest(firmware: Path, board: str) -> hashlib._Hash:
    h = hashlib.sha256()
    files = sorted(list((firmware / "src").glob("*")) + [firmware / "Makefile"]
                   + list((firmware / "boards").glob(board + ".*")))
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h


# What make may see: every value below is one of these words or a fixed relative name.
# (make expands `$(...)` in variables from the command line and the environment alike, and
# a space splits a word, so no path and no name derived from a model file is passed.)
_WORD = re.compile(r"[A-Za-z0-9._+-]+")
_CROSS = re.compile(r"[A-Za-z0-9._+/-]+")
# Environment variables that make reads as make syntax or extra makefiles.
_MAKE_ENV = ("MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKEFILES", "MAKELEVEL")


def _check_word(field: str, value: str, pattern, expected: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DeviceError(f"the firmware build: {field}: expected {expected}, got {value!r}")


def build_dir_name(exported: Exported, board: str, version: str) -> str:
    """The cache entry's name: the model's name reduced to a safe slug (it comes from a file
    name a user chose), the board and the content hash that makes it unique."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", exported.name).lstrip(".")[:48] or "model"
    return f"{slug}-{board}-{version}"


def build(exported: Exported, cache_dir: Path, board: str = "mps2-an385", cpu: str = "cortex-m3",
          baud: int = 115200, firmware_dir: Path = FIRMWARE, cross: str = "arm-none-eabi-") -> Firmware:
    _check_word("board", board, _WORD, "a board name of letters, digits and ._+-")
    _check_word("cpu", cpu, _WORD, "a CPU name of letters, digits and ._+-")
    _check_word("cross", cross, _CROSS, "a toolchain prefix of letters, digits and ._+-/")
    if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
        raise DeviceError(f"the firmware build: baud: expected a positive integer, got {baud!r}")
    missing = toolchain_missing(cross)
    if missing:
        raise DeviceError(f"cannot build the MCU firmware: {missing}")
    firmware_dir = Path(firmware_dir).resolve()
    if not (firmware_dir / "boards" / f"{board}.c").is_file():
        boards = sorted(p.stem for p in (firmware_dir / "boards").glob("*.c"))
        raise DeviceError(f"no firmware board file {board!r} in {firmware_dir / 'boards'}; have {', '.join(boards)}")
    h = _source_digest(firmware_dir, board)
    h.update(exported.c_source.encode() + exported.h_source.encode())
    h.update(json.dumps([board, cpu, baud, cross]).encode())
    version = h.hexdigest()[:16]
    cache_dir = Path(cache_dir)
    out = cache_dir / build_dir_name(exported, board, version)
    elf = out / "firmware.elf"
    if not elf.is_file():
        # Built beside the cache entry and renamed into place, so a parallel run (pytest -n)
        # or an interrupted build never leaves a half-written firmware that looks cached.
        tmp = cache_dir / f".{out.name}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        exported.write(tmp / "model")
        # make sees `fw` and `model`, never the real paths (which may hold spaces or `$`).
        (tmp / "fw").symlink_to(firmware_dir, target_is_directory=True)
        argv = ["make", "-f", "fw/Makefile", "FW=fw", "BUILD=.", "MODEL_DIR=model", f"BOARD={board}",
                f"CPU={cpu}", f"BAUD={baud}", f"FW_VERSION={version}", f"CROSS={cross}"]
        env = {k: v for k, v in os.environ.items() if k not in _MAKE_ENV}
        try:
            proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DeviceError(f"the firmware build did not finish in {BUILD_TIMEOUT_S} s") from None
        (tmp / "fw").unlink()  # the cache holds no link back into the sources
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise DeviceError(f"the firmware build failed ({' '.join(argv)} in {tmp}):\n{tail}")
        if out.exists() and not elf.is_file():  # a leftover without a firmware in it
            shutil.rmtree(out, ignore_errors=True)
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same build first
            shutil.rmtree(tmp, ignore_errors=True)
    return Firmware(elf=elf, bin=out / "firmware.bin", hex=out / "firmware.hex", version=version,
                    sizes=elf_sizes(elf, cross), model=exported.summary())


def elf_sizes(elf: Path, cross: str = "arm-none-eabi-") -> dict:
    """Section sizes (``size -A``): flash = text + rodata (+ the .data image), RAM = data + bss."""
    try:
        proc = subprocess.run([cross + "size", "-A", "-d", str(elf)], capture_output=True, text=True,
                              timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DeviceError(f"cannot read section sizes of {elf}: {exc}") from None
    sections = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    text = sections.get(".text", 0) + sections.get(".ARM.exidx", 0)
    rodata, data, bss = sections.get(".rodata", 0), sections.get(".data", 0), sections.get(".bss", 0)
    return {"text": text, "rodata": rodata, "data": data, "bss": bss,
            "flash_bytes": text + rodata + data, "ram_static_bytes": data + bss}
