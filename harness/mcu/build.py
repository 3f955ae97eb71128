"""Build the reference firmware for one model and read its memory use from the ELF.

The build is cached by the SHA-256 of the firmware sources, the generated model source
and the build options, so an unchanged firmware is neither rebuilt nor reflashed.
"""
from __future__ import annotations

import hashlib
import json
import os
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


def build(exported: Exported, cache_dir: Path, board: str = "mps2-an385", cpu: str = "cortex-m3",
          baud: int = 115200, firmware_dir: Path = FIRMWARE, cross: str = "arm-none-eabi-") -> Firmware:
    missing = toolchain_missing(cross)
    if missing:
        raise DeviceError(f"cannot build the MCU firmware: {missing}")
    if not (firmware_dir / "boards" / f"{board}.c").is_file():
        boards = sorted(p.stem for p in (firmware_dir / "boards").glob("*.c"))
        raise DeviceError(f"no firmware board file {board!r} in {firmware_dir / 'boards'}; have {', '.join(boards)}")
    h = _source_digest(firmware_dir, board)
    h.update(exported.c_source.encode() + exported.h_source.encode())
    h.update(json.dumps([board, cpu, baud, cross]).encode())
    version = h.hexdigest()[:16]
    out = Path(cache_dir) / f"{exported.name}-{board}-{version}"
    elf = out / "firmware.elf"
    if not elf.is_file():
        # Built beside the cache entry and renamed into place, so a parallel run (pytest -n)
        # or an interrupted build never leaves a half-written firmware that looks cached.
        tmp = out.parent / f".{out.name}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        exported.write(tmp / "model")
        argv = ["make", "-C", str(firmware_dir), f"BUILD={tmp.resolve()}", f"MODEL_DIR={(tmp / 'model').resolve()}",
                f"BOARD={board}", f"CPU={cpu}", f"BAUD={baud}", f"FW_VERSION={version}", f"CROSS={cross}"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DeviceError(f"the firmware build did not finish in {BUILD_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise DeviceError(f"the firmware build failed ({' '.join(argv)}):\n{tail}")
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
