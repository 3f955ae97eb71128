"""Real OpenSSH test boards on this machine: one network namespace per board.

Each board is an `sshd -D` started inside its own network namespace, reached over a
veth pair whose two addresses (10.200.N.1 on the host end, 10.200.N.2 in the board)
exist only on that pair; each has its own host key, a dedicated user with an authorized
key, and its own cgroup (v1) with an optional CPU quota and memory limit, so a "slow
board" really is slower. Everything is torn down at the end, also after a failure.

A board may also run in a root filesystem of another CPU (`rootfs=`, tests/arm64board.py):
then its own sshd runs chrooted in a per-board overlay of that tree, in its own mount
namespace, and reaches the host's user, key and config through a bind mount of the board
directory.

Needs root (namespaces, cgroups, users). `skip_reason()` says why it cannot run here.
"""
from __future__ import annotations

import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
CGROUP_ROOT = Path("/sys/fs/cgroup")
BOARD_PYTHONS = Path(os.environ.get("EDGE_HARNESS_BOARD_PYTHONS", "/opt/edge-harness/boards"))
PORT = 2222
LOCK = Path("/run/edge-harness-boards.lock")
USER_MARK = "edge-harness test board"  # GECOS of every board user: what cleanup_stale() removes
# A rootfs board's sshd: in its own mount namespace (gone with its last process), the shared
# root filesystem read-only under the board's own layer, /proc, /dev and the netns's /sys,
# and the board directory (host key, sshd_config, home) at the same path inside.
CHROOT = """set -e
lower=$1 dir=$2
shift 2
root=$dir/root
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/overlaywork" "$root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /sys "$root/sys"
mkdir -p "$root$dir"
mount --bind "$dir" "$root$dir"
exec chroot "$root" "$@"
"""


def skip_reason() -> str | None:
    """Why real test boards cannot be started here, or None."""
    if os.geteuid() != 0:
        return ("SSH test boards need root (network namespaces, cgroups, users); run them through "
                ".ci/run or as root")
    for tool, path in (("sshd (openssh-server)", SSHD), ("ip (iproute2)", shutil.which("ip")),
                       ("ssh-keygen", shutil.which("ssh-keygen")), ("useradd", shutil.which("useradd"))):
        if not path or not os.path.exists(path):
            return f"SSH test boards need {tool}; run .ci/install.d/ssh.sh"
    for controller in ("cpu", "memory"):
        if not (CGROUP_ROOT / controller / "cgroup.procs").exists():
            return f"SSH test boards need the cgroup v1 {controller} controller at {CGROUP_ROOT / controller}"
    if not (BOARD_PYTHONS / "current" / "bin" / "python").exists():
        return f"board Python environments missing under {BOARD_PYTHONS}; run .ci/install.d/ssh.sh"
    return None


def _sh(*argv, check=True, **kw):
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True, text=True, timeout=60, **kw)


@dataclass
class Board:
    name: str
    n: int
    netns: str
    veth: str
    address: str
    user: str
    home: Path
    dir: Path
    python: str
    cgroups: list = field(default_factory=list)
    sshd: subprocess.Popen | None = None
    host_key_line: str = ""
    tmpfs: Path | None = None
    overlays: dict = field(default_factory=dict)  # board dir -> layer dir shown on top of it
    password_auth: bool = False
    rootfs: Path | None = None  # another CPU's root filesystem, shown read-only below an overlay
    env: dict = field(default_factory=dict)  # for sshd and every session (sshd_config SetEnv)

    @property
    def port(self) -> int:
        return PORT

    def pids(self) -> list[int]:
        procs = self.cgroups[0] / "cgroup.procs" if self.cgroups else None
        if procs is None or not procs.exists():
            return []
        return [int(p) for p in procs.read_text().split()]


class Lab:
    """A set of test boards plus the client side: a key pair and a known_hosts file."""

    def __init__(self):
        self.token = secrets.token_hex(2)
        self.root = Path(tempfile.mkdtemp(prefix=f"edge-harness-lab-{self.token}-"))
        self.root.chmod(0o755)
        self.boards: dict[str, Board] = {}
        self.client_key = self.root / "client_key"
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "harness-test-client", "-f", self.client_key)
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text("")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir

    # ------------------------------------------------------------- boards

    def _free_subnet(self) -> int:
        """A 10.200.N.0/24 that no interface uses yet (another test session may run)."""
        used = _sh("ip", "-o", "-4", "addr").stdout
        for n in range(1, 250):
            if f" 10.200.{n}." not in used:
                return n
        raise RuntimeError("no free 10.200.N.0/24 subnet left")

    def add_board(self, name: str, python_env: str = "current", cpu_quota_pct: int | None = None,
                  memory_mb: int | None = None, disk_kb: int | None = None, cpu: int | None = None,
                  files: dict | None = None, password: str | None = None, rootfs: Path | None = None,
                  python: str | None = None, env: dict | None = None,
                  start_timeout_s: float = 15.0) -> Board:
        """files: {"/etc": {"nv_tegra_release": text}, ...}: extra files only this board sees
        (a read-only overlay in the board's own mount namespace), e.g. a Jetson's.
        rootfs: run the board's own sshd and everything it starts in that root filesystem
        (python: the interpreter's path inside it); env: variables for sshd and its sessions."""
        LOCK.touch()
        with open(LOCK) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            n = self._free_subnet()
            board = self._make_board(name, n, python_env)
            board.rootfs, board.env = rootfs, dict(env or {})
            if python:
                board.python = python
            self.boards[name] = board  # registered before anything can fail: teardown finds it
            self._network(board)
        self._user(board, password)
        self._cgroups(board, cpu_quota_pct, memory_mb)
        if disk_kb:
            board.tmpfs = board.dir / "smalldisk"
            board.tmpfs.mkdir()
            uid = pwd.getpwnam(board.user)
            _sh("mount", "-t", "tmpfs", "-o", f"size={disk_kb}k,uid={uid.pw_uid},gid={uid.pw_gid},mode=0755",
                "tmpfs", board.tmpfs)
        for target, entries in (files or {}).items():
            layer = board.dir / "layers" / target.strip("/").replace("/", "_")
            layer.mkdir(parents=True)
            for name, text in entries.items():
                (layer / name).write_text(text)
                (layer / name).chmod(0o755)
            board.overlays[target] = layer
        if rootfs is not None:
            self._rootfs_layer(board)
        self._sshd_config(board)
        self.start_sshd(board, cpu=cpu, timeout_s=start_timeout_s)
        return board

    def _make_board(self, name, n, python_env) -> Board:
        d = self.root / name
        d.mkdir()
        d.chmod(0o755)
        return Board(name=name, n=n, netns=f"edge-harness-{self.token}-{n}", veth=f"hb{self.token}{n}",
                     address=f"10.200.{n}.2", user=f"hb{self.token}{n}", home=d / "home", dir=d,
                     python=str(BOARD_PYTHONS / python_env / "bin" / "python"))

    def _network(self, b: Board):
        peer = b.veth + "b"
        _sh("ip", "netns", "add", b.netns)
        _sh("ip", "link", "add", b.veth, "type", "veth", "peer", "name", peer)
        _sh("ip", "link", "set", peer, "netns", b.netns)
        _sh("ip", "addr", "add", f"10.200.{b.n}.1/24", "dev", b.veth)
        _sh("ip", "link", "set", b.veth, "up")
        _sh("ip", "netns", "exec", b.netns, "ip", "addr", "add", f"{b.address}/24", "dev", peer)
        _sh("ip", "netns", "exec", b.netns, "ip", "link", "set", peer, "up")
        _sh("ip", "netns", "exec", b.netns, "ip", "link", "set", "lo", "up")

    def _user(self, b: Board, password=None):
        _sh("userdel", "-r", b.user, check=False)
        _sh("useradd", "-M", "-d", b.home, "-s", "/bin/sh", "-c", USER_MARK, b.user)
        _sh("usermod", "-p", "*", b.user)  # no password, but not "locked" for sshd
        if password is not None:
            subprocess.run(["chpasswd"], input=f"{b.user}:{password}\n", text=True, check=True, timeout=30)
            b.password_auth = True
        b.home.mkdir()
        ssh_dir = b.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        _sh("chown", "-R", f"{b.user}:{b.user}", b.home)

    def _rootfs_layer(self, b: Board):
        """The board's writable layer over the shared root filesystem: its user (the host
        user's ids, so the bind-mounted home belongs to it) and sshd's privilege-separation
        directory."""
        upper = b.dir / "upper"
        (upper / "etc").mkdir(parents=True)
        (upper / "run" / "sshd").mkdir(parents=True, mode=0o755)
        (b.dir / "root").mkdir()
        (b.dir / "overlaywork").mkdir()
        entry = pwd.getpwnam(b.user)
        for name, line in (("passwd", f"{b.user}:x:{entry.pw_uid}:{entry.pw_gid}:{USER_MARK}:{b.home}:/bin/sh"),
                           ("group", f"{b.user}:x:{entry.pw_gid}:"),
                           ("shadow", f"{b.user}:*:19000:0:99999:7:::")):
            text = (b.rootfs / "etc" / name).read_text()
            (upper / "etc" / name).write_text(text.rstrip("\n") + "\n" + line + "\n")
        (upper / "etc" / "shadow").chmod(0o640)

    def _cgroups(self, b: Board, cpu_quota_pct, memory_mb):
        for controller in ("cpu", "memory"):
            path = CGROUP_ROOT / controller / "edge-harness" / f"{self.token}-{b.name}"
            path.mkdir(parents=True, exist_ok=True)
            b.cgroups.append(path)
        # Shares are weighed level by level: the boards' common parent competes with every
        # other task on the host, so a large share there (and on a throttled board's own
        # group) makes a board's speed its quota's, not the host load's (a starved board
        # never reaches its quota, and its cgroup is never throttled).
        (b.cgroups[0].parent / "cpu.shares").write_text("262144")
        if cpu_quota_pct:
            (b.cgroups[0] / "cpu.shares").write_text("262144")
            (b.cgroups[0] / "cpu.cfs_period_us").write_text("100000")
            (b.cgroups[0] / "cpu.cfs_quota_us").write_text(str(cpu_quota_pct * 1000))
        if memory_mb:
            (b.cgroups[1] / "memory.limit_in_bytes").write_text(str(memory_mb << 20))

    def _sshd_config(self, b: Board):
        key = b.dir / "host_key"
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"board-{b.name}", "-f", key)
        (b.dir / "sshd_config").write_text(f"""\
Port {PORT}
ListenAddress {b.address}
HostKey {key}
PidFile {b.dir / 'sshd.pid'}
AuthorizedKeysFile {b.home / '.ssh' / 'authorized_keys'}
AllowUsers {b.user}
PasswordAuthentication {'yes' if b.password_auth else 'no'}
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
PermitRootLogin no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
MaxStartups 50
LogLevel INFO
""" + "".join(f"SetEnv {k}={v}\n" for k, v in b.env.items()))
        pub = Path(f"{key}.pub").read_text().split()
        b.host_key_line = f"[{b.address}]:{PORT} {pub[0]} {pub[1]}"
        with open(self.known_hosts, "a") as f:
            f.write(b.host_key_line + "\n")

    def start_sshd(self, b: Board, cpu: int | None = None, timeout_s: float = 15.0):
        cgroup_procs = [p / "cgroup.procs" for p in b.cgroups]

        def enter_cgroups():  # in the child, before exec: sshd and all it starts live there
            for procs in cgroup_procs:
                procs.write_text(str(os.getpid()))
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        argv = ["ip", "netns", "exec", b.netns, SSHD, "-D", "-e", "-f", str(b.dir / "sshd_config")]
        if b.rootfs is not None:
            argv = argv[:4] + ["unshare", "-m", "--propagation", "private", "sh", "-c", CHROOT,
                               "sh", str(b.rootfs), str(b.dir)] + argv[4:]
        elif b.overlays:
            mounts = " && ".join(f'mount -t overlay overlay -o "lowerdir=${{{i * 2 + 1}}}:${{{i * 2 + 2}}}" '
                                 f'"${{{i * 2 + 2}}}"' for i in range(len(b.overlays)))
            layers = [str(x) for target, layer in b.overlays.items() for x in (layer, target)]
            shift = len(layers)
            argv = (["unshare", "-m", "--propagation", "private", "sh", "-c",
                     f'{mounts} && shift {shift} && exec "$@"', "sh"] + layers + argv)
        log = open(b.dir / "sshd.log", "ab")
        b.sshd = subprocess.Popen(
            argv, env={**os.environ, **b.env},
            stdout=log, stderr=log, preexec_fn=enter_cgroups, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if b.sshd.poll() is not None:
                raise RuntimeError(f"sshd of {b.name} exited: {(b.dir / 'sshd.log').read_text()[-2000:]}")
            try:
                socket.create_connection((b.address, PORT), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd of {b.name} did not listen on {b.address}:{PORT} within {timeout_s:g} s")

    def kill_board(self, b: Board):
        """The board drops: sshd, every session and the runner die at once (SIGKILL)."""
        for _ in range(20):
            pids = b.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        if b.sshd is not None:
            try:
                b.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def drop_link(self, b: Board):
        """The link drops but the board lives: sshd and its sessions die, the runner (an
        orphan now) keeps running, as after a network outage."""
        for pid in b.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().startswith("sshd"):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        if b.sshd is not None:
            b.sshd.wait(timeout=10)

    # ------------------------------------------------------------- the client side

    def yaml_text(self, b: Board, **ssh_overrides) -> str:
        import yaml

        ssh = {"host": b.address, "port": PORT, "user": b.user, "key_file": str(self.client_key),
               "known_hosts": str(self.known_hosts), "ssh_config": "", "use_agent": False,
               "connect_timeout_s": 5.0, "retries": 2, "retry_wait_s": 0.5}
        if b.tmpfs is not None:
            ssh["workdir"] = str(b.tmpfs / "work")
        ssh.update(ssh_overrides)
        data = {"kind": "ssh", "description": f"test board {b.name} (sshd in netns {b.netns})",
                "python": b.python, "timeout_s": 120.0, "emulated": True,
                "capabilities": {"runtimes": self.runtimes(b), "providers": ["CPUExecutionProvider"]},
                "settings": {"warmup": 2, "min_duration_s": 0.05, "min_iterations": 5},
                # the boards share the test machine with the tests themselves (and CI's other
                # jobs): they test the deploy and run path, so their numbers are never judged
                # invalid for a busy host (tests/test_validity.py tests the verdict itself)
                "validity": {"max_contention_cores": 64.0, "max_round_spread": 1000.0,
                             "max_freq_change": 100.0},
                "ssh": {k: v for k, v in ssh.items() if v is not None}}
        return yaml.safe_dump(data, sort_keys=False)

    def runtimes(self, b: Board) -> list:
        return ["tflite_runtime"] if "old-image" in b.python else ["onnxruntime", "litert"]

    def spec(self, b: Board, name: str | None = None, top: dict | None = None, **ssh_overrides):
        """A DeviceSpec loaded from a real YAML file, through the inventory's validation;
        `top` adds top-level fields (e.g. power)."""
        import yaml

        from harness.inventory import load_device_file

        path = self.root / "devices" / f"{name or b.name}.yaml"
        path.parent.mkdir(exist_ok=True)
        data = yaml.safe_load(self.yaml_text(b, **ssh_overrides))
        data.update(top or {})
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return load_device_file(path)

    def refusal(self, b: Board, name: str | None = None, **ssh_overrides) -> str:
        """The DeviceError message connecting to the board with these ssh options is refused
        with (the test fails if it connects)."""
        import pytest

        from harness.devices.ssh import SshDevice
        from harness.errors import DeviceError

        with pytest.raises(DeviceError) as err:
            SshDevice(self.spec(b, name=name, **ssh_overrides)).connect()
        return str(err.value)

    # ------------------------------------------------------------- teardown

    def close(self):
        errors = []
        for b in self.boards.values():
            for step in (lambda: self.kill_board(b), lambda: self._remove_cgroups(b),
                         lambda: b.tmpfs and _sh("umount", "-l", b.tmpfs, check=False),
                         lambda: _sh("ip", "link", "del", b.veth, check=False),
                         lambda: _sh("ip", "netns", "del", b.netns, check=False),
                         lambda: _sh("userdel", b.user, check=False)):
                try:
                    step()
                except Exception as exc:  # keep tearing down the rest
                    errors.append(f"{b.name}: {exc}")
        shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise RuntimeError("test-board teardown: " + "; ".join(errors))

    def _remove_cgroups(self, b: Board):
        for path in b.cgroups:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def cleanup_stale() -> list[str]:
    """Remove what a killed test run left behind: every board whose namespace has no
    process left (its sshd is gone) loses its namespace (and so its veth pair), user,
    cgroups, tmpfs and lab directory.

        python tests/sshboards.py --cleanup
    """
    removed, stale = [], set()
    for line in _sh("ip", "netns", "list", check=False).stdout.splitlines():
        ns = line.split()[0]
        parts = ns.split("-")  # edge-harness-<token>-<n>
        if ns.startswith("edge-harness-") and len(parts) == 4 and \
                not _sh("ip", "netns", "pids", ns, check=False).stdout.strip():
            _sh("ip", "netns", "del", ns, check=False)
            stale.add(parts[2])
            removed.append(f"netns {ns}")
    for line in Path("/proc/mounts").read_text().splitlines():
        target = line.split()[1]
        if any(f"/edge-harness-lab-{t}-" in target for t in stale):
            _sh("umount", "-l", target, check=False)
            removed.append(f"mount {target}")
    for entry in pwd.getpwall():
        if entry.pw_gecos == USER_MARK and entry.pw_name[2:6] in stale:
            _sh("userdel", entry.pw_name, check=False)
            removed.append(f"user {entry.pw_name}")
    for controller in ("cpu", "memory"):
        parent = CGROUP_ROOT / controller / "edge-harness"
        for group in (parent.iterdir() if parent.is_dir() else []):
            if group.is_dir() and group.name[:4] in stale and not (group / "cgroup.procs").read_text().strip():
                group.rmdir()
                removed.append(f"cgroup {group}")
    for token in stale:
        for root in Path(tempfile.gettempdir()).glob(f"edge-harness-lab-{token}-*"):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(f"directory {root}")
    return removed


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--cleanup"]:
        sys.exit("usage: python tests/sshboards.py --cleanup")
    import arm64board

    for item in cleanup_stale() + arm64board.remove_stale_entries():
        print("removed", item)
