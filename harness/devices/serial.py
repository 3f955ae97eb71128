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
                      document as harness/runner.py, plus flash/RAM/stack from the ELF and
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
from pathlib import Path

from .. import schema
from ..errors import ConfigError, DeviceError, HarnessError
from ..mcu.dut import DutClient, DutError
from .base import Device

RUNNER_VERSION = "mcu-1"
DEFAULT_CACHE = Path(".harness-cache") / "mcu"
PLACEHOLDERS = ("elf", "bin", "hex")
QEMU_KEYS = ("machine", "binary", "icount_shift", "args")
KEYS = ("port", "baud", "timeout_s", "chunk_bytes", "windows", "board", "cpu", "cross", "flash",
        "flash_timeout_s", "boot_timeout_s", "qemu", "cache_dir", "firmware", "interface_board",
        "strict", "mode", "energy_monitor", "idle_s", "clock_check", "model", "elf")
MODEL_KEYS = ("variant", "input_dtype", "dut_model")
# Meters that report the DUT's timestamp GPIO edges (MLPerf Tiny's energy mode), and how.
EDGE_METERS = {"lpm01a": "events", "joulescope": "timestamp_input"}


class SerialDevice(Device):
    kind = "serial"
    default_rounds = 1  # MLPerf Tiny's timed windows are the rounds (each a round_sizes entry)
    default_emulation = "guest-time"  # QEMU with -icount: instruction-counted guest time

    # ------------------------------------------------------------ YAML

    @classmethod
    def validate_options(cls, options, source):
        where = "serial"
        schema.check_keys(source, where, options, KEYS)
        out = {
            "port": schema.get(source, where, options, "port", str),
            "baud": schema.get(source, where, options, "baud", int, 115200, minimum=300, maximum=12000000),
            "timeout_s": schema.get(source, where, options, "timeout_s", float, 5.0, minimum=0.1),
            "interface_board": schema.get(source, where, options, "interface_board", bool, False),
            "windows": schema.get(source, where, options, "windows", int, 5, minimum=1, maximum=100),
            "board": schema.get(source, where, options, "board", str, "mps2-an385"),
            "cpu": schema.get(source, where, options, "cpu", str, "cortex-m3"),
            "cross": schema.get(source, where, options, "cross", str, "arm-none-eabi-"),
            "flash": schema.get_list(source, where, options, "flash", str, default=()),
            "flash_timeout_s": schema.get(source, where, options, "flash_timeout_s", float, 120.0, minimum=1.0),
            "boot_timeout_s": schema.get(source, where, options, "boot_timeout_s", float, 10.0, minimum=0.1),
            "cache_dir": schema.get(source, where, options, "cache_dir", str, str(DEFAULT_CACHE)),
            "firmware": schema.get(source, where, options, "firmware", str, "reference",
                                   choices=("reference", "prebuilt")),
            "qemu": None,
        }
        # These become make variables, which make expands ($(shell ...)) and pastes into
        # shell recipes: allow only plain names (and, for the toolchain prefix, a path).
        for key, pattern, expected in (
                ("board", r"[A-Za-z0-9._+-]+", "a board name of letters, digits and ._+-"),
                ("cpu", r"[A-Za-z0-9._+-]+", "a CPU name of letters, digits and ._+-"),
                ("cross", r"[A-Za-z0-9._+/-]+", "a toolchain prefix (path) of letters, digits and ._+-/")):
            if not re.fullmatch(pattern, out[key]):
                raise ConfigError(source, f"{where}.{key}", expected, out[key])
        # 31 bytes (62 hex digits) per `db` chunk direct, 26 through an EEMBC interface board
        out["chunk_bytes"] = schema.get(source, where, options, "chunk_bytes", int,
                                        26 if out["interface_board"] else 31, minimum=1, maximum=38)
        for i, arg in enumerate(out["flash"]):
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(arg) if name is not None}
            except ValueError as exc:
                raise ConfigError(source, f"serial.flash[{i}]", "an argument with {elf}, {bin} or {hex}",
                                  arg, str(exc)) from None
            bad = names - set(PLACEHOLDERS)
            if bad:
                raise ConfigError(source, f"serial.flash[{i}]", "placeholders among {elf}, {bin}, {hex}",
                                  arg, f"unknown {', '.join(sorted(bad))}")
        if "qemu" in options and options["qemu"] is not None:
            q = schema.get(source, where, options, "qemu", dict)
            schema.check_keys(source, "serial.qemu", q, QEMU_KEYS)
            out["qemu"] = {
                "machine": schema.get(source, "serial.qemu", q, "machine", str, "mps2-an385",
                                      choices=("mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505")),
                "binary": schema.get(source, "serial.qemu", q, "binary", str, "qemu-system-arm"),
                "icount_shift": schema.get(source, "serial.qemu", q, "icount_shift", int, 0, minimum=0, maximum=10),
                "args": schema.get_list(source, "serial.qemu", q, "args", str),
            }
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
        out["strict"] = schema.get(source, where, options, "strict", bool, not prebuilt)
        out["clock_check"] = schema.get(source, where, options, "clock_check", bool, out["qemu"] is None)
        out["model"] = cls._validate_model(options, source, prebuilt)
        out["elf"] = schema.get(source, where, options, "elf", str, None)
        if out["elf"] is not None:
            if not prebuilt:
                raise ConfigError(source, "serial.elf", "no elf for the reference firmware (it is built)",
                                  out["elf"], "give firmware: prebuilt to run your own ELF")
            elf = Path(out["elf"]).expanduser()
            out["elf"] = str(elf if elf.is_absolute() else Path(source).resolve().parent / elf)
        if prebuilt and out["qemu"] is not None and out["elf"] is None:
            raise ConfigError(source, "serial.elf", "the prebuilt firmware's ELF file for QEMU to run", None,
                              "it is missing")
        out["mode"] = schema.get(source, where, options, "mode", str, "performance",
                                 choices=("performance", "energy"))
        out["idle_s"] = schema.get(source, where, options, "idle_s", float, 2.0, minimum=0.0, maximum=600.0)
        out["energy_monitor"] = cls._validate_monitor(options, source, out)
        return out

    @staticmethod
    def _validate_model(options, source, prebuilt):
        """What a prebuilt firmware holds: the zoo variant (its .tflite sizes and quantizes
        the input), how the firmware takes the input bytes, and the m-model-[...] to expect."""
        raw = options.get("model")
        if raw is None:
            if prebuilt:
                raise ConfigError(source, "serial.model", "the model the prebuilt firmware holds, "
                                  "e.g. {variant: digits-cnn/tflite-int8}", None, "it is missing")
            return None
        if not prebuilt:
            raise ConfigError(source, "serial.model", "no model for the reference firmware (the harness builds "
                              "each variant into it)", raw, "it is for firmware: prebuilt")
        model = schema.get(source, "serial", options, "model", dict)
        schema.check_keys(source, "serial.model", model, MODEL_KEYS)
        variant = schema.get(source, "serial.model", model, "variant", str, required=True)
        if not re.fullmatch(r"[^/\s]+/[^/\s]+", variant):
            raise ConfigError(source, "serial.model.variant", "a variant id model/variant", variant)
        return {"variant": variant,
                "input_dtype": schema.get(source, "serial.model", model, "input_dtype", str, "int8",
                                          choices=("int8", "uint8")),
                "dut_model": schema.get(source, "serial.model", model, "dut_model", str, None)}

    @staticmethod
    def _validate_monitor(options, source, out):
        """Energy mode needs a monitor that timestamps the DUT's GPIO edges; refused here,
        at load, when there is none."""
        entry = options.get("energy_monitor")
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

    def connect(self) -> None:
        self.options = self.spec.options
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
        if getattr(self, "qemu", None) is not None:
            self.qemu.stop()
            self.qemu = None
        if getattr(self, "_monitor", None) is not None:
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
        handle = spec.get("model")
        if handle not in self._exports:
            raise DeviceError(f"{self.name}: model {handle!r} was not deployed to this board")
        exported, firmware = self._exports[handle]
        if firmware is not None and (self.firmware is None or self.firmware.version != firmware.version):
            self._flash(firmware)  # another model was flashed since
        self._ensure_link()
        dut = self.dut
        prebuilt = self.options["firmware"] == "prebuilt"
        energy_mode = self.options["mode"] == "energy"
        warmup = int(spec.get("warmup", 10))
        min_iterations = max(int(spec.get("min_iterations", 1)), 1)
        max_iterations = max(int(spec.get("max_iterations", 1_000_000)), min_iterations)
        min_duration_s = float(spec.get("min_duration_s", 1.0))
        windows = self.options["windows"]
        facts = self._board_facts(handle, exported)
        log_start = len(dut.log)

        # The input: the first held-out sample when there is a dataset, else a fixed
        # pattern, both of the size (and quantization) of the model the firmware holds.
        labelled = bool(spec.get("dataset"))
        sample = self._inputs(spec, exported, limit=1)[0][0] if labelled else None
        t = time.perf_counter()
        self._checked(lambda: dut.load(sample if sample is not None else self._pattern(exported)))
        load_ms = (time.perf_counter() - t) * 1e3

        first = self._checked(lambda: dut.infer(1, 0))
        # energy mode has no DUT time before the monitor's: the host's is an upper bound
        per_inference_us = max(first.elapsed_us if not energy_mode else first.host_s * 1e6, 1)
        warm = None
        if warmup:
            warm = self._infer(warmup, per_inference_us)
            warm_us = warm.elapsed_us if not energy_mode else warm.host_s * 1e6
            per_inference_us = max(warm_us / warmup, 1e-3)
        # MLPerf Tiny: `windows` windows whose total meets both minimums; median of windows.
        n = max(math.ceil(min_iterations / windows),
                math.ceil(min_duration_s * 1e6 / windows / per_inference_us))
        n = max(1, min(n, max_iterations // windows or 1))
        window_start = time.time()
        wall0 = time.perf_counter_ns()
        energy = None
        if energy_mode:
            latencies, overheads, energy, (window_start, window_end) = self._energy_windows(n, per_inference_us)
        else:
            latencies, overheads = [], []
            for _ in range(windows):
                w = self._infer(n, per_inference_us)
                latencies.append(w.elapsed_us * 1000.0 / n)
                overheads.append(w.host_s * 1e3 - w.elapsed_us / 1e3)
            window_end = time.time()
        wall_ns = time.perf_counter_ns() - wall0

        accuracy = self._accuracy(spec, exported) if labelled else None
        memory = self._memory(firmware or self._prebuilt, None if prebuilt else exported)
        total = n * windows
        log = dut.log[log_start:]
        doc = {
            "ok": True, "schema": 1, "runner_version": RUNNER_VERSION,
            "host": facts,
            "runtime": {"name": "mcu" if prebuilt else "mcu-int8",
                        "version": facts.get("firmware") or (firmware.version if firmware is not None else None)},
            "numpy_version": None,
            "settings": {"warmup": warmup, "min_duration_s": min_duration_s, "min_iterations": min_iterations,
                         "max_iterations": max_iterations, "windows": windows, "inferences_per_window": n,
                         "baud": self.options["baud"], "threads": 1, "mode": self.options["mode"]},
            "model": {"path": handle, "bytes": self._model_bytes.get(handle),
                      "const_bytes": None if prebuilt else exported.const_bytes,
                      "inputs": [self._tensor("input", exported.input)],
                      "outputs": [self._tensor("output", exported.output)]},
            "timings_ms": {"load": load_ms, "init": self.boot_ms,
                           "first_inference": first.elapsed_us / 1e3 if not energy_mode else None,
                           "warmup_total": warm.elapsed_us / 1e3 if warm and not energy_mode else None},
            "latencies_ns": latencies,
            "round_sizes": [1] * len(latencies),  # one value per MLPerf window: each a round
            "loop": {"iterations": total, "wall_ns": wall_ns,
                     "stop_reason": "max_iterations" if n * windows >= max_iterations else "min_duration_and_count",
                     "windows": windows,
                     "clock": "energy monitor (DUT timestamp edges)" if energy_mode else "dut"},
            "window": {"start_unix_s": window_start, "end_unix_s": window_end},
            "memory": memory,
            "accuracy": accuracy,
            "protocol": {"overhead_ms_per_window": sorted(overheads)[len(overheads) // 2] if overheads else None,
                         "overhead_ms_windows": overheads, "strict": self.options["strict"],
                         "log": log},
            "warnings": [f"the DUT printed {len(log)} line(s) that are not protocol (protocol.log): "
                         + " | ".join(log[:3])] if log else [],
            "emulated": self.options["qemu"] is not None or self.spec.emulated,
        }
        if energy is not None:
            doc["energy"] = energy
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
                w = self._infer(n, per_inference_us)
            finally:
                trace = monitor.stop()
            edges = [e["t"] for e in trace.extra.get("events", []) if e.get("edge") == "fal"]
            if len(edges) < 2:
                raise DeviceError(f"{self.name}: the energy monitor saw {len(edges)} timestamp edge(s) during "
                                  f"'infer {n} 0', expected 2: is the DUT's timestamp pin wired to the "
                                  f"monitor's event input (LPM01A: D7, Joulescope: the timestamp_input)?")
            t0, t1 = edges[-2], edges[-1]  # MLPerf Tiny: between the last two edges
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

    def _infer(self, n: int, per_inference_us: float):
        # a window's deadline: the reply timeout plus ten times its expected duration
        self.dut.us_per_inference_budget = 10 * per_inference_us + 1
        return self._checked(lambda: self.dut.infer(n, 0))

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
                scores = _ints("qresults", raw[0], "m-qresults-[", "]")
            correct += int(max(range(len(scores)), key=scores.__getitem__) == label)
        return {"top1": correct / len(labels), "correct": correct, "n": len(labels)}

    def _memory(self, firmware, exported) -> dict:
        stack = stack_size = None
        lines = self._checked(lambda: self.dut.optional("mem")) or []
        for line in lines:
            if line.startswith("m-stack-used-"):
                stack = _ints("mem", line, "m-stack-used-")[0]
            elif line.startswith("m-stack-size-"):
                stack_size = _ints("mem", line, "m-stack-size-")[0]
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
        q = self.options["qemu"] if hasattr(self, "options") else self.spec.options.get("qemu")
        return {"kind": self.kind, "port": self.spec.options.get("port"), "baud": self.spec.options.get("baud"),
                "board": (q or {}).get("machine") or self.spec.options.get("board"),
                "machine": self.spec.options.get("cpu"), "emulated": bool(q) or self.spec.emulated,
                "dut_name": getattr(self, "facts", {}).get("name"),
                "controller": platform.node()}


def _ints(command: str, line: str, prefix: str, suffix: str = "") -> list:
    """Integers of a reply line, checked at the door: a garbled line names the command."""
    body = line[len(prefix):len(line) - len(suffix)] if line.endswith(suffix) else None
    try:
        return [int(v) for v in body.split(",")]
    except (AttributeError, ValueError):
        raise DutError(command, f"expected {prefix}<integers>{suffix}", [line]) from None
