"""One SSH connection to a board: host-key checked connect, remote commands with
timeouts, content-addressed uploads. Knows nothing about runners or measurements.

Every remote command is an argv list; ``remote_argv`` quotes every element, because
paramiko's ``exec_command`` hands one string to the board's shell.
"""
from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import select
import shlex
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ..errors import DeviceError

log = logging.getLogger("harness.devices.ssh")


class BoardLost(DeviceError):
    """The connection dropped (or could not be re-made): the caller may reconnect and retry."""


class NoSpace(DeviceError):
    """The board's disk is full where the harness writes."""


def remote_argv(argv) -> str:
    """The one way a remote command line is built: every element shell-quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


@dataclass(frozen=True)
class Settings:
    """Where and how to connect, after the YAML and ~/.ssh/config are merged."""

    alias: str
    hostname: str
    port: int = 22
    user: str | None = None
    key_files: tuple = ()
    known_hosts: str = "~/.ssh/known_hosts"
    jump: "Settings | None" = None
    connect_timeout_s: float = 10.0
    # Names of environment variables, never the secrets themselves.
    password_env: str | None = None
    passphrase_env: str | None = None
    use_agent: bool = True

    @property
    def where(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.hostname}:{self.port}"


def resolve(options: dict, ssh_config: str | None = "~/.ssh/config") -> Settings:
    """Settings for a board's ``ssh:`` section; the YAML wins over ~/.ssh/config."""
    config = _load_config(options.get("ssh_config", ssh_config))
    return _resolve_host(options["host"], options, config)


def _load_config(path):
    if not path:
        return None
    path = Path(os.path.expanduser(path))
    return paramiko.SSHConfig.from_path(str(path)) if path.is_file() else None


def _resolve_host(alias: str, options: dict, config, depth: int = 0) -> Settings:
    user, host, port = None, alias, None
    # A jump host may be written user@host:port
    if "@" in host:
        user, host = host.rsplit("@", 1)
    if host.count(":") == 1:
        host, port = host.split(":")
        port = int(port)
    entry = config.lookup(host) if config is not None else {}
    hostname = entry.get("hostname", host)
    key_files = options.get("key_file") or entry.get("identityfile") or ()
    if isinstance(key_files, str):
        key_files = [key_files]
    jump = options.get("jump") or entry.get("proxyjump")
    if jump and jump.lower() != "none":
        if depth > 3 or "," in jump:
            raise DeviceError(f"{alias}: jump host chains longer than one hop are not supported ({jump!r})")
        # The jump host shares the known_hosts and keys, nothing else of the board's section.
        shared = {k: options[k] for k in ("key_file", "known_hosts", "connect_timeout_s",
                                          "passphrase_env") if k in options}
        jump_settings = _resolve_host(jump, shared, config, depth + 1)
    else:
        jump_settings = None
    return Settings(
        alias=alias, hostname=hostname,
        port=int(options.get("port") or port or entry.get("port", 22)),
        user=options.get("user") or user or entry.get("user"),
        key_files=tuple(os.path.expanduser(k) for k in key_files),
        known_hosts=os.path.expanduser(options.get("known_hosts") or "~/.ssh/known_hosts"),
        jump=jump_settings,
        connect_timeout_s=float(options.get("connect_timeout_s", 10.0)),
        password_env=options.get("password_env"), passphrase_env=options.get("passphrase_env"),
        use_agent=bool(options.get("use_agent", True)),
    )


def _fingerprint(key) -> str:
    import base64

    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _known_hosts_name(s: Settings) -> str:
    return s.hostname if s.port == 22 else f"[{s.hostname}]:{s.port}"


@dataclass
class Connection:
    """An authenticated client and, when the board is reached through one, the jump host's
    connection its socket runs over (closed after it)."""

    client: paramiko.SSHClient
    jump: "Connection | None" = None

    def transport(self) -> paramiko.Transport | None:
        return self.client.get_transport()

    def close(self) -> None:
        for thing in (self.client, self.jump):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a dead link must not hide the real error
                    pass


def open_client(s: Settings, label: str) -> Connection:
    """A connected, authenticated client; every failure is a DeviceError a user can act on."""
    sock = None
    jump = None
    if s.jump is not None:
        jump = open_client(s.jump, f"{label} (jump host {s.jump.alias})")
        try:
            sock = jump.transport().open_channel(
                "direct-tcpip", (s.hostname, s.port), ("127.0.0.1", 0), timeout=s.connect_timeout_s)
        except (paramiko.SSHException, OSError) as exc:
            jump.close()
            raise BoardLost(f"{label}: the jump host {s.jump.alias} cannot reach {s.where}: {exc}") from None
    try:
        client = _connect_target(s, label, sock)
    except BaseException:
        if jump is not None:
            jump.close()  # a failed target must not leave the jump connection open
        raise
    return Connection(client, jump)


class _UnknownHostKey(paramiko.SSHException):
    """The board offered a key known_hosts does not trust for it (carries the key)."""

    def __init__(self, hostname, key):
        self.hostname, self.key = hostname, key
        super().__init__(f"{hostname}: host key not found in known_hosts")


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    """RejectPolicy that keeps the offered key, so a refusal can say whether it was revoked."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHostKey(hostname, key)


@dataclass
class KnownHosts:
    """known_hosts as OpenSSH reads it: plain entries, ``@revoked`` keys (never trusted, for
    any host, even when also listed plainly) and ``@cert-authority`` lines (noted: host
    certificates are not verified by paramiko, so a board known only through one is refused
    with that reason)."""

    trusted: list = field(default_factory=list)          # (host pattern, key)
    revoked: list = field(default_factory=list)          # (line, key)
    cert_authorities: list = field(default_factory=list)  # (line, host patterns)

    def is_revoked(self, key) -> int | None:
        """The line that revokes `key`, or None."""
        blob = key.asbytes()
        return next((line for line, k in self.revoked if k.asbytes() == blob), None)


def read_known_hosts(path: str) -> KnownHosts:
    known = KnownHosts()
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            marker = None
            if line.startswith("@"):
                marker, _, line = line.partition(" ")
                if marker not in ("@revoked", "@cert-authority"):
                    raise DeviceError(f"{path}: line {number}: unknown known_hosts marker {marker!r} "
                                      f"(OpenSSH knows @revoked and @cert-authority)")
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line.strip(), lineno=number)
            except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError) as exc:
                if marker == "@revoked":  # fail closed: an unreadable revocation hides nothing
                    raise DeviceError(f"{path}: line {number}: unreadable @revoked entry: {exc}") from None
                log.warning("%s: line %d: skipping an unreadable known_hosts entry", path, number)
                continue
            if entry is None:  # a key type paramiko does not know
                continue
            if marker == "@revoked":
                known.revoked.append((number, entry.key))
            elif marker == "@cert-authority":
                known.cert_authorities.append((number, entry.hostnames))
            else:
                known.trusted += [(host, entry.key) for host in entry.hostnames]
    known.trusted = [(h, k) for h, k in known.trusted if known.is_revoked(k) is None]
    return known


def _secret_from_env(label: str, option: str, variable: str | None) -> str | None:
    if not variable:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise DeviceError(f"{label}: ssh.{option} names the environment variable {variable}, which is not "
                          f"set in this environment (export it before the run)")
    return value


def _connect_target(s, label: str, sock):
    """The authenticated client of the board itself (through `sock` when jumping)."""
    client = paramiko.SSHClient()
    _require_known_hosts_file(s, label)
    known = read_known_hosts(s.known_hosts)
    _trust_only(client, known)
    password = _secret_from_env(label, "password_env", s.password_env)
    passphrase = _secret_from_env(label, "passphrase_env", s.passphrase_env)
    try:
        client.connect(
            s.hostname, port=s.port, username=s.user, key_filename=list(s.key_files) or None,
            password=password, passphrase=passphrase, sock=sock,
            timeout=s.connect_timeout_s, banner_timeout=s.connect_timeout_s,
            auth_timeout=s.connect_timeout_s, channel_timeout=s.connect_timeout_s,
            allow_agent=s.use_agent, look_for_keys=not s.key_files,
        )
    except (paramiko.SSHException, OSError) as exc:  # socket.timeout is an OSError
        client.close()
        raise _connect_error(s, label, known, password, exc) from None
    return client


def _require_known_hosts_file(s, label: str) -> None:
    if not os.path.isfile(s.known_hosts):
        raise DeviceError(f"{label}: known_hosts file {s.known_hosts} does not exist; the host key of "
                          f"{s.where} cannot be verified (add it with: ssh-keyscan -p {s.port} {s.hostname} "
                          f">> {s.known_hosts}, then check its fingerprint)")


def _trust_only(client, known) -> None:
    """The client accepts the host keys known_hosts trusts and refuses any other."""
    for host, key in known.trusted:
        client.get_host_keys().add(host, key.get_name(), key)
    client.set_missing_host_key_policy(_RefuseUnknown())  # never AutoAdd/Warning


def _connect_error(s, label: str, known, password, exc) -> Exception:
    """What a failed connect raises: DeviceError for a host key or credentials to fix in the
    YAML or known_hosts, BoardLost for a board that cannot be reached."""
    if isinstance(exc, paramiko.BadHostKeyException):
        revoked = known.is_revoked(exc.key)
        if revoked is not None:
            return DeviceError(_revoked_message(label, s, exc.key, revoked))
        return DeviceError(
            f"{label}: the host key of {s.where} has CHANGED: the board offers {_fingerprint(exc.key)}, "
            f"but {s.known_hosts} has {_fingerprint(exc.expected_key)} for {_known_hosts_name(s)}. "
            f"Refusing to connect. If the board was re-imaged, verify the new key and replace the entry: "
            f"ssh-keygen -R '{_known_hosts_name(s)}' -f {s.known_hosts}")
    if isinstance(exc, _UnknownHostKey):
        return _unknown_host_key_error(s, label, known, exc)
    if isinstance(exc, paramiko.AuthenticationException):
        return DeviceError(_auth_message(label, s, password, exc))
    if isinstance(exc, paramiko.SSHException):
        if _is_key_error(exc):  # a key that cannot be used, no method left: not a lost board
            return DeviceError(_auth_message(label, s, password, exc))
        return BoardLost(f"{label}: SSH to {s.where} failed: {exc}")
    if isinstance(exc, socket.timeout):
        return BoardLost(f"{label}: cannot connect to {s.where} within connect_timeout_s="
                         f"{s.connect_timeout_s:g} s")
    return BoardLost(f"{label}: cannot connect to {s.where}: {exc}")  # refused, unreachable, NoValidConnectionsError


def _unknown_host_key_error(s, label: str, known, exc) -> DeviceError:
    revoked = known.is_revoked(exc.key)
    if revoked is not None:
        return DeviceError(_revoked_message(label, s, exc.key, revoked))
    if known.cert_authorities:
        lines = ", ".join(str(n) for n, _ in known.cert_authorities)
        return DeviceError(
            f"{label}: {_known_hosts_name(s)} ({_fingerprint(exc.key)}) is not listed in {s.known_hosts}; "
            f"its @cert-authority line(s) {lines} are not used: the harness (paramiko) does not verify "
            f"host certificates. List the board's own host key after checking its fingerprint: "
            f"ssh-keyscan -p {s.port} {s.hostname} >> {s.known_hosts}")
    return DeviceError(
        f"{label}: {_known_hosts_name(s)} is not in {s.known_hosts}; refusing an unknown host key "
        f"({_fingerprint(exc.key)}). Add it after checking its fingerprint: "
        f"ssh-keyscan -p {s.port} {s.hostname} >> {s.known_hosts}")


def _revoked_message(label, s, key, line) -> str:
    return (f"{label}: {s.where} offers the host key {_fingerprint(key)}, which {s.known_hosts} marks "
            f"@revoked (line {line}). Refusing to connect: the board may be impersonated, or it still "
            f"uses a retired key; give it a new host key and list that one")


def _is_key_error(exc) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("private key", "deserialize", "passphrase", "encrypted", "decrypt",
                                   "bad key", "invalid key", "not a valid", "no authentication methods"))


def _auth_message(label, s, password, exc) -> str:
    """Which credentials were tried, named by the YAML fields and variables that hold them."""
    tried = []
    if s.key_files:
        keys = ", ".join(s.key_files)
        if s.passphrase_env:
            keys += f" (passphrase from ${s.passphrase_env}, ssh.passphrase_env)"
        tried.append(f"key file(s) {keys}")
    elif s.use_agent:
        tried.append("the agent and the default keys")
    else:
        tried.append("the default keys")
    if s.password_env:
        tried.append(f"the password from ${s.password_env} (ssh.password_env)")
    hints = []
    if isinstance(exc, paramiko.PasswordRequiredException) or "encrypted" in str(exc).lower():
        hints.append("the key file is encrypted: set ssh.passphrase_env to the name of a variable holding "
                     "its passphrase" if not s.passphrase_env else
                     f"check the passphrase in ${s.passphrase_env}")
    elif s.passphrase_env and _is_key_error(exc):
        hints.append(f"the key could not be decrypted: check the passphrase in ${s.passphrase_env}")
    elif s.password_env:
        hints.append(f"check the password in ${s.password_env}")
    elif password is None:
        hints.append("for password login name a variable holding it in ssh.password_env")
    return (f"{label}: authentication as {s.user or '(default user)'} on {s.where} failed with "
            f"{' and '.join(tried)}: {exc or type(exc).__name__}" + (f"; {hints[0]}" if hints else ""))


@dataclass
class Completed:
    argv: list
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Link:
    """A live connection to one board, with the counters the deploy cache is judged by."""

    settings: Settings
    label: str
    # Deployed files (runner, probe, models): what the deploy cache saves. Run specs apart.
    bytes_uploaded: int = 0
    files_uploaded: int = 0
    spec_bytes_uploaded: int = 0
    _connection: Connection | None = field(default=None, repr=False)
    _sftp: paramiko.SFTPClient | None = field(default=None, repr=False)

    def open(self):
        self.close()
        self._connection = open_client(self.settings, self.label)
        self._connection.transport().set_keepalive(15)
        return self

    @property
    def alive(self) -> bool:
        t = self._connection.transport() if self._connection else None
        return bool(t and t.is_active())

    def close(self):
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # closing a dead link must not hide the real error
                pass
        if self._connection is not None:
            self._connection.close()
        self._sftp = self._connection = None

    # ------------------------------------------------------------- commands

    def run(self, argv, timeout_s: float, what: str | None = None) -> Completed:
        """Run argv on the board; BoardLost if the link drops, DeviceError on timeout."""
        what = what or posixpath.basename(str(argv[0]))
        chan = self.start(argv)
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                    continue
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    continue
                if chan.exit_status_ready():
                    break
                if time.monotonic() > deadline:
                    raise DeviceError(f"{self.label}: {what} did not finish within {timeout_s:g} s")
                if not self.alive:
                    break
                select.select([chan], [], [], 0.2)
            # Drain what arrived with the exit status.
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            code = chan.exit_status if chan.exit_status_ready() else -1
        except (OSError, EOFError, paramiko.SSHException) as exc:  # socket errors are OSError
            raise BoardLost(f"{self.label}: the connection dropped: {exc or type(exc).__name__}") from None
        finally:
            chan.close()
        if code == -1 and not self.alive:
            raise BoardLost(f"{self.label}: the connection to {self.settings.where} dropped while "
                            f"{what} ran"
                            + (f"; last stderr: {err.decode(errors='replace')[-500:]}" if err else ""))
        return Completed(list(argv), code, out.decode(errors="replace"), err.decode(errors="replace"))

    def start(self, argv, combine_stderr: bool = False) -> paramiko.Channel:
        """Start argv on the board and return its channel, for a process the caller reads
        and closes (the board lock, a streaming meter); ``combine_stderr``: its stderr
        arrives on the same stream as its stdout."""
        if not self.alive:
            raise BoardLost(f"{self.label}: not connected")
        try:
            chan = self._connection.transport().open_session(timeout=self.settings.connect_timeout_s)
            if combine_stderr:
                chan.set_combine_stderr(True)
            chan.exec_command(remote_argv(argv))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise BoardLost(f"{self.label}: cannot start a command: {exc or type(exc).__name__}") from None
        return chan

    # ------------------------------------------------------------- files

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if not self.alive:
            raise BoardLost(f"{self.label}: not connected")
        if self._sftp is None:
            try:
                self._sftp = self._connection.client.open_sftp()
                self._sftp.get_channel().settimeout(max(self.settings.connect_timeout_s, 30.0))
            except (paramiko.SSHException, EOFError, OSError, AttributeError) as exc:
                raise BoardLost(f"{self.label}: cannot open SFTP: {exc}") from None
        return self._sftp

    def home(self) -> str:
        try:
            return self.sftp.normalize(".")
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._lost_or(exc, "cannot resolve the login directory") from None

    def makedirs(self, path: str):
        parts, current = path.strip("/").split("/"), "/" if path.startswith("/") else ""
        for part in parts:
            current = posixpath.join(current, part) if current else part
            if not self.exists(current):
                try:
                    self.sftp.mkdir(current)
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    raise self._lost_or(exc, f"cannot create {current}") from None

    def exists(self, path: str, size: int | None = None) -> bool:
        try:
            st = self.sftp.stat(path)
        except FileNotFoundError:
            return False
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._lost_or(exc, f"cannot stat {path}") from None
        return size is None or st.st_size == size

    def _lost_or(self, exc, doing: str) -> DeviceError:
        """SFTP reports a dead socket and a refused request both as OSError: tell them apart."""
        if isinstance(exc, (EOFError, paramiko.SSHException)) or not self.alive:
            return BoardLost(f"{self.label}: the connection dropped ({doing}): {exc or type(exc).__name__}")
        return DeviceError(f"{self.label}: {doing} on the board: {exc}")

    def put_bytes(self, data: bytes, remote: str):
        import io

        self._put(lambda tmp: self.sftp.putfo(io.BytesIO(data), tmp, file_size=len(data)), remote, len(data))
        self.spec_bytes_uploaded += len(data)

    def put_file(self, local: Path, remote: str):
        size = Path(local).stat().st_size
        self._put(lambda tmp: self.sftp.put(str(local), tmp), remote, size)
        self.bytes_uploaded += size
        self.files_uploaded += 1

    def _put(self, send, remote: str, size: int):
        """Upload under a temporary name, then rename: a file present under its final
        (content-addressed) name is always complete."""
        tmp = f"{remote}.part-{uuid.uuid4().hex[:8]}"
        try:
            send(tmp)
            self.sftp.posix_rename(tmp, remote)
        except (EOFError, paramiko.SSHException) as exc:
            raise BoardLost(f"{self.label}: the connection dropped while uploading {remote}: {exc}") from None
        except OSError as exc:  # SFTP status errors are IOError; so is a dead socket
            if not self.alive:
                raise BoardLost(f"{self.label}: the connection dropped while uploading {remote}: {exc}") from None
            self._remove_quietly(tmp)
            free = self.free_bytes(posixpath.dirname(remote))
            if free is not None and free < size + 4096:
                raise NoSpace(f"{self.label}: no space left on the board at {posixpath.dirname(remote)}: "
                              f"{size} bytes to upload, {free} bytes free ({exc})") from None
            raise DeviceError(f"{self.label}: uploading {remote} failed: {exc}") from None

    def _remove_quietly(self, path):
        try:
            self.sftp.remove(path)
        except (OSError, paramiko.SSHException, EOFError):
            pass

    def free_bytes(self, directory: str) -> int | None:
        """Free bytes where `directory` lives (POSIX df), or None if that cannot be told."""
        try:
            done = self.run(["df", "-Pk", directory], timeout_s=30)
            return int(done.stdout.strip().splitlines()[-1].split()[3]) * 1024
        except (DeviceError, ValueError, IndexError):
            return None
