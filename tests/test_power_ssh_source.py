"""SshSource over a stand-in for the ssh branch's Link: the channel runs the exact remote
command line through a local `sh -c`, as sshd would, so quoting, the PID handshake and
the kill at close are exercised for real (SFTP is stood in by the local files)."""
import os
import select
import socket
import subprocess
from types import SimpleNamespace

import pytest

from harness.devices.sshlink import remote_argv
from harness.power import open_meters
from harness.power.energy import summarize
from harness.power.ssh_source import SshSource, clock_offset_s
from power_helpers import ArrivalClock, VirtualClock, fake, record_lines, record_polls, spec_with


class LocalChannel:
    def __init__(self):
        self.proc, self.timeout = None, None

    def set_combine_stderr(self, on):
        pass

    def exec_command(self, command):
        self.command = command
        self.proc = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def settimeout(self, t):
        self.timeout = t

    def recv(self, n):
        r, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not r:
            raise socket.timeout()
        return os.read(self.proc.stdout.fileno(), n)

    def exit_status_ready(self):
        return self.proc.poll() is not None

    def close(self):
        if self.proc.poll() is None:  # sshd would leave it running; the test must not
            self.leaked = True
            self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc.stdout.close()


class LocalLink:
    label = "fakeboard"

    def __init__(self):
        self.channels = []
        self.sftp = SimpleNamespace(open=lambda p, mode: open(p, "rb"), listdir=os.listdir)

    def start(self, argv, combine_stderr=False):  # Link.start: the exact remote command line
        chan = LocalChannel()
        chan.set_combine_stderr(combine_stderr)
        chan.exec_command(remote_argv(argv))
        self.channels.append(chan)
        return chan

    def run(self, argv, timeout_s):
        import shlex
        p = subprocess.run(["sh", "-c", " ".join(shlex.quote(a) for a in argv)], capture_output=True,
                           text=True, timeout=timeout_s)
        return SimpleNamespace(returncode=p.returncode, stdout=p.stdout, stderr=p.stderr)


def test_files_through_sftp_under_a_root(tmp_path):
    (tmp_path / "sys/class/hwmon/hwmon1").mkdir(parents=True)
    (tmp_path / "sys/class/hwmon/hwmon1/name").write_text("ina226\n")
    src = SshSource(LocalLink(), str(tmp_path))
    assert src.listdir("/sys/class/hwmon") == ["hwmon1"]
    assert src.read_text("/sys/class/hwmon/hwmon1/name") == "ina226\n"


def test_tegrastats_on_a_board_is_stopped_by_pid(tmp_path):
    link = LocalLink()
    spec = spec_with([{"meter": "tegrastats", "interval_ms": 20,
                       "command": fake("tegrastats") + ["--model", "tx2", "--watts", "3.5"]}])
    device = SimpleNamespace(meter_source=lambda root: SshSource(link, root))
    clock = ArrivalClock()
    (m,) = open_meters(spec, device, clock=clock)
    trace = record_lines(m, clock, 8)
    assert len(trace.t) >= 8 and all(w == pytest.approx(3.5) for w in trace.watts)
    assert trace.bad_lines == 0  # the PID handshake line is not data
    chan = link.channels[-1]
    assert chan.exit_status_ready() and not getattr(chan, "leaked", False)
    assert "'sh' '-c'" in chan.command or "sh -c" in chan.command


def test_one_shot_programs_and_odd_arguments(tmp_path):
    src = SshSource(LocalLink())
    assert src.run(["printf", "%s|", "a b", "$(id)", "'q'"]) == "a b|$(id)|'q'|"
    with pytest.raises(OSError, match="exited with"):
        src.run(["sh", "-c", "exit 3"])
    clock = VirtualClock()
    (m,) = open_meters(spec_with([{"meter": "vcgencmd", "interval_ms": 50, "command": fake("vcgencmd")}]),
                       SimpleNamespace(meter_source=lambda root: SshSource(LocalLink(), root)), clock=clock)
    trace = record_polls(m, clock, 0.105)  # calls at 0, 50, 100 ms and at stop
    assert len(trace.watts) == 3 + 1 and trace.bad_lines == 0


def test_clock_offset_of_a_board_on_the_same_clock():
    assert abs(clock_offset_s(LocalLink(), tries=3)) < 0.5


def test_board_clock_parsing_busybox_and_failures():
    from types import SimpleNamespace

    import pytest

    from harness.power.base import MeterError
    from harness.power.ssh_source import board_clock_seconds

    done = lambda out, rc=0: SimpleNamespace(stdout=out, stderr="", returncode=rc)
    assert board_clock_seconds(done("1700000000.250000000\n")) == 1700000000.25
    assert board_clock_seconds(done("1700000000.%N\n")) == 1700000000.0  # BusyBox without %N
    with pytest.raises(MeterError, match="cannot read the board's clock"):
        board_clock_seconds(done("date: invalid format", rc=1))
