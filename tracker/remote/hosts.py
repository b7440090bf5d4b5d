"""Named remotes: tracker.yaml ``remotes:`` entries, completed from OpenSSH config files.

A remote may name its host directly (``host: 10.0.0.5``) or be a ``Host`` alias
of ``~/.ssh/config`` (or of the file in ``ssh_config:`` / ``TRACKER_SSH_CONFIG``):
HostName, User, Port, IdentityFile and ProxyJump are honoured.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from tracker.config import RemoteConfig
from tracker.errors import NotFoundError
from tracker.project import Project


@dataclass(frozen=True)
class RemoteHost:
    """Everything needed to reach and use one remote."""

    name: str
    hostname: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    key_files: tuple[str, ...] = ()
    proxy_jump: str | None = None
    ssh_config: str | None = None
    known_hosts: tuple[str, ...] = ()
    config: RemoteConfig = field(default_factory=RemoteConfig)

    @property
    def address(self) -> str:
        """``host:port`` as shown in messages."""
        return f"{self.hostname}:{self.port}"

    @property
    def known_hosts_key(self) -> str:
        """The name OpenSSH uses for this host in known_hosts."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def _ssh_config_files(config: RemoteConfig) -> list[Path]:
    files = [config.ssh_config, os.environ.get("TRACKER_SSH_CONFIG"), "~/.ssh/config"]
    return [Path(f).expanduser() for f in files if f and Path(f).expanduser().is_file()]


def _lookup(alias: str, files: list[Path]) -> tuple[dict[str, object], str | None]:
    """The first config file that has an entry for ``alias``: (options, that file)."""
    import paramiko

    for path in files:
        cfg = paramiko.SSHConfig.from_path(str(path))
        if alias in cfg.get_hostnames() or any(h != "*" and _matches(alias, h) for h in cfg.get_hostnames()):
            return dict(cfg.lookup(alias)), str(path)
    return {}, None


def _matches(alias: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatch(alias, pattern)


def known_hosts_files(config: RemoteConfig, ssh_options: dict[str, object] | None = None) -> tuple[str, ...]:
    """known_hosts files to verify against: configured ones, then the user's."""
    files = [config.known_hosts, os.environ.get("TRACKER_KNOWN_HOSTS")]
    user_files = (ssh_options or {}).get("userknownhostsfile")
    if isinstance(user_files, str):
        files += user_files.split()
    files.append("~/.ssh/known_hosts")
    out = []
    for f in files:
        if f and f != "/dev/null":
            path = str(Path(f).expanduser())
            if path not in out:
                out.append(path)
    return tuple(out)


def resolve(project: Project, name: str) -> RemoteHost:
    """The remote called ``name``: from tracker.yaml (``remotes:``, or ``targets:`` of type ssh), else a
    Host alias in an SSH config."""
    config = project.config.hosts().get(name)
    if config is None:
        options, source = _lookup(name, _ssh_config_files(RemoteConfig()))
        if not source:
            known = ", ".join(sorted(project.config.hosts())) or "none yet"
            raise NotFoundError(f"no remote named {name!r} in tracker.yaml or ~/.ssh/config",
                                hint=f"known: {known}; add one with 'tracker remote add {name} --host ADDRESS'")
        config = RemoteConfig(ssh_config=source)
    options, source = _lookup(config.host or name, _ssh_config_files(config))
    identity = options.get("identityfile") or []
    keys = ([config.key] if config.key else []) + [str(Path(k).expanduser()) for k in identity]  # type: ignore[union-attr]
    return RemoteHost(
        name=name,
        hostname=str(options.get("hostname") or config.host or name),
        port=int(config.port or options.get("port") or 22),  # type: ignore[arg-type]
        user=str(config.user or options.get("user") or getpass.getuser()),
        key_files=tuple(str(Path(k).expanduser()) for k in keys),
        proxy_jump=str(options["proxyjump"]) if options.get("proxyjump") else None,
        ssh_config=source,
        known_hosts=known_hosts_files(config, options),
        config=config,
    )
