"""The `labgrid` kind: a board from a labgrid coordinator's places.

    kind: labgrid
    labgrid:
      coordinator: lab:20408          # default: $LG_COORDINATOR, then labgrid's 127.0.0.1:20408
      tags: {board: rpi5}             # or place: rpi5-a
      priority: 0                     # the reservation's priority (higher is served first)
      reserve_timeout_s: 600          # wait this long for a matching place to come free
      ssh: {key_file: ..., known_hosts: ..., board: rpi}   # what a NetworkService does not say
      serial: {windows: 5, ...}                             # for a NetworkSerialPort (MCU places)
      power: {off_s: 2, boot_wait_s: 30}                    # a NetworkPowerPort power-cycles a dead board

    connect   reserve the filter (labgrid's scheduler picks a free matching place), wait with a
              message and a timeout, acquire the allocated place; its NetworkService becomes a
              `kind: ssh` device and its NetworkSerialPort a `kind: serial` device (the same
              drivers: host keys checked against known_hosts, never added)
    run       the inner device's; a board that stopped answering is power-cycled through the
              place's power port (when it has one) and the measurement tried once more
    info      the inner device's facts plus the place, its tags and the coordinator
    close     release the place and cancel the reservation (also on Ctrl-C and on failure;
              a killed run's place is released by the next run of the same user on the
              same host, or by `labgrid-client -p PLACE release`)

While a place is acquired through labgrid, labgrid is the lock: the store lease of the
device name is not taken (harness/lease.py), so xdist workers can share one device name
and each reserve its own place.
"""
from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import re
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Optional

from .. import lease
from ..errors import ConfigError, DeviceError
from ..lease import LeaseBusy
from ..registry import Option, with_defaults
from . import device_class
from .base import Device
from .labgrid_client import Bridge, LabgridError, coordinator_address, open_bridge

log = logging.getLogger("harness.devices.labgrid")

# A NetworkService says address, port and user; the rest of an ssh section comes from the YAML.
SSH_FROM_PLACE = ("host", "port", "user")
SERIAL_FROM_PLACE = ("port", "baud")
TAG_KEY = re.compile(r"[a-z][a-z0-9_]+")       # labgrid's own rule for tag names
TAG_VALUE = re.compile(r"[A-Za-z0-9_.:-]+")
PUBLIC = ("coordinator", "place", "tags", "priority", "reserve_timeout_s")
NOTICE_EVERY_S = 30.0


class PlaceBusy(LeaseBusy):
    """No matching place came free in time; names the places and who holds them."""

    def __init__(self, device: str, message: str):
        self.device, self.holder, self.expires_at = device, message, None
        DeviceError.__init__(self, message)


# device name -> the PlaceBusy that said no: later tests of the run skip at once, not after
# another full reserve_timeout_s each
_busy: dict[str, PlaceBusy] = {}


def state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edge-harness" / "labgrid"


class PlaceLock:
    """A local mark that this process holds a place: a file locked with flock while the run
    lives. The kernel drops the lock when the process dies, however it dies, so a place that
    labgrid says this user holds, whose file exists but is unlocked, was left by a killed run."""

    def __init__(self, coordinator: str, place: str):
        safe = lambda s: "p-" + urllib.parse.quote(s, safe="")  # never a path outside the directory
        self.path = state_dir() / safe(coordinator) / f"{safe(place)}.lock"
        self._file = None

    def take(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return True

    def left_by_killed_run(self) -> bool:
        if not self.path.exists():
            return False  # acquired by hand (labgrid-client acquire): not ours to release
        if not self.take():
            return False  # a live run (another xdist worker) holds it
        self.drop()
        return True

    def drop(self):
        if self._file is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self._file.close()  # closing drops the flock
            self._file = None


def _describe_filter(filters: dict) -> str:
    if set(filters) == {"name"}:
        return f"place {filters['name']}"
    return "a place with " + ", ".join(f"{k}={v}" for k, v in sorted(filters.items()))


def matching(places: list, filters: dict) -> list:
    """The places a reservation with these filters may get (labgrid's rule: tags, or name=)."""
    out = []
    for p in places:
        tags = {**p["tags"], "name": p["name"]}
        if all(tags.get(k) == v for k, v in filters.items()):
            out.append(p)
    return out


def holders(places: list, reservations: list, me: str) -> str:
    """'rpi5-a held by hostA/alice, rpi5-b reserved by hostB/bob (priority 5)' for messages."""
    by_token = {r["token"]: r for r in reservations}
    parts = []
    for p in places:
        if p["acquired"]:
            parts.append(f"{p['name']} held by {p['acquired']}" + (" (this user)" if p["acquired"] == me else ""))
        elif p["reservation"] and p["reservation"] in by_token:
            r = by_token[p["reservation"]]
            parts.append(f"{p['name']} reserved by {r['owner']} (priority {r['prio']:g})")
        else:
            parts.append(f"{p['name']} free")
    return ", ".join(parts) or "no such place on the coordinator"


class LabgridDevice(Device):
    """A board of a labgrid coordinator's place (by name, or any free place matching tags),
    driven as the ssh or serial kind through the place's resources."""

    only_given_options = True   # reports show the section as written
    OPTIONS = {
        "coordinator": Option(str, None, help="host:port of the coordinator (default: $LG_COORDINATOR, "
                                              "else 127.0.0.1:20408)"),
        "place": Option(str, None, help="one place by name (or give tags)"),
        "tags": Option(dict, None, help="any free place whose tags match, e.g. {board: rpi5} (a pool: "
                                        "xdist workers each take one)"),
        "priority": Option((int, float), 0, help="the reservation's priority"),
        "reserve_timeout_s": Option(float, 600.0, minimum=0.0, help="seconds to wait for a place"),
        "request_timeout_s": Option(float, None, minimum=0.0, help="seconds per coordinator request"),
        "poll_s": Option(float, 1.0, minimum=0.05, help="seconds between polls of the reservation"),
        "python": Option(str, None, help="the interpreter that has labgrid (default: this one)"),
        "ssh": Option(dict, None, help="the ssh kind's options, less host, port and user (the place's "
                                       "NetworkService gives them)"),
        "serial": Option(dict, None, help="the serial kind's options, less port and baud (the place's "
                                          "NetworkSerialPort gives them)"),
    }
    SECTIONS = {"power": {
        "off_s": Option(float, 2.0, minimum=0.0, help="seconds the power stays off in a power cycle"),
        "boot_wait_s": Option(float, 30.0, minimum=0.0, help="seconds to wait for the board to boot again"),
    }}

    # ------------------------------------------------------------ YAML

    @classmethod
    def check_section(cls, options, source):
        where = "labgrid"
        place, tags = options.get("place"), options.get("tags")
        if (place is None) == (tags is None):
            raise ConfigError(source, f"{where}.place", "either a place name or a tags filter (not both)",
                              place, "labgrid.tags: {board: rpi5} picks any free matching place")
        for key, value in (tags or {}).items():
            if not isinstance(key, str) or not TAG_KEY.fullmatch(key):
                raise ConfigError(source, f"{where}.tags", "tag names of a-z, 0-9 and _ (labgrid's rule)", key)
            if not isinstance(value, (str, int)) or isinstance(value, bool) or not TAG_VALUE.fullmatch(str(value)):
                raise ConfigError(source, f"{where}.tags.{key}", "a value of letters, digits and _.:-", value)
        out = dict(options)
        out["tags"] = {k: str(v) for k, v in (tags or {}).items()} or None
        for section, given in (("ssh", SSH_FROM_PLACE), ("serial", SERIAL_FROM_PLACE)):
            sub = options.get(section) or {}
            for key in given:
                if key in sub:
                    raise ConfigError(source, f"{where}.{section}.{key}", "no value: the place's resource says it",
                                      sub[key])
        _inner_options(source, "ssh", {"host": "place"}, options.get("ssh") or {})
        if options.get("serial"):
            _inner_options(source, "serial", {"port": "socket://place:1"}, options["serial"])
        # The device name is the file's stem: labgrid, not the store, locks this device's boards.
        lease.defer_to(Path(str(source)).stem, "labgrid")
        return out

    @classmethod
    def inventory_lines(cls, spec) -> list:
        """The coordinator's matching places, their tags and holders."""
        return place_lines(spec)

    @classmethod
    def public_options(cls, options):
        out = {k: options[k] for k in PUBLIC if options.get(k) is not None}
        ssh = options.get("ssh") or {}
        out["ssh"] = {k: ssh[k] for k in ("board", "workdir", "retries") if k in ssh}
        return out

    @classmethod
    def spreads_over_workers(cls, options) -> bool:
        """A tag filter is a pool: xdist workers each take a place, so tests need not stay on
        one worker (harness/plugin.py groups a device's tests otherwise)."""
        return bool(options.get("tags"))

    # ------------------------------------------------------------ lifecycle

    def __init__(self, spec, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 notify: Optional[Callable[[str], None]] = None):
        super().__init__(spec)
        o = with_defaults(self.OPTIONS, spec.options)
        self.power_options = with_defaults(self.SECTIONS["power"], o.get("power") or {})
        self.coordinator = coordinator_address(o.get("coordinator"))
        self.filters = dict(o["tags"]) if o.get("tags") else {"name": o["place"]}
        self.priority = float(o["priority"])
        self.reserve_timeout_s = float(o["reserve_timeout_s"])
        self.poll_s = float(o["poll_s"])
        self.clock, self.sleep, self.notify = clock, sleep, notify or _tell
        self.bridge: Optional[Bridge] = None
        self.user: Optional[str] = None
        self.place: Optional[str] = None
        self.place_tags: dict = {}
        self.token: Optional[str] = None
        self.lock: Optional[PlaceLock] = None
        self.inner: Optional[Device] = None
        self.resources: list = []
        self.power_port: Optional[str] = None
        self.power_cycles = 0
        self.recovered: list[str] = []  # places a killed run had left acquired, released here
        self.waited_s = 0.0   # waiting for the reservation to be allocated
        self.acquire_s = 0.0  # connect() until the place was acquired (bridge, reserve, wait, acquire)

    def connect(self) -> None:
        if self.name in _busy:
            raise _busy[self.name]
        start = self.clock()
        self.bridge = open_bridge(self.coordinator, self.spec.options.get("python"), self.name)
        if self.spec.options.get("request_timeout_s"):
            self.bridge.timeout_s = float(self.spec.options["request_timeout_s"])
        try:
            self.user = self.bridge.call("hello")["user"]
            self._recover_killed_runs()
            self._reserve_and_acquire()
            self.acquire_s = self.clock() - start
            self.resources = self.bridge.call("resources", place=self.place)
            self.inner = self._inner_device()
            self._connect_inner()
        except BaseException:
            self.close()  # never keep a place this run cannot use
            raise

    def _recover_killed_runs(self):
        """Places this user on this host holds whose run is gone (their lock file is unlocked)."""
        for p in self.bridge.call("places"):
            if p["acquired"] != self.user:
                continue
            if PlaceLock(self.coordinator, p["name"]).left_by_killed_run():
                self.bridge.call("release", place=p["name"], **{"from": self.user})
                if p["reservation"]:  # the dead run's reservation would keep the place allocated
                    self.bridge.call("cancel", token=p["reservation"])
                self.recovered.append(p["name"])
                log.warning("%s: released labgrid place %s, left acquired by a killed run", self.name, p["name"])
                self.notify(f"{self.name}: released labgrid place {p['name']}, left acquired by a killed run "
                            f"of {self.user}")

    def _reserve_and_acquire(self):
        wanted = _describe_filter(self.filters)
        res = self.bridge.call("reserve", filters=self.filters, prio=self.priority)
        self.token = res["token"]
        start, last_notice = self.clock(), None
        while res["state"] == "waiting":
            waited = self.clock() - start
            if waited >= self.reserve_timeout_s:
                raise self._timed_out(wanted, waited)
            if last_notice is None or self.clock() - last_notice >= NOTICE_EVERY_S:
                last_notice = self.clock()
                self.notify(f"{self.name}: waiting for {wanted} on {self.coordinator} (reservation {self.token}, "
                            f"priority {self.priority:g}): {self._who(wanted)}; waited {waited:.0f} s of "
                            f"{self.reserve_timeout_s:.0f} s (labgrid.reserve_timeout_s)")
            self.sleep(min(self.poll_s, max(0.05, self.reserve_timeout_s - waited)))
            res = self.bridge.call("poll", token=self.token)  # polling also keeps it from expiring
        if res["state"] not in ("allocated", "acquired") or not res["place"]:
            raise DeviceError(f"{self.name}: labgrid reservation {self.token} for {wanted} ended {res['state']}")
        self.waited_s = self.clock() - start
        place = res["place"]
        lock = PlaceLock(self.coordinator, place)
        if not lock.take():
            raise DeviceError(f"{self.name}: labgrid allocated place {place}, but another process of this "
                              f"host holds its lock file {lock.path}")
        self.lock = lock
        try:
            self.bridge.call("acquire", place=place)
        except BaseException:
            lock.drop()
            self.lock = None
            raise
        self.place = place
        self.place_tags = next((p["tags"] for p in self.bridge.call("places") if p["name"] == place), {})
        log.info("%s: acquired labgrid place %s after %.1f s", self.name, place, self.waited_s)

    def _who(self, wanted: str) -> str:
        try:
            places = matching(self.bridge.call("places"), self.filters)
            return holders(places, self.bridge.call("reservations"), self.user)
        except LabgridError as exc:
            return f"(cannot list places: {exc})"

    def _timed_out(self, wanted: str, waited: float) -> PlaceBusy:
        who = self._who(wanted)
        self._cancel()
        exc = PlaceBusy(self.name, f"{self.name}: waited {waited:.0f} s (labgrid.reserve_timeout_s="
                                   f"{self.reserve_timeout_s:g}) for {wanted} on {self.coordinator}, in vain: {who}")
        _busy[self.name] = exc
        return exc

    # ------------------------------------------------------------ resources -> drivers

    def _inner_device(self) -> Device:
        by_cls = {}
        for r in self.resources:
            by_cls.setdefault(r["cls"], r)
        power = next((r for r in self.resources if r["cls"].endswith("PowerPort")), None)
        self.power_port = power["name"] if power else None
        o = self.spec.options
        if "NetworkService" in by_cls:
            p = by_cls["NetworkService"]["params"]
            options = {**(o.get("ssh") or {}), "host": p["address"], "port": int(p.get("port", 22)),
                       "user": p["username"]}
            return device_class("ssh")(self._inner_spec("ssh", _inner_options(self.spec.source, "ssh", options, {})))
        if "NetworkSerialPort" in by_cls:
            p = by_cls["NetworkSerialPort"]["params"]
            scheme = "socket" if p.get("protocol") == "raw" else "rfc2217"
            options = {**(o.get("serial") or {}), "port": f"{scheme}://{p['host']}:{int(p['port'])}"}
            if p.get("speed"):
                options["baud"] = int(p["speed"])
            return device_class("serial")(self._inner_spec("serial",
                                                           _inner_options(self.spec.source, "serial", options, {})))
        raise DeviceError(f"{self.name}: labgrid place {self.place} has no NetworkService or NetworkSerialPort "
                          f"(its resources: {', '.join(r['cls'] for r in self.resources) or 'none'})")

    def _inner_spec(self, kind: str, options: dict):
        return dataclasses.replace(self.spec, kind=kind, options=options)

    def _connect_inner(self):
        from .sshlink import BoardLost

        try:
            self.inner.connect()
        except BoardLost as exc:
            if not self.power_port:
                raise
            self._power_cycle(exc)
            self.inner.connect()

    def _power_cycle(self, why):
        power = self.power_options
        self.notify(f"{self.name}: place {self.place}'s board stopped answering ({why}); power-cycling it "
                    f"through {self.power_port}")
        self.bridge.call("power", place=self.place, action="cycle", delay=float(power["off_s"]),
                         timeout_s=120)
        self.power_cycles += 1
        self.sleep(float(power["boot_wait_s"]))

    # ------------------------------------------------------------ the Device protocol

    def deploy(self, artifact: Path) -> str:
        return self.inner.deploy(artifact)

    def run(self, spec: dict) -> dict:
        try:
            return self.inner.run(spec)
        except DeviceError as exc:
            # only a board that stopped answering (its retries spent), never a runner error
            if not self.power_port or "dropped" not in str(exc) or type(exc).__name__ == "RunnerError":
                raise
            self._power_cycle(exc)
            self.inner.close()
            self.inner.connect()
            return self.inner.run(spec)

    def info(self) -> dict:
        facts = dict(self.inner.info()) if self.inner is not None else {}
        facts["inner_kind"] = facts.get("kind")
        facts.update({"kind": self.spec.kind, "place": self.place, "place_tags": self.place_tags,
                      "coordinator": self.coordinator, "labgrid_user": self.user,
                      "reserve_wait_s": round(self.waited_s, 3), "power_cycles": self.power_cycles})
        return facts

    # What the session, power and CLI ask of a device is the place's board's (the inner
    # ssh or serial device's) while the place is held.
    def meter_source(self, root: str = "/"):
        return self.inner.meter_source(root) if self.inner is not None else None

    def clock_offset_s(self) -> float:
        return self.inner.clock_offset_s() if self.inner is not None else 0.0

    def machine_snapshot(self):
        return self.inner.machine_snapshot() if self.inner is not None else None

    def execute(self, argv: list, timeout_s: float = 60.0) -> tuple:
        if self.inner is None:
            return super().execute(argv, timeout_s)
        return self.inner.execute(argv, timeout_s)

    def check(self, variants=()) -> str:
        where = f"{self.name}: labgrid place {self.place} of {self.coordinator}"
        return where + "\n" + (self.inner.check(variants) if self.inner is not None else super().check(variants))

    def _cancel(self):
        if self.token and self.bridge is not None:
            try:
                self.bridge.call("cancel", token=self.token)
            except LabgridError as exc:
                log.warning("%s: cancelling reservation %s: %s", self.name, self.token, exc)
        self.token = None

    def close(self) -> None:
        try:
            if self.inner is not None:
                self.inner.close()
        finally:
            self.inner = None
            if self.place and self.bridge is not None:
                try:
                    self.bridge.call("release", place=self.place, **{"from": self.user})
                except LabgridError as exc:  # the bridge still releases on its way out
                    log.warning("%s: releasing place %s: %s", self.name, self.place, exc)
            self._cancel()
            if self.lock is not None:
                self.lock.drop()
                self.lock = None
            self.place = None
            if self.bridge is not None:
                self.bridge.close()
                self.bridge = None


def _inner_options(source, kind: str, options: dict, extra: dict) -> dict:
    """Check an ssh/serial section with that kind's own rules; errors name labgrid.<kind>.<field>."""
    from . import device_class

    try:
        return device_class(kind).validate_options({**options, **extra}, source)
    except ConfigError as exc:
        raise ConfigError(source, f"labgrid.{exc.field}", exc.expected, exc.got) from None


def _tell(message: str) -> None:
    """Waiting is shown on the user's terminal even while pytest captures output (which
    redirects the stderr file descriptor, not the terminal); without one, on stderr (seen
    with `pytest -s`, and in the test's captured log)."""
    log.warning("%s", message)
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(f"harness: {message}\n")
            return
    except OSError:  # no controlling terminal (CI)
        pass
    stream = sys.__stderr__
    if stream is not None:
        stream.write(f"harness: {message}\n")
        stream.flush()


# ------------------------------------------------------------------ `harness devices`


def place_lines(spec, timeout_s: float = 20.0) -> list[str]:
    """The coordinator's places this device may get, with tags and holders (for the CLI)."""
    o = spec.options
    device = LabgridDevice(spec)
    try:
        bridge = open_bridge(device.coordinator, o.get("python"), spec.name, timeout_s=timeout_s)
    except DeviceError as exc:
        return [f"  {exc}"]
    try:
        places = matching(bridge.call("places"), device.filters)
        reservations = bridge.call("reservations")
    except DeviceError as exc:
        return [f"  {exc}"]
    finally:
        bridge.close()
    if not places:
        return [f"  no {_describe_filter(device.filters)} on {device.coordinator}"]
    by_token = {r["token"]: r for r in reservations}
    lines = []
    for p in sorted(places, key=lambda p: p["name"]):
        tags = " ".join(f"{k}={v}" for k, v in sorted(p["tags"].items())) or "-"
        if p["acquired"]:
            state = f"held by {p['acquired']}"
        elif p["reservation"] in by_token:
            state = f"reserved by {by_token[p['reservation']]['owner']}"
        else:
            state = "free"
        lines.append(f"  place {p['name']}  [{tags}]  {state}")
    return lines
