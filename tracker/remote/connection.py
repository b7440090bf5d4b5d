"""SSH connections with host-key verification, reused within a process.

Host keys are checked against known_hosts with paramiko's ``RejectPolicy``: an
unknown or changed key is refused with a message saying how to trust it
(``tracker remote trust NAME``); nothing is ever auto-accepted. Only keys and
the SSH agent are used; no password is read or stored.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import shlex
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.errors import HostKeyError, RemoteError
from tracker.remote.hosts import RemoteHost

# paramiko's transport thread logs a failed handshake with its traceback; with no handler configured,
# Python's last-resort handler printed it to the user's terminal. The error reaches the user as one
# line through RemoteError instead (``--debug`` logging still sees the records).
logging.getLogger("paramiko").addHandler(logging.NullHandler())

CONNECT_TIMEOUT = 15.0
_pool: dict[str, Connection] = {}
_pool_lock = threading.Lock()


@dataclass(frozen=True)
class Result:
    """What a remote command returned."""

    code: int
    out: str
    err: str


def fingerprint(key: Any) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _trust_hint(host: RemoteHost) -> str:
    return f"check the fingerprint with the host's owner, then run 'tracker remote trust {host.name}'"


class Connection:
    """One authenticated SSH connection to a remote."""

    def __init__(self, host: RemoteHost, client: Any, jump: Connection | None = None) -> None:
        self.host = host
        self.client = client
        self._jump = jump
        self._home: str | None = None

    @classmethod
    def open(cls, host: RemoteHost, timeout: float = CONNECT_TIMEOUT) -> Connection:
        """Connect and authenticate, verifying the host key."""
        import paramiko

        jump = None
        sock = None
        if host.proxy_jump:
            jump = cls.open(_jump_host(host), timeout)
            try:
                sock = jump.client.get_transport().open_channel(
                    "direct-tcpip", (host.hostname, host.port), ("127.0.0.1", 0), timeout=timeout)
            except (paramiko.SSHException, OSError) as exc:
                raise RemoteError(f"cannot reach {host.name} ({host.address}) "
                                  f"through {host.proxy_jump}: {exc}") from exc
        client = paramiko.SSHClient()
        for path in host.known_hosts:
            if Path(path).is_file():
                try:
                    client.load_host_keys(path)
                except (OSError, paramiko.SSHException) as exc:
                    raise RemoteError(f"cannot read known_hosts file {path}: {exc}") from exc
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                host.hostname, port=host.port, username=host.user,
                key_filename=list(host.key_files) or None, look_for_keys=not host.key_files,
                allow_agent=True, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, sock=sock,
                passphrase=None,
            )
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"the host key of {host.name} ({host.address}) has CHANGED to {fingerprint(exc.key)}; "
                "this can be an attack, so the connection was refused",
                hint="if the host was reinstalled, confirm the new fingerprint and run "
                     f"'tracker remote trust {host.name} --replace'") from exc
        except paramiko.AuthenticationException as exc:
            raise RemoteError(f"authentication as {host.user}@{host.name} ({host.address}) failed",
                              hint="add your key to the host's authorized_keys, load it into ssh-agent, "
                                   "or set it with 'tracker remote add ... --key PATH'") from exc
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise HostKeyError(f"the host key of {host.name} ({host.address}) is not known",
                                   hint=_trust_hint(host)) from exc
            raise RemoteError(f"SSH to {host.name} ({host.address}) failed: {exc}") from exc
        except (TimeoutError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise RemoteError(f"cannot connect to {host.name} ({host.address}): {reason}",
                              hint="check that the host is up and runs sshd, "
                                   f"then 'tracker remote check {host.name}'") from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return cls(host, client, jump)

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return bool(transport and transport.is_active())

    def _transport(self) -> Any:
        """The live SSH transport; a connection the host closed (or tracker dropped) is a clear RemoteError."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise RemoteError(f"lost the connection to {self.host.name} ({self.host.address})",
                              hint=f"check that the host is up, then 'tracker remote check {self.host.name}'")
        return transport

    def run(self, command: str | list[str], *, check: bool = True, timeout: float | None = 600,
            stdin: bytes | None = None) -> Result:
        """Run a command (a list is quoted with shlex); RemoteError when ``check`` and it fails."""
        import paramiko

        text = shlex.join(command) if isinstance(command, list) else command
        try:
            chan = self._transport().open_session(timeout=CONNECT_TIMEOUT)
            chan.settimeout(timeout)
            chan.exec_command(text)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            # read stderr alongside stdout: an unread stream fills the SSH window and stalls the command
            err_bytes = bytearray()
            reader = threading.Thread(target=lambda: err_bytes.extend(chan.makefile_stderr("rb").read()),
                                      daemon=True)
            reader.start()
            out = chan.makefile("rb").read().decode(errors="replace")
            reader.join(timeout)
            err = err_bytes.decode(errors="replace")
            code = chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, OSError, AttributeError, EOFError) as exc:
            raise RemoteError(f"lost the connection to {self.host.name} ({self.host.address}): "
                              f"{exc or type(exc).__name__}") from exc
        if check and code != 0:
            detail = (err.strip() or out.strip()).splitlines()
            raise RemoteError(f"command failed on {self.host.name} (exit {code}): "
                              f"{detail[-1] if detail else text[:80]}")
        return Result(code, out, err)

    def sftp(self) -> Any:
        """A new SFTP session (close it when done)."""
        import paramiko

        transport = self._transport()
        try:
            return transport.open_sftp_client()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(f"SFTP to {self.host.name} failed: {exc or type(exc).__name__}") from exc

    @property
    def home(self) -> str:
        if self._home is None:
            self._home = self.run("cd ~ && pwd").out.strip()
        return self._home

    def expand(self, path: str) -> str:
        """``path`` with a leading ``~`` replaced by the remote home directory."""
        if path == "~" or path.startswith("~/"):
            return self.home + path[1:]
        return path

    def close(self) -> None:
        self.client.close()
        if self._jump is not None:
            self._jump.close()


@contextlib.contextmanager
def translated(host: RemoteHost, what: str) -> Iterator[None]:
    """Turn paramiko and socket errors raised inside the block into RemoteError."""
    import paramiko

    try:
        yield
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise RemoteError(f"{what} on {host.name} ({host.address}) failed: {exc or type(exc).__name__}") from exc


def _jump_host(host: RemoteHost) -> RemoteHost:
    """The first hop of a ProxyJump spec ``[user@]host[:port]``."""
    spec = (host.proxy_jump or "").split(",")[0]
    user, _, rest = spec.rpartition("@")
    hostname, _, port = rest.partition(":")
    return RemoteHost(name=f"{host.name}-jump", hostname=hostname, port=int(port or 22),
                      user=user or host.user, key_files=host.key_files, known_hosts=host.known_hosts)


def connect(host: RemoteHost) -> Connection:
    """A live connection to ``host``, reused across calls in this process."""
    with _pool_lock:
        conn = _pool.get(host.name)
        if conn is not None and conn.alive:
            return conn
        conn = Connection.open(host)
        _pool[host.name] = conn
        return conn


def drop(host: RemoteHost) -> None:
    """Forget (and close) the pooled connection to ``host``."""
    with _pool_lock:
        conn = _pool.pop(host.name, None)
    if conn is not None:
        conn.close()


def scan_key(host: RemoteHost, timeout: float = CONNECT_TIMEOUT) -> Any:
    """The host key the server offers (nothing is trusted by reading it)."""
    import paramiko

    try:
        sock = socket.create_connection((host.hostname, host.port), timeout=timeout)
        transport = paramiko.Transport(sock)
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        transport.close()
        return key
    except (OSError, paramiko.SSHException) as exc:
        raise RemoteError(f"cannot read the host key of {host.name} ({host.address}): {exc or type(exc).__name__}",
                          hint=f"is an SSH server listening at {host.address}? check the remote's host and port "
                               f"('tracker remote add {host.name} --force ...')") from exc


def known_key(host: RemoteHost) -> Any | None:
    """The key known_hosts has for ``host``, if any."""
    import paramiko

    for path in host.known_hosts:
        if Path(path).is_file():
            keys = paramiko.HostKeys(path)
            entry = keys.lookup(host.known_hosts_key)
            if entry:
                return next(iter(entry.values()))
    return None


def trust(host: RemoteHost, key: Any, *, replace: bool = False) -> Path:
    """Record ``key`` as the host key of ``host`` in the first known_hosts file; return it."""
    import paramiko

    path = Path(host.known_hosts[0] if host.known_hosts else "~/.ssh/known_hosts").expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = paramiko.HostKeys(str(path)) if path.is_file() else paramiko.HostKeys()
    existing = keys.lookup(host.known_hosts_key)
    if existing and not replace and any(k != key for k in existing.values()):
        raise HostKeyError(f"{path} already has a different key for {host.name}",
                           hint="pass --replace only if you know the host was reinstalled")
    if existing and replace:
        del keys[host.known_hosts_key]
    keys.add(host.known_hosts_key, key.get_name(), key)
    keys.save(str(path))
    path.chmod(0o600)
    return path
