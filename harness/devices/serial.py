"""The `serial` kind: a microcontroller running a DUT firmware, driven over a serial port
with the EEMBC / MLPerf Tiny protocol (harness/mcu/dut.py).

deploy(model.tflite)  export the model to C, build the reference firmware (cached by the
                      SHA-256 of everything built), flash it (the YAML's `flash` argv
                      template, skipped when the board already reports that version), or,
                      for the emulated board, start QEMU with the ELF
deploy(data.npz)      the labelled set stays on the host; it is sent digit by digit
run(spec)             MLPerf Tiny's measurement: a first inference, a warmup window, then
                      `windows` timed windows of `infer N 0`; one latency per window (its
                      DUT-timed elapsed / N), the median is the result. Returns the same
                      document as harness/ondevice/runner.py, plus flash/RAM/stack from the ELF and
                      the board and `emulated`.

Any MLPerf Tiny-compliant firmware can be measured as a *prebuilt* board: the YAML says
`firmware: prebuilt` and which zoo variant the firmware holds (`model: {variant: m/v}`),
so inputs are sized and quantized from that variant's .tflite and its numbers are
attributed to it alone (every other variant is skipped with the reason); `elf:` names
the firmware file (its sizes, and what QEMU runs for an emulated board). run() uses just
the standard commands (`qresults`/`mem`/`version` are optional extensions).

Energy mode (`mode: energy`, as MLPerf Tiny's): the DUT prints no timestamps; the energy
monitor named in `energy_monitor:` (an LPM01A with `events: true`, a Joulescope with
`timestamp_input: gpi0`) records the DUT's
timestamp GPIO edges, and each window's time and energy come from the last two edges.
"""
from __future__ import annotations

import math
import platform
import re
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, DeviceError, HarnessError
from ..mcu.dut import DutClient, DutError
from ..registry import Option
from .base import Device

RUNNER_VERSION = "mcu-1"
DEFAULT_CACHE = Path(".harness-cache") / "mcu"
PLACEHOLDERS = ("elf", "bin", "hex")
# Meters that report the DUT's timestamp GPIO edges (MLPerf Tiny's energy mode), and how.
EDGE_METERS = {"lpm01a": "events", "joulescope": "timestamp_input"}
# These become make variables, which make expands ($(shell ...)) and pastes into shell
# recipes: only plain names (and, for the toolchain prefix, a path).
MAKE_SAFE = {"board": (r"[A-Za-z0-9._+-]+", "a board name of letters, digits and ._+-"),
             "cpu": (r"[A-Za-z0-9._+-]+", "a CPU name of letters, digits and ._+-"),
             "cross": (r"[A-Za-z0-9._+/-]+", "a toolchain prefix (path) of letters, digits and ._+-/")}


class SerialDevice(Device):
    """A microcontroller running an MLPerf Tiny DUT firmware, over a serial port or in QEMU."""

    default_rounds = 1  # MLPerf Tiny's timed windows are the rounds (each a round_sizes entry)
    default_emulation = "guest-time"  # QEMU with -icount: instruction-counted guest time
    OPTIONS = {
        "port": Option(str, None, help="a serial port or pyserial URL (/dev/ttyACM0, socket://host:port, "
                                       "rfc2217://host:port); not for QEMU"),
        "baud": Option(int, 115200, minimum=300, maximum=12000000, help="the port's baud rate"),
        "timeout_s": Option(float, 5.0, minimum=0.1, help="seconds to wait for each reply line"),
        "interface_board": Option(bool, False, help="talk through an EEMBC energy-mode interface board"),
        "chunk_bytes": Option(int, None, minimum=1, maximum=38,
                              help="bytes per `db` chunk (default 31, 26 through an interface board)"),
        "windows": Option(int, 5, minimum=1, maximum=100, help="timed windows (MLPerf Tiny: 5, the median)"),
        "board": Option(str, "mps2-an385", help="the firmware build's board"),
        "cpu": Option(str, "cortex-m3", help="the firmware build's CPU"),
        "cross": Option(str, "arm-none-eabi-", help="the toolchain prefix"),
        "flash": Option(list, [], items=str, help="the flash command, words with {elf}, {bin} or {hex}"),
        "flash_timeout_s": Option(float, 120.0, minimum=1.0, help="seconds the flash command may take"),
        "boot_timeout_s": Option(float, 10.0, minimum=0.1, help="seconds to wait for the DUT after a reset"),
        "cache_dir": Option(str, str(DEFAULT_CACHE), help="where built firmware is cached"),
        "firmware": Option(str, "reference", choices=("reference", "prebuilt"),
                           help="the harness's reference firmware (built per variant) or your own"),
        "strict": Option(bool, None, help="refuse replies outside the protocol (default: true for the "
                                          "reference firmware, false for a prebuilt one)"),
        "clock_check": Option(bool, None, help="hold each window's DUT time against the host's (default: "
                                               "true on a real board, false under QEMU)"),
        "elf": Option(str, None, help="the prebuilt firmware's ELF (its sizes; what QEMU runs)"),
        "mode": Option(str, "performance", choices=("performance", "energy"),
                       help="MLPerf Tiny's mode: DUT timestamps, or GPIO edges seen by an energy monitor"),
        "idle_s": Option(float, 2.0, minimum=0.0, maximum=600.0, help="energy mode: seconds of idle baseline"),
        "energy_monitor": Option(dict, None, help="energy mode: the meter that timestamps the DUT's GPIO "
                                                  "(lpm01a with events: true, joulescope with timestamp_input)"),
    }
    SECTIONS = {
        "qemu": {
            "machine": Option(str, "mps2-an385", choices=("mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505"),
                              help="the emulated board"),
            "binary": Option(str, "qemu-system-arm", help="the QEMU program"),
            "icount_shift": Option(int, 0, minimum=0, maximum=10, help="-icount shift: 2^N ns per instruction"),
            "args": Option(list, [], items=str, help="more QEMU arguments"),
        },
        "model": {
            "variant": Option(str, required=True, help="the zoo variant the prebuilt firmware holds (model/variant)"),
            "input_dtype": Option(str, "int8", choices=("int8", "uint8"), help="how the firmware takes the input"),
            "dut_model": Option(str, None, help="the m-model-[...] the DUT must report"),
        },
    }

    # ------------------------------------------------------------ YAML

    @classmethod
    def check_section(cls, out, source):
        where = "serial"
        for key, (pattern, expected) in MAKE_SAFE.items():
            if not re.fullmatch(pattern, out[key]):
                raise ConfigError(source, f"{where}.{key}", expected, out[key])
        # 31 bytes (62 hex digits) per `db` chunk direct, 26 through an EEMBC interface board
        if out["chunk_bytes"] is None:
            out["chunk_bytes"] = 26 if out["interface_board"] else 31
        cls._check_flash(out["flash"], source)
        if out["qemu"] is not None:
            if out["flash"]:
                raise ConfigError(source, "serial.flash", "no flash command for an emulated board",
                                  out["flash"], "starting QEMU is the flash")
        elif out["port"] is None:
            raise ConfigError(source, "serial.port", "a serial port or pyserial URL "
                              "(/dev/ttyACM0, socket://host:port, rfc2217://host:port)", None,
                              "it is missing (or give a qemu: section for the emulated board)")
        if out["interface_board"] and out["qemu"] is not None:
            raise ConfigError(source, "serial.interface_board", "false for an emulated board", True)
        prebuilt = out["firmware"] == "prebuilt"
        if out["strict"] is None:
            out["strict"] = not prebuilt
        if out["clock_check"] is None:
            out["clock_check"] = out["qemu"] is None
        cls._check_model(out, source, prebuilt)
        if out["elf"] is not None:
            if not prebuilt:
                raise ConfigError(source, "serial.elf", "no elf for the reference firmware (it is built)",
                                  out["elf"], "give firmware: prebuilt to run your own ELF")
            elf = Path(out["elf"]).expanduser()
            out["elf"] = str(elf if elf.is_absolute() else Path(source).resolve().parent / elf)
        if prebuilt and out["qemu"] is not None and out["elf"] is None:
            raise ConfigError(source, "serial.elf", "the prebuilt firmware's ELF file for QEMU to run", None,
                              "it is missing")
        out["energy_monitor"] = cls._validate_monitor(out["energy_monitor"], source, out)
        return out

    @staticmethod
    def _check_flash(flash, source):
        for i, arg in enumerate(flash):
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(arg) if name is not None}
            except ValueError as exc:
                raise ConfigError(source, f"serial.flash[{i}]", "an argument with {elf}, {bin} or {hex}",
                                  arg, str(exc)) from None
            bad = names - set(PLACEHOLDERS)
            if bad:
                raise ConfigError(source, f"serial.flash[{i}]", "placeholders among {elf}, {bin}, {hex}",
                                  arg, f"unknown {', '.join(sorted(bad))}")

    @classmethod
    def meters_in_options(cls, options):
        monitor = options.get("energy_monitor")
        return (monitor["meter"],) if monitor else ()

    @staticmethod
    def _check_model(out, source, prebuilt):
        """What a prebuilt firmware holds: the zoo variant (its .tflite sizes and quantizes
        the input), how the firmware takes the input bytes, and the m-model-[...] to expect."""
        model = out["model"]
        if model is None:
            if prebuilt:
                raise ConfigError(source, "serial.model", "the model the prebuilt firmware holds, "
                                  "e.g. {variant: digits-cnn/tflite-int8}", None, "it is missing")
            return
        if not prebuilt:
            raise ConfigError(source, "serial.model", "no model for the reference firmware (the harness builds "
                              "each variant into it)", model, "it is for firmware: prebuilt")
        if not re.fullmatch(r"[^/\s]+/[^/\s]+", model["variant"]):
            raise ConfigError(source, "serial.model.variant", "a variant id model/variant", model["variant"])

    @staticmethod
    def _validate_monitor(entry, source, out):
        """Energy mode needs a monitor that timestamps the DUT's GPIO edges; refused here,
        at load, when there is none."""
        where = "serial.energy_monitor"
        if out["mode"] != "energy":
            if entry is not None:
                raise ConfigError(source, where, "no energy monitor in performance mode", entry,
                                  "set serial.mode: energy, or name the meter under power:")
            return None
        if out["qemu"] is not None:
            raise ConfigError(source, "serial.mode", "performance for an emulated board", "energy",
                              "QEMU has no timestamp GPIO for an energy monitor to see")
        wanted = "lpm01a with events: true, joulescope with timestamp_input: gpi0|gpi1"
        if entry is None:
            raise ConfigError(source, where, f"an energy monitor that timestamps the DUT's GPIO ({wanted})",
                              None, "energy mode prints no m-lap-us: without such a monitor there is no timing")
        if not isinstance(entry, dict) or entry.get("meter") not in EDGE_METERS:
            got = entry.get("meter") if isinstance(entry, dict) else entry
            raise ConfigError(source, f"{where}.meter", f"a meter that timestamps GPIO edges ({wanted})", got)
        from ..power import meter_class

        cls = meter_class(entry["meter"])
        checked = cls.validate(entry, source, where)
        flag = EDGE_METERS[entry["meter"]]
        if not checked.get(flag):
            expected = "true in energy mode" if flag == "events" else "the input the DUT's timestamp pin is on"
            raise ConfigError(source, f"{where}.{flag}", expected, checked.get(flag))
        return {"meter": entry["meter"], "options": checked}

    @classmethod
    def unsupported_reason(cls, spec, variant_id: str):
        """A prebuilt firmware holds one model: every other variant is not on the board."""
        model = spec.options.get("model")
        if spec.options.get("firmware") == "prebuilt" and model and model["variant"] != variant_id:
            return (f"{spec.name} runs a prebuilt firmware holding {model['variant']} (serial.model.variant); "
                    f"{variant_id} is not on it")
        return None

    # ------------------------------------------------------------ lifecycle

    def __init__(self, spec):
        super().__init__(spec)
        self.options = spec.options
        self.cache_dir = Path(self.options["cache_dir"])
        self.port = None
        self.dut: DutClient | None = None
        self.qemu = None
        self.firmware = None          # the build now on the board
        self.boot_ms = None
        self.facts: dict = {}
        self._exports: dict = {}      # handle -> (Exported, Firmware or None)
        self._model_bytes: dict = {}
        self._model_paths: dict = {}  # handle -> the .tflite (profile: operator names)
        self._prebuilt = None         # the prebuilt firmware's Firmware record (ELF, sizes), if any
        self._monitor = None          # energy mode: the meter that timestamps the DUT's edges

    def connect(self) -> None:
        """Nothing to open yet: the port opens when a firmware is deployed (or QEMU starts)."""

    def _open(self, url: str, keep_input: bool = False) -> None:
        import serial  # pyserial

        from ..mcu.qemu import open_keeping_input

        self._close_port()
        try:
            if keep_input:  # a boot banner may already be on its way (QEMU starts on connect)
                self.port = open_keeping_input(url, self.options["timeout_s"], self.options["baud"])
            else:
                self.port = serial.serial_for_url(url, baudrate=self.options["baud"],
                                                  timeout=self.options["timeout_s"])
        except (serial.SerialException, ValueError, OSError) as exc:
            raise DeviceError(f"{self.name}: cannot open serial port {url!r}: {exc}") from None
        self.dut = DutClient(self.port, timeout_s=self.options["timeout_s"],
                             chunk_bytes=self.options["chunk_bytes"],
                             interface_board=self.options["interface_board"],
                             strict=self.options["strict"], energy_mode=self.options["mode"] == "energy",
                             baud=self.options["baud"], clock_check=self.options["clock_check"])

    def _close_port(self):
        if self.port is not None:
            try:
                self.port.close()
            except Exception:
                pass
        self.port, self.dut = None, None

    def close(self) -> None:
        self._close_port()
        if self.qemu is not None:
            self.qemu.stop()
            self.qemu = None
            self.firmware = None  # the next run starts QEMU with its firmware again
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            try:
                monitor.close()
            except Exception:  # a monitor unplugged already: closing must not fail the run
                pass

    # ------------------------------------------------------------ deploy = export + build + flash

    def deploy(self, artifact: Path) -> str:
        artifact = Path(artifact)
        if not artifact.is_file():
            raise DeviceError(f"{self.name}: cannot deploy {artifact}: no such file")
        if artifact.suffix == ".npz":
            return str(artifact.resolve())  # the labelled set stays on the host
        if artifact.suffix != ".tflite":
            raise DeviceError(f"{self.name}: a serial board runs full-int8 .tflite models, not {artifact.name}")
        if self.options["firmware"] == "prebuilt":
            return self._deploy_prebuilt(artifact)
        from ..mcu import build, export

        exported = export.export(artifact)
        firmware = build.build(exported, self.cache_dir, board=self.options["board"], cpu=self.options["cpu"],
                               baud=self.options["baud"], cross=self.options["cross"])
        self._flash(firmware)
        handle = f"mcu:{exported.name}@{firmware.version}"
        self._exports[handle] = (exported, firmware)
        self._model_bytes[handle] = artifact.stat().st_size
        self._model_paths[handle] = artifact
        return handle

    def _deploy_prebuilt(self, artifact: Path) -> str:
        """The firmware is already built: learn the input from the declared variant's file,
        start QEMU with the ELF (emulated) or check the board answers, and check the model
        the DUT names when the YAML says which it should be."""
        from ..mcu import export

        model = self.options["model"]
        try:
            exported = export.export(artifact)
        except (HarnessError, ImportError) as exc:  # ImportError: no LiteRT on this host
            raise DeviceError(f"{self.name}: cannot read the input of {model['variant']} from {artifact.name} "
                              f"(serial.model.variant): {exc}") from None
        firmware = self._prebuilt_firmware()
        if self.options["qemu"] is not None:
            self._flash(firmware)
        else:
            self._ensure_link()
        profile = self._checked(self.dut.profile)
        if model["dut_model"] is not None and profile["model"] != model["dut_model"]:
            raise DeviceError(f"{self.name}: the DUT says it holds model {profile['model']!r}, the YAML's "
                              f"serial.model.dut_model says {model['dut_model']!r}")
        handle = f"prebuilt:{model['variant']}"
        self._exports[handle] = (exported, firmware if self.options["qemu"] is not None else None)
        self._model_bytes[handle] = artifact.stat().st_size
        self._model_paths[handle] = artifact
        return handle

    def _prebuilt_firmware(self):
        """A Firmware record for the YAML's ELF (None without one): QEMU runs it, and its
        sections give flash and RAM."""
        if self._prebuilt is not None or self.options["elf"] is None:
            return self._prebuilt
        import hashlib

        from ..mcu import build

        elf = Path(self.options["elf"])
        if not elf.is_file():
            raise DeviceError(f"{self.name}: serial.elf: no such file {elf}")
        digest = hashlib.sha256(elf.read_bytes()).hexdigest()[:16]
        try:
            sizes = build.elf_sizes(elf, self.options["cross"])
        except DeviceError:  # no ARM binutils here: the run works, memory stays unknown
            sizes = {}
        self._prebuilt = build.Firmware(elf=elf, bin=elf, hex=elf, version=digest, sizes=sizes, model={})
        return self._prebuilt

    def _flash(self, firmware) -> None:
        if self.firmware is not None and self.firmware.version == firmware.version and self.dut is not None:
            return  # this session flashed it already
        if self.options["qemu"] is not None:
            self._start_qemu(firmware)
        else:
            if self._board_version() != firmware.version:
                self._run_flash(firmware)
            self._ensure_link(after_reset=True)
            reported = self._board_version()
            if reported is not None and reported != firmware.version:
                raise DeviceError(f"{self.name}: after flashing, the board reports firmware {reported}, "
                                  f"expected {firmware.version}; check serial.flash")
        self.firmware = firmware

    def _start_qemu(self, firmware) -> None:
        from ..mcu.qemu import Qemu

        q = self.options["qemu"]
        if self.qemu is not None:
            self._close_port()
            self.qemu.stop()
        self.qemu = Qemu(firmware.elf, machine=q["machine"], icount_shift=q["icount_shift"],
                         extra_args=q["args"], binary=q["binary"])
        t = time.perf_counter()
        self._open(self.qemu.start(timeout_s=self.options["boot_timeout_s"] + 10), keep_input=True)
        self._checked(lambda: self.dut.wait_boot(self.options["boot_timeout_s"]))
        self.boot_ms = (time.perf_counter() - t) * 1e3

    def _run_flash(self, firmware) -> None:
        if not self.options["flash"]:
            raise DeviceError(f"{self.name}: the board runs other firmware and the YAML has no serial.flash "
                              "command; add one (openocd, st-flash, pyocd, esptool ...)")
        argv = [arg.format(**firmware.placeholders()) for arg in self.options["flash"]]
        self._close_port()  # some flashers reset the USB serial device
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.options["flash_timeout_s"])
        except FileNotFoundError:
            raise DeviceError(f"{self.name}: flash command {argv[0]!r} not found") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.name}: flashing did not finish in {self.options['flash_timeout_s']:g} s: "
                              f"{' '.join(argv)}") from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise DeviceError(f"{self.name}: flashing failed with exit code {proc.returncode}: "
                              f"{' '.join(argv)}\n{tail}")

    def _ensure_link(self, after_reset: bool = False) -> None:
        """Open the port (again) and make sure the DUT answers `name%`; a boot banner that
        arrives first (opening the port or flashing resets many boards) is skipped."""
        if self.dut is None or after_reset:
            self._open(self.options["port"])
            self.port.reset_input_buffer()
            self.facts["name"] = self._checked(lambda: self.dut.sync(self.options["boot_timeout_s"]))
        else:
            try:
                self.facts["name"] = self.dut.name()
            except DutError:  # a previous exchange failed half-way: get back in step once
                self.facts["name"] = self._checked(lambda: self.dut.resync(self.options["boot_timeout_s"]))

    def _board_version(self):
        try:
            self._ensure_link()
            lines = self._checked(lambda: self.dut.optional("version"))
        except DeviceError:
            return None
        if not lines:
            return None
        line = lines[0]
        return line[len("m-fw-["):-1] if line.startswith("m-fw-[") else None

    def _checked(self, call):
        """A DUT exchange; protocol errors name this device too. A port that failed is
        closed, so the next exchange opens it again (a board plugged back in)."""
        try:
            return call()
        except DutError as exc:
            if exc.port_failed and self.options["qemu"] is None:
                self._close_port()
            raise DeviceError(f"{self.name}: {exc}") from exc

    # ------------------------------------------------------------ run

    def run(self, spec: dict) -> dict:
        """MLPerf Tiny's measurement of the deployed model: plan, time the windows,
        accuracy on the held-out set, memory, the runner's document."""
        handle = spec.get("model")
        if handle not in self._exports:
            raise DeviceError(f"{self.name}: model {handle!r} was not deployed to this board")
        exported, firmware = self._exports[handle]
        if firmware is not None and (self.firmware is None or self.firmware.version != firmware.version):
            self._flash(firmware)  # another model was flashed since
        self._ensure_link()
        plan = RunPlan.of(spec, self.options["windows"])
        facts = self._board_facts(handle, exported)
        log_start = len(self.dut.log)
        timing = self._time(plan, spec, exported)
        accuracy = self._accuracy(spec, exported) if spec.get("dataset") else None
        prebuilt = self.options["firmware"] == "prebuilt"
        memory = self._memory(firmware or self._prebuilt, None if prebuilt else exported)
        doc = self._document(handle, exported, firmware, plan, facts, timing, accuracy, memory,
                             self.dut.log[log_start:])
        if spec.get("profile"):   # a separate pass after the timed windows, as the host runner's
            doc["profile"] = self._profile_with_peak(spec)
        return doc

    def _profile_with_peak(self, spec: dict) -> dict:
        """The per-operator profile with the firmware's kernel-loop peak inside it (the host
        calibrates through its runtime; an MCU measures its own int8 roof)."""
        from .. import profile as profiles

        prof = self.profile(spec)
        if profiles.offered(prof):
            peak = self.peak(spec)
            if profiles.offered(peak):
                prof["peak"] = {"macs_per_s": {"int8": peak["macs_per_s"]}, "source": peak["source"],
                                **({"emulated": peak["emulated"]} if peak.get("emulated") else {})}
        return prof

    def _time(self, plan: "RunPlan", spec: dict, exported) -> "Timing":
        """The input loaded, a first inference, a warmup window, then the timed windows."""
        dut = self.dut
        energy_mode = self.options["mode"] == "energy"
        # The input: the first held-out sample when there is a dataset, else a fixed
        # pattern, both of the size (and quantization) of the model the firmware holds.
        sample = self._inputs(spec, exported, limit=1)[0][0] if spec.get("dataset") else None
        t = time.perf_counter()
        self._checked(lambda: dut.load(sample if sample is not None else self._pattern(exported)))
        load_ms = (time.perf_counter() - t) * 1e3

        first = self._checked(lambda: dut.infer(1, 0))
        # energy mode has no DUT time before the monitor's: the host's is an upper bound
        per_inference_us = max(first.elapsed_us if not energy_mode else first.host_s * 1e6, 1)
        warm = None
        if plan.warmup:
            warm = self.infer_window(plan.warmup, per_inference_us)
            warm_us = warm.elapsed_us if not energy_mode else warm.host_s * 1e6
            per_inference_us = max(warm_us / plan.warmup, 1e-3)
        n = plan.per_window(per_inference_us)
        window_start = time.time()
        wall0 = time.perf_counter_ns()
        energy = None
        if energy_mode:
            latencies, overheads, energy, (window_start, window_end) = self._energy_windows(n, per_inference_us)
        else:
            latencies, overheads = [], []
            for _ in range(plan.windows):
                w = self.infer_window(n, per_inference_us)
                latencies.append(w.elapsed_us * 1000.0 / n)
                overheads.append(w.host_s * 1e3 - w.elapsed_us / 1e3)
            window_end = time.time()
        return Timing(load_ms=load_ms, first=None if energy_mode else first,
                      warm=None if energy_mode else warm, per_window=n, latencies_ns=latencies,
                      overheads_ms=overheads, energy=energy, window=(window_start, window_end),
                      wall_ns=time.perf_counter_ns() - wall0)

    def _document(self, handle, exported, firmware, plan, facts, timing, accuracy, memory, log) -> dict:
        """The runner's document (harness/ondevice/runner.py's schema) of one measurement."""
        prebuilt = self.options["firmware"] == "prebuilt"
        energy_mode = self.options["mode"] == "energy"
        n, overheads = timing.per_window, timing.overheads_ms
        doc = {
            "ok": True, "schema": 1, "runner_version": RUNNER_VERSION,
            "host": facts,
            "runtime": {"name": "mcu" if prebuilt else "mcu-int8",
                        "version": facts.get("firmware") or (firmware.version if firmware is not None else None)},
            "numpy_version": None,
            "settings": {"warmup": plan.warmup, "min_duration_s": plan.min_duration_s,
                         "min_iterations": plan.min_iterations, "max_iterations": plan.max_iterations,
                         "windows": plan.windows, "inferences_per_window": n,
                         "baud": self.options["baud"], "threads": 1, "mode": self.options["mode"]},
            "model": {"path": handle, "bytes": self._model_bytes.get(handle),
                      "const_bytes": None if prebuilt else exported.const_bytes,
                      "inputs": [self._tensor("input", exported.input)],
                      "outputs": [self._tensor("output", exported.output)]},
            "timings_ms": {"load": timing.load_ms, "init": self.boot_ms,
                           "first_inference": timing.first.elapsed_us / 1e3 if timing.first else None,
                           "warmup_total": timing.warm.elapsed_us / 1e3 if timing.warm else None},
            "latencies_ns": timing.latencies_ns,
            "round_sizes": [1] * len(timing.latencies_ns),  # one value per MLPerf window: each a round
            "loop": {"iterations": n * plan.windows, "wall_ns": timing.wall_ns,
                     "stop_reason": ("max_iterations" if n * plan.windows >= plan.max_iterations
                                     else "min_duration_and_count"),
                     "windows": plan.windows,
                     "clock": "energy monitor (DUT timestamp edges)" if energy_mode else "dut"},
            "window": {"start_unix_s": timing.window[0], "end_unix_s": timing.window[1]},
            "memory": memory,
            "accuracy": accuracy,
            "protocol": {"overhead_ms_per_window": sorted(overheads)[len(overheads) // 2] if overheads else None,
                         "overhead_ms_windows": overheads, "strict": self.options["strict"],
                         "log": log},
            "warnings": [f"the DUT printed {len(log)} line(s) that are not protocol (protocol.log): "
                         + " | ".join(log[:3])] if log else [],
            "emulated": self.options["qemu"] is not None or self.spec.emulated,
        }
        if timing.energy is not None:
            doc["energy"] = timing.energy
        return doc

    def _energy_windows(self, n: int, per_inference_us: float):
        """MLPerf Tiny's energy mode: the monitor records each window; the DUT's timestamp
        pin marks its start and end (two falling edges), whose times give the latency and
        between which the energy is integrated. Returns the latencies, the host overheads,
        the energy record (the median window's, every window's per-inference energy beside
        it) and the host times of the first and last edge."""
        from ..power import energy as power_energy
        from ..power import meter_class

        if self._monitor is None:
            m = self.options["energy_monitor"]
            self._monitor = meter_class(m["meter"])(m["options"], label=m["options"].get("label") or m["meter"])
        monitor = self._monitor
        idle = None
        if self.options["idle_s"] > 0:
            monitor.start()
            time.sleep(self.options["idle_s"])  # the idle baseline: the DUT waits for a command
            idle = monitor.stop()
        latencies, overheads, records, edges_seen = [], [], [], []
        for _ in range(self.options["windows"]):
            monitor.start()
            try:
                w = self.infer_window(n, per_inference_us)
            finally:
                trace = monitor.stop()
            window = power_energy.event_window(trace)  # MLPerf Tiny: between the last two edges
            if window is None:
                seen = len(power_energy.event_times(trace))
                raise DeviceError(f"{self.name}: the energy monitor saw {seen} timestamp edge(s) during "
                                  f"'infer {n} 0', expected 2: is the DUT's timestamp pin wired to the "
                                  f"monitor's event input (LPM01A: D7, Joulescope: the timestamp_input)?")
            t0, t1 = window
            edges_seen.append((t0, t1))
            latencies.append((t1 - t0) * 1e9 / n)
            overheads.append(w.host_s * 1e3 - (t1 - t0) * 1e3)
            records.append(power_energy.summarize(trace, t0, t1, n, idle))
        per_inf = [r["energy_per_inference_j"] for r in records]
        ranked = sorted(range(len(records)), key=lambda i: (per_inf[i] is None, per_inf[i] or 0.0))
        median = dict(records[ranked[(len(ranked) - 1) // 2]])
        median["windows_energy_per_inference_j"] = per_inf
        median["notes"] = list(median.get("notes", [])) + [
            "MLPerf Tiny energy mode: each window between the DUT's timestamp edges; the median window"]
        median["meters"] = [dict(median)]
        return latencies, overheads, median, (edges_seen[0][0], edges_seen[-1][1])

    def infer_window(self, n: int, per_inference_us: float):
        """One window of ``n`` inferences on the DUT; its deadline travels as an argument
        (the reply timeout plus ten times the expected duration), the client is not changed."""
        return self._checked(lambda: self.dut.infer(n, 0, us_per_inference=10 * per_inference_us + 1))

    @staticmethod
    def _tensor(name: str, q: dict) -> dict:
        return {"name": name, "shape": q["shape"], "dtype": "int8",
                "quantization": {"scale": q["scale"], "zero_point": q["zero_point"]}}

    @staticmethod
    def _pattern(exported) -> bytes:
        return bytes((i * 37) & 0xFF for i in range(exported.input["bytes"]))

    def _board_facts(self, handle, exported) -> dict:
        dut = self.dut
        if "profile" not in self.facts:
            self.facts.update(self._checked(dut.profile))
            version = self._checked(lambda: dut.optional("version"))
            self.facts["firmware"] = version[0][len("m-fw-["):-1] if version else None
        q = self.options["qemu"]
        return {"hostname": self.facts.get("name"), "name": self.facts.get("name"),
                "profile": self.facts.get("profile"), "model_id": self.facts.get("model"),
                "machine": self.options["cpu"], "board": q["machine"] if q else self.options["board"],
                "system": "qemu" if q else "bare-metal", "port": self.options["port"] or (self.qemu.url if self.qemu else None),
                "baud": self.options["baud"], "firmware": self.facts.get("firmware"),
                "cpu": self.options["cpu"], "cpu_count": 1,
                "clock": "guest time under -icount shift=0 (1 instruction = 1 ns)" if q else "DUT timer"}

    def _inputs(self, spec, exported, limit=None):
        """The dataset quantized with the model's input scale / zero point, as bytes."""
        import numpy as np

        try:
            data = np.load(spec["dataset"])
            x, y = data["x"], data["y"]
        except Exception as exc:
            raise DeviceError(f"{self.name}: cannot read dataset {spec['dataset']}: {exc}") from None
        q = exported.input
        if x[0].size != q["bytes"]:
            raise DeviceError(f"{self.name}: dataset samples have {x[0].size} values, the model input {q['bytes']}")
        if limit is not None:
            x, y = x[:limit], y[:limit]
        xq = np.clip(np.round(x.reshape(len(x), -1) / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)
        model = self.options.get("model") or {}
        if model.get("input_dtype") == "uint8":  # firmware that subtracts 128 itself (the reference VWW)
            xq = (xq.astype(np.int16) + 128).astype(np.uint8)
        return [s.tobytes() for s in xq], [int(v) for v in y]

    def _accuracy(self, spec, exported) -> dict:
        """Held-out samples sent with `db load`, `infer 1 0`; top-1 from the results."""
        samples, labels = self._inputs(spec, exported)
        correct = 0
        for data, label in zip(samples, labels):
            self._checked(lambda: self.dut.load(data))
            window = self._checked(lambda: self.dut.infer(1, 0))
            scores = window.results
            raw = self._checked(lambda: self.dut.optional("qresults"))
            if raw:  # exact int8 outputs, when the firmware offers them (no 3-decimal ties)
                scores = reply_ints("qresults", raw[0], "m-qresults-[", "]")
            correct += int(max(range(len(scores)), key=scores.__getitem__) == label)
        return {"top1": correct / len(labels), "correct": correct, "n": len(labels)}

    def _memory(self, firmware, exported) -> dict:
        stack = stack_size = None
        lines = self._checked(lambda: self.dut.optional("mem")) or []
        for line in lines:
            if line.startswith("m-stack-used-"):
                stack = reply_ints("mem", line, "m-stack-used-")[0]
            elif line.startswith("m-stack-size-"):
                stack_size = reply_ints("mem", line, "m-stack-size-")[0]
        sizes = firmware.sizes if firmware is not None else {}
        ram = sizes.get("ram_static_bytes")
        return {"peak_rss_kb": None,
                "flash_bytes": sizes.get("flash_bytes"),
                "ram_bytes": ram + stack if ram is not None and stack is not None else ram,
                "stack_bytes": stack, "stack_region_bytes": stack_size,
                "arena_bytes": exported.arena_bytes if exported else None,
                "sections": sizes or None}

    # ------------------------------------------------------------ profile (issue 20)

    def profile(self, spec: dict) -> dict:
        """A per-operator profile of ``spec["model"]`` (a separate pass, never inside run()'s
        windows): the firmware's ``opprof`` over ``spec["profile_runs"]`` inferences of the
        run's input, aligned to the model's operators (harness/mcu/profile.py); ``{"offered":
        False, "reason"}`` from firmware without the command."""
        from ..mcu import profile as mcu_profile

        exported = self._ready(spec.get("model"))
        sample = self._inputs(spec, exported, limit=1)[0][0] if spec.get("dataset") else self._pattern(exported)
        self._checked(lambda: self.dut.load(sample))
        first = self._checked(lambda: self.dut.infer(1, 0))
        per_inference_us = first.elapsed_us if first.elapsed_us is not None else first.host_s * 1e6
        layers = mcu_profile.layers(self._model_paths[spec["model"]])
        runs = int(spec.get("profile_runs", mcu_profile.DEFAULT_RUNS))
        return self._checked(lambda: mcu_profile.profile(self.dut, layers, runs, max(per_inference_us, 1.0),
                                                         self._emulation()))

    def peak(self, spec: dict) -> dict:
        """The board's compute peak (MAC/s) from the firmware's kernel loop, on the firmware
        that holds ``spec["model"]``; ``{"offered": False, ...}`` from other firmware."""
        from ..mcu import profile as mcu_profile

        self._ready(spec.get("model"))
        passes = int(spec.get("peak_passes", mcu_profile.DEFAULT_PEAK_PASSES))
        return self._checked(lambda: mcu_profile.peak(self.dut, passes, self._emulation()))

    def _ready(self, handle):
        """The board runs the firmware holding ``handle`` and answers; its Exported."""
        if handle not in self._exports:
            raise DeviceError(f"{self.name}: model {handle!r} was not deployed to this board")
        exported, firmware = self._exports[handle]
        if firmware is not None and (self.firmware is None or self.firmware.version != firmware.version):
            self._flash(firmware)
        self._ensure_link()
        return exported

    def _emulation(self):
        """How the DUT's clock relates to a real chip's: "guest-time" under QEMU's -icount."""
        q = self.options["qemu"]
        if q is not None:
            return "guest-time" if q["icount_shift"] is not None else "wall-clock"
        return self.spec.emulation if self.spec.emulated else False

    def info(self) -> dict:
        q = self.options["qemu"]
        return {"kind": self.spec.kind, "port": self.options.get("port"), "baud": self.options.get("baud"),
                "board": (q or {}).get("machine") or self.options.get("board"),
                "machine": self.options.get("cpu"), "emulated": bool(q) or self.spec.emulated,
                "dut_name": self.facts.get("name"),
                "controller": platform.node()}


@dataclass(frozen=True)
class RunPlan:
    """How one measurement's windows are sized: the run spec's minimums over MLPerf Tiny's
    `windows` windows (the median of windows is the result)."""

    warmup: int
    min_iterations: int
    max_iterations: int
    min_duration_s: float
    windows: int

    @classmethod
    def of(cls, spec: dict, windows: int) -> "RunPlan":
        low = max(int(spec.get("min_iterations", 1)), 1)
        return cls(warmup=int(spec.get("warmup", 10)), min_iterations=low,
                   max_iterations=max(int(spec.get("max_iterations", 1_000_000)), low),
                   min_duration_s=float(spec.get("min_duration_s", 1.0)), windows=windows)

    def per_window(self, per_inference_us: float) -> int:
        """Inferences per window: the windows together meet both minimums, within the cap."""
        n = max(math.ceil(self.min_iterations / self.windows),
                math.ceil(self.min_duration_s * 1e6 / self.windows / per_inference_us))
        return max(1, min(n, self.max_iterations // self.windows or 1))


@dataclass
class Timing:
    """What the timed part of a measurement saw (the document's timings, loop and window)."""

    load_ms: float
    first: object           # the first inference's window (None in energy mode)
    warm: object            # the warmup window (None without warmup or in energy mode)
    per_window: int
    latencies_ns: list
    overheads_ms: list
    energy: Optional[dict]
    window: tuple           # host wall-clock start and end of the timed windows
    wall_ns: int


def reply_ints(command: str, line: str, prefix: str, suffix: str = "") -> list:
    """Integers of a reply line, checked at the door: a garbled line names the command."""
    body = line[len(prefix):len(line) - len(suffix)] if line.endswith(suffix) else None
    try:
        return [int(v) for v in body.split(",")]
    except (AttributeError, ValueError):
        raise DutError(command, f"expected {prefix}<integers>{suffix}", [line]) from None
