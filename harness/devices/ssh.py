"""The `ssh` kind: a Linux board (Raspberry Pi, Jetson, any ARM or x86 box) over SSH.

    connect   host-key checked SSH (sshlink), the runner uploaded once by content hash
    deploy    the model uploaded over SFTP as <workdir>/blobs/<sha256>.<ext>; a file
              already there is not sent again (bytes_uploaded counts what was)
    run       the spec uploaded, `<python> runner-<sha>.py <spec>` started with every
              argument quoted, its JSON decoded like the local kind's; a dropped link is
              re-made and that one measurement retried `retries` times
    info      the board's facts from probe.py (OS, CPU, Python, runtimes, and the Pi
              model or the Jetson's L4T/JetPack release and nvpmodel mode when present)

`board:` (generic | rpi | jetson) in the YAML names the flavour; it decides what the
board is expected to report, not how it is driven.
"""
from __future__ import annotations

import json
import logging
import posixpath
import time
import uuid
from pathlib import Path

from .. import config_fields
from ..errors import ConfigError, DeviceError, RunnerError
from ..modelinfo import sha256_file
from ..redaction import host_has_password
from ..registry import Option, with_defaults
from . import boardlock
from .base import Device, stability_text
from .local import RUNNER, decode_runner_output, runner_env
from .sshlink import BoardLost, Link, remote_argv, resolve

log = logging.getLogger("harness.devices.ssh")

PROBE = Path(__file__).resolve().parent.parent / "ondevice" / "probe.py"
BOARDS = ("generic", "rpi", "jetson")
DEFAULT_LOCK_WAIT_S = 120.0  # as long as a store lease waits (harness/lease.py)
# What may appear in the store and reports: where the board is, never how to log in.
PUBLIC = ("host", "port", "user", "jump", "board", "workdir", "retries", "connect_timeout_s")
PINNED_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONDONTWRITEBYTECODE")
# Fixed shell text; all data arrives as positional arguments ($1 = pid file, then argv).
# It records the runner's pid (a runner orphaned by a dropped link is killed before the
# retry, so two never compete for the CPU) and reports a signal death as 128+N
# (paramiko drops the SSH exit-signal message, so a SIGKILL would look like a lost link).
WRAP = 'p=$1; shift; "$@" & echo $! > "$p"; wait $!; exit $?'
# Kill the pid in $1's file only if that process still runs this spec ($2): never a
# recycled pid.
KILL_STALE = ('test -f "$1" || exit 0; pid=$(cat "$1"); '
              'if grep -qaF -- "$2" "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid" && echo killed; fi; '
              'rm -f "$1"')


class SshDevice(Device):
    """A Linux board (Raspberry Pi, Jetson, any ARM or x86 box) over SSH, host keys checked."""

    only_given_options = True   # port, user, key_file, jump may come from ~/.ssh/config
    OPTIONS = {
        "host": Option(str, required=True, help="an ~/.ssh/config alias or [user@]host[:port]"),
        "port": Option(int, None, minimum=1, maximum=65535, help="from ~/.ssh/config, else 22"),
        "user": Option(str, None, help="from ~/.ssh/config, else the controller's user"),
        "key_file": Option((str, list), None, help="a private key file, or a list of them "
                                                     "(default: ~/.ssh/config's IdentityFile)"),
        "known_hosts": Option(str, "~/.ssh/known_hosts", help="the host keys trusted (never added on first use)"),
        "ssh_config": Option(str, None, help="an ssh config file (default ~/.ssh/config)"),
        "jump": Option(str, None, help="one jump host: an ssh config alias or [user@]host[:port]"),
        "connect_timeout_s": Option(float, 10.0, minimum=0.1, help="seconds to wait for the connection"),
        "password_env": Option(str, None, help="the environment variable holding the login password"),
        "passphrase_env": Option(str, None, help="the environment variable holding the key's passphrase"),
        "use_agent": Option(bool, True, help="offer the ssh-agent's keys"),
        "workdir": Option(str, ".cache/edge-harness", help="the harness's directory on the board (relative: "
                                                            "to the login's home)"),
        "retries": Option(int, 2, minimum=0, maximum=20, help="times one measurement is retried after the "
                                                              "link dropped"),
        "retry_wait_s": Option(float, 1.0, minimum=0.0, help="seconds before reconnecting"),
        "board": Option(str, "generic", choices=BOARDS, help="the flavour: what the board is expected to report"),
        "lock_wait_s": Option(float, DEFAULT_LOCK_WAIT_S, minimum=0.0,
                              help="seconds to wait for another run's lock on the board"),
    }

    @classmethod
    def validate_options(cls, options, source):
        where = "ssh"
        for secret in ("password", "passphrase"):
            if isinstance(options, dict) and secret in options:
                raise ConfigError(source, f"{where}.{secret}", f"no literal {secret} in a device file", "***",
                                  f"put it in an environment variable and name that in {secret}_env")
        return super().validate_options(options, source)

    @classmethod
    def check_section(cls, options, source):
        where = "ssh"
        for key in ("host", "jump"):  # user:password@host would be stored, printed and reported
            value = options.get(key)
            if isinstance(value, str) and host_has_password(value):
                raise ConfigError(source, f"{where}.{key}", "[user@]host[:port] without a password", "***",
                                  "a password in the host is refused: it would be stored and shown; put it "
                                  "in an environment variable and name that in password_env")
        if isinstance(options.get("key_file"), list):
            config_fields.get_list(source, where, options, "key_file", str)
        jump = options.get("jump")
        if jump and (jump.count(":") > 1 or "," in jump or ":" in jump and not jump.rsplit(":", 1)[1].isdigit()):
            raise ConfigError(source, f"{where}.jump", "one jump host: an ssh config alias or [user@]host[:port]",
                              jump)
        return options

    @classmethod
    def public_options(cls, options):
        return {k: v for k, v in options.items() if k in PUBLIC}

    def __init__(self, spec):
        super().__init__(spec)
        o = with_defaults(self.OPTIONS, spec.options)
        self.settings = resolve(o)
        self.board = o["board"]
        self.python = spec.python or "python3"
        self.retries = int(o["retries"])
        self.retry_wait_s = float(o["retry_wait_s"])
        self.lock_wait_s = float(o["lock_wait_s"])
        self.workdir_option = o["workdir"]
        self.link = Link(self.settings, label=spec.name)
        self.workdir = None  # absolute, resolved on the board at connect
        self.attempts = []   # (attempt, reason) of every lost attempt
        self.stale_killed = 0  # runners of dropped attempts stopped before a retry
        self._facts = None
        self.board_lock = None  # the channel holding the board lock while connected

    # ------------------------------------------------------------- connect

    def connect(self):
        self.link.open()
        self.workdir = self._resolve_workdir()
        self.link.makedirs(posixpath.join(self.workdir, "blobs"))
        self.link.makedirs(posixpath.join(self.workdir, "runs"))
        # One run on the board at a time, even runs with different stores (boardlock.py).
        # Kept: the lock lasts while its channel is open (a collected channel would close).
        self.board_lock = boardlock.take(self.link, self.python, self.workdir, self.name, self.lock_wait_s)
        self.runner = self._upload_tool(RUNNER, "runner")

    def _resolve_workdir(self) -> str:
        path = self.workdir_option
        if path.startswith("~/"):
            path = path[2:]
        return path if path.startswith("/") else posixpath.join(self.link.home(), path)

    def _upload_tool(self, local: Path, stem: str) -> str:
        remote = posixpath.join(self.workdir, f"{stem}-{sha256_file(local)[:16]}.py")
        if not self.link.exists(remote):
            self.link.put_file(local, remote)
        return remote

    def reconnect(self):
        """Close the link and connect again (workdir, board lock and runner upload included)."""
        self.link.close()
        self.connect()

    # ------------------------------------------------------------- deploy

    def deploy(self, artifact: Path) -> str:
        artifact = Path(artifact)
        if not artifact.is_file():
            raise DeviceError(f"{self.name}: cannot deploy {artifact}: no such file")
        # The board's name for it is its content: names with spaces or shell
        # metacharacters never reach the board, and equal content is sent once.
        ext = "".join(c for c in artifact.suffix.lower() if c.isalnum())
        remote = posixpath.join(self.workdir, "blobs", sha256_file(artifact) + (f".{ext}" if ext else ""))
        size = artifact.stat().st_size
        for attempt in range(self.retries + 1):
            try:
                if not self.link.exists(remote, size):
                    log.info("%s: uploading %s (%d bytes) as %s", self.name, artifact.name, size, remote)
                    self.link.put_file(artifact, remote)
                return remote
            except BoardLost as exc:
                if attempt == self.retries:
                    raise DeviceError(f"{self.name}: deploying {artifact.name} failed after "
                                      f"{attempt + 1} attempts: {exc}") from None
                self._wait_and_reconnect(exc)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------- run

    def run(self, spec: dict) -> dict:
        """One measurement; a dropped board is reconnected and this measurement retried."""
        spec_path = posixpath.join(self.workdir, "runs", f"{uuid.uuid4().hex}.json")
        reasons = []
        for attempt in range(self.retries + 1):
            try:
                if not self.link.alive:
                    self.reconnect()
                if attempt:
                    self._kill_stale(spec_path)
                return self._run_once(spec, spec_path)
            except BoardLost as exc:
                reasons.append(str(exc))
                self.attempts.append((attempt, str(exc)))
                log.warning("%s: attempt %d of %d lost: %s", self.name, attempt + 1, self.retries + 1, exc)
                if attempt < self.retries:
                    self._wait_and_reconnect(exc)
        raise DeviceError(f"{self.name}: the board dropped; this measurement failed after "
                          f"{self.retries + 1} attempts (retries={self.retries}): {reasons[-1]}")

    def _wait_and_reconnect(self, exc):
        time.sleep(self.retry_wait_s)
        try:
            self.reconnect()
        except BoardLost as again:  # still down: the next attempt reports it
            log.warning("%s: reconnect failed: %s", self.name, again)

    def _kill_stale(self, spec_path: str):
        """The runner of a dropped or timed-out attempt may still run on the board: stop it."""
        done = self.link.run(["sh", "-c", KILL_STALE, "sh", spec_path + ".pid", spec_path], timeout_s=30)
        if "killed" in done.stdout:
            self.stale_killed += 1
            log.warning("%s: killed the runner of an abandoned attempt on the board", self.name)

    def _run_once(self, spec: dict, spec_path: str) -> dict:
        self.link.put_bytes(json.dumps(spec).encode(), spec_path)
        env = runner_env(int(spec.get("threads", 1)))
        argv = (["sh", "-c", WRAP, "sh", spec_path + ".pid", "env"] + [f"{k}={env[k]}" for k in PINNED_ENV]
                + [self.python, self.runner, spec_path])
        try:
            done = self.link.run(argv, timeout_s=self.spec.timeout_s, what="the runner")
        except BoardLost:
            raise
        except DeviceError:  # timed out: do not leave the runner burning the board's CPU
            if self.link.alive:
                self._kill_stale(spec_path)
            raise
        if self.link.alive:
            self.link.run(["rm", "-f", "--", spec_path, spec_path + ".pid"], timeout_s=30)
        code = done.returncode
        if code in (137, -9):
            raise RunnerError(self.name, "Killed",
                              f"the runner was killed (exit {code}: SIGKILL), likely by the board's OOM killer "
                              f"(out of memory or a memory cgroup limit); see `dmesg` on the board", done.stderr)
        if code == 127 and not done.stdout.strip():
            raise DeviceError(f"{self.name}: the board's python {self.python!r} was not found (exit 127): "
                              f"{done.stderr.strip()[-300:]}")
        if code > 128 and not done.stdout.strip():
            raise RunnerError(self.name, "Killed", f"the runner died from signal {code - 128}", done.stderr)
        return decode_runner_output(self.name, done.stdout, done.stderr, code)

    # ------------------------------------------------------------- facts

    def probe(self) -> dict:
        """The board's facts (probe.py run with the board's python)."""
        probe = self._upload_tool(PROBE, "probe")
        done = self.link.run([self.python, probe, self.workdir], timeout_s=120, what="the probe")
        try:
            facts = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RunnerError(self.name, "Probe", f"the probe printed no facts (exit {done.returncode})",
                              done.stderr) from None
        return facts

    def info(self) -> dict:
        if self._facts is None:
            self._facts = self.probe()
        f = self._facts
        out = {"kind": self.spec.kind, "board": self.board, "host": self.settings.hostname,
               "hostname": f.get("hostname"), "os": f.get("os"), "kernel": f.get("kernel"),
               "machine": f.get("machine"), "cpu": f.get("cpu"), "cpu_count": f.get("cpu_count"),
               "mem_total_kb": f.get("mem_total_kb"), "python": f.get("python"), "numpy": f.get("numpy"),
               "runtimes": {k: v.get("version") for k, v in f.get("runtimes", {}).items() if "version" in v}}
        for key in ("board_model", "l4t", "jetpack", "nvpmodel"):
            if key in f:
                out[key] = f[key]
        return out

    def meter_source(self, root: str = "/"):
        """Where on-board power meters (tegrastats, INA3221 sysfs, vcgencmd) read: this
        board, over this connection (harness/power/ssh_source.py)."""
        from ..power.ssh_source import SshSource

        return SshSource(self.link, root)

    def machine_snapshot(self):
        done = self.link.run([self.python, self.runner, "--machine"], timeout_s=60, what="the runner")
        try:
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None

    def execute(self, argv: list, timeout_s: float = 60.0) -> tuple:
        done = self.link.run(list(argv), timeout_s=timeout_s, what=str(argv[0]))
        return done.returncode, (done.stdout + done.stderr).strip()

    def clock_offset_s(self) -> float:
        """Board clock minus controller clock: the runner stamps its timed window on the
        board's clock, power samples are stamped on the controller's."""
        from ..power.ssh_source import clock_offset_s

        return clock_offset_s(self.link)

    def close(self):
        self.link.close()

    # ------------------------------------------------------------- `harness devices`

    def check(self, variants=()) -> str:
        return format_check(self.check_report(variants)) + "\n" + stability_text(self.name, self.machine_snapshot())

    def check_report(self, variants=()) -> dict:
        """The board's facts, which variants run, and where the YAML and the board disagree."""
        return check_facts(self.spec, self.probe(), variants)

    def clean(self) -> str:
        done = self.remove_workdir()
        return f"{self.name}: removed {done['workdir']} ({done['freed_bytes'] // 1024} KiB)"

    def remove_workdir(self) -> dict:
        """Remove the harness work directory from the board (on an unconnected device: the
        board lock lives in that directory)."""
        self.link.open()
        try:
            workdir = self._resolve_workdir()
            if self.link.run(["test", "-e", workdir], timeout_s=30).returncode != 0:
                return {"device": self.name, "workdir": workdir, "freed_bytes": 0}  # nothing there
            # Only a directory the harness made (its blobs/ store inside), never a YAML typo like /usr/lib.
            is_harness = self.link.run(["test", "-d", posixpath.join(workdir, "blobs")], timeout_s=30)
            if (workdir.rstrip("/") in ("", self.link.home().rstrip("/")) or workdir.count("/") < 2
                    or is_harness.returncode != 0):
                raise DeviceError(f"{self.name}: refusing to remove {workdir!r}: not a harness work directory "
                                  f"(no blobs/ inside)")
            size = self.link.run(["du", "-sk", workdir], timeout_s=60)
            freed = int(size.stdout.split()[0]) * 1024 if size.returncode == 0 and size.stdout.split() else 0
            done = self.link.run(["rm", "-rf", "--", workdir], timeout_s=300)
            if done.returncode != 0:
                raise DeviceError(f"{self.name}: removing {workdir} failed: {done.stderr.strip()}")
            return {"device": self.name, "workdir": workdir, "freed_bytes": freed}
        finally:
            self.link.close()


# ----------------------------------------------------------------- CLI logic

RUNTIME_FOR = {".onnx": ("onnxruntime",), ".tflite": ("litert", "tflite_runtime"), ".pt2": ("torch",)}


def check_board(spec, variants=()) -> dict:
    """What `harness devices check NAME` reports: the board's facts and which variants run.

    `variants`: model files (the runtime follows the suffix) or (name, runtimes) pairs,
    e.g. a manifest recipe's id and its ``runtimes``."""
    with SshDevice(spec) as device:
        return device.check_report(variants)


def check_facts(spec, facts: dict, variants=()) -> dict:
    """The check report of a board's probed facts."""
    runtimes = facts.get("runtimes", {})
    verdicts = []
    for variant in variants:
        if isinstance(variant, (str, Path)):
            name, wanted = Path(variant).name, RUNTIME_FOR.get(Path(variant).suffix.lower(), ())
        else:
            name, wanted = variant
        have = [r for r in wanted if "version" in runtimes.get(r, {})]
        if not wanted:
            reason = "no runtime of this harness runs it"
        elif not have:
            reason = "; ".join(f"{r}: {runtimes.get(r, {}).get('missing', 'not on this board')}" for r in wanted)
        else:
            reason = f"runs with {have[0]} {runtimes[have[0]]['version']}"
        verdicts.append({"variant": name, "ok": bool(have), "runtime": have[0] if have else None,
                         "reason": reason})
    expected = {"jetson": "l4t", "rpi": "board_model"}.get(spec.options.get("board", "generic"))
    warnings = []
    if expected and expected not in facts:
        warnings.append(f"board: {spec.options['board']} but the board reports no {expected}")
    # The YAML's capabilities decide what the suites skip: say where they and the board disagree.
    for runtime in spec.capabilities.runtimes:
        if runtime in runtimes and "version" not in runtimes[runtime]:
            warnings.append(f"capabilities.runtimes declares {runtime}, which the board lacks: tests "
                            f"needing it will fail rather than skip ({runtimes[runtime].get('missing')})")
    offered = runtimes.get("onnxruntime", {}).get("providers") or []
    for provider in spec.capabilities.providers:
        if "version" in runtimes.get("onnxruntime", {}) and provider not in offered:
            warnings.append(f"capabilities.providers declares {provider}; this onnxruntime offers "
                            f"{', '.join(offered)}")
    if facts.get("numpy") is None:
        warnings.append(f"numpy is missing for {facts.get('python_executable')}: {facts.get('numpy_missing')}")
    return {"device": spec.name, "facts": facts, "variants": verdicts, "warnings": warnings}


def format_check(report: dict) -> str:
    f = report["facts"]
    lines = [f"{report['device']}: {f.get('os')} ({f.get('machine')}, kernel {f.get('kernel')})",
             f"  cpu      {f.get('cpu')} x{f.get('cpu_count')}",
             f"  memory   {(f.get('mem_total_kb') or 0) // 1024} MiB",
             f"  python   {f.get('python')} ({f.get('python_executable')})",
             f"  numpy    {f.get('numpy') or 'MISSING'}"]
    for name, rt in f.get("runtimes", {}).items():
        text = rt["version"] if "version" in rt else f"missing ({rt.get('missing')})"
        if rt.get("providers"):
            text += "; providers: " + ", ".join(rt["providers"])
        lines.append(f"  {name:<15}{text}")
    for key in ("board_model", "l4t", "jetpack", "nvpmodel"):
        if key in f:
            lines.append(f"  {key:<9}{f[key]}")
    if f.get("disk"):
        lines.append(f"  disk     {f['disk']['free_bytes'] // (1 << 20)} MiB free at {f['disk']['path']}")
    for v in report["variants"]:
        lines.append(f"  {'ok  ' if v['ok'] else 'NO  '}{v['variant']}: {v['reason']}")
    lines += [f"  warning: {w}" for w in report["warnings"]]
    return "\n".join(lines)


def clean_board(spec) -> dict:
    """Remove the harness work directory from the board (`harness devices clean NAME`)."""
    return SshDevice(spec).remove_workdir()


__all__ = ["SshDevice", "check_board", "clean_board", "format_check", "remote_argv"]
