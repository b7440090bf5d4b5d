"""Credentials in configuration: find them, expand ``${VAR}`` references, redact them.

tracker never needs a credential in tracker.yaml: every backend reads its cloud's
standard chain or environment variables, and any storage option may say
``${VAR}`` to take (part of) its value from the environment. When a file holds one
anyway (a password inside ``endpoint_url``, a ``secret_access_key``...), it is
redacted everywhere tracker shows or saves text: errors, ``storage list``,
``storage check``, and the ``code.patch`` saved with each trial (and so in backups).

:func:`redact` is the one redaction function. It masks, in any text:

- the password of a URL (``scheme://user:PASSWORD@host``), or a userinfo without one
  (``https://TOKEN@host``);
- credential query parameters (``sig``, ``signature``, ``token``, ``key``, ``password``,
  ``X-Amz-Signature``, ``X-Amz-Security-Token``...), as in SAS and pre-signed URLs;
- credential fields of connection strings (``AccountKey=``, ``SharedAccessSignature=``...);
- the value of a ``key: value`` / ``key=value`` whose key names a credential;
- every credential value met in a storage target this process opened.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from tracker.errors import ConfigError, TrackerWarning

MASK = "***"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ONLY_REFS = re.compile(r"(?:\$\{[A-Za-z_][A-Za-z0-9_]*\})+\Z")

# option names (any backend, plug-ins too) whose value is a credential: the name ends in one of these
SECRET_KEY_RE = re.compile(
    r"[a-z0-9_-]*?(password|passwd|secret|secret_key|secret_access_key|token|session_token|account_key|"
    r"application_key|app_key|api_key|apikey|private_key|connection_string|credentials|credentials_json|"
    r"service_account_info|sas|sas_token|signature)\Z")
# where each cloud looks for credentials instead (for the warning)
CREDENTIAL_CHAIN = {
    "s3": "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile in ~/.aws, or an instance role",
    "azure": "AZURE_STORAGE_CONNECTION_STRING (see connection_string_env), AZURE_STORAGE_KEY / "
             "AZURE_STORAGE_SAS_TOKEN, or azure-identity's DefaultAzureCredential",
    "gcs": "GOOGLE_APPLICATION_CREDENTIALS or 'gcloud auth application-default login'",
    "b2": "B2_APPLICATION_KEY_ID / B2_APPLICATION_KEY",
}

_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/@?#]*)(?::(?P<pw>[^\s/@?#]*))?@")
_QUERY = re.compile(r"(?i)(?P<head>[?&;](?:sig|signature|token|access_token|auth|key|api_key|apikey|password|"
                    r"secret|x-amz-signature|x-amz-security-token|x-amz-credential|x-goog-signature|"
                    r"x-goog-credential)=)(?P<value>[^&\s\"'#;]+)")
_CONN_FIELD = re.compile(r"(?i)(?P<head>\b(?:AccountKey|SharedAccessSignature|SharedAccessKey|Password|Pwd|"
                         r"ApplicationKey)=)(?P<value>[^;\s\"']+)")
_KEY_VALUE = re.compile(r"(?m)(?P<head>(?<![A-Za-z0-9_-])(?P<key>[A-Za-z0-9_-]+)[\"']?[ \t]*[:=][ \t]*)"
                        r"(?P<value>\"[^\"\n]*\"|'[^'\n]*'|(?:\$\{[A-Za-z_][A-Za-z0-9_]*\}|[^\s\"',}#])+)")
TOKEN_LENGTH = 16  # a URL's bare userinfo this long is taken for a token (https://TOKEN@host), not a user name

_known: set[str] = set()  # credential values met in opened targets (masked in any text)
_lock = threading.Lock()


def is_secret_key(name: str) -> bool:
    """Whether an option named ``name`` holds a credential."""
    return bool(SECRET_KEY_RE.match(name.lower()))


def _mask(value: str) -> str:
    return value if not value or _ONLY_REFS.match(value) else MASK


def redact(text: str) -> str:
    """``text`` with every credential masked as ``***`` (see the module docstring).

    Example: ``redact("http://minio:pw@host:9000")`` is ``"http://minio:***@host:9000"``.
    """
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        text = text.replace(value, MASK)

    def userinfo(m: re.Match[str]) -> str:
        if m.group("pw") is None:
            token = len(m.group("user")) >= TOKEN_LENGTH
            return f"{m.group('scheme')}{_mask(m.group('user'))}@" if token else m.group(0)
        return f"{m.group('scheme')}{m.group('user')}:{_mask(m.group('pw'))}@"

    text = _URL_USERINFO.sub(userinfo, text)
    text = _QUERY.sub(lambda m: m.group("head") + _mask(m.group("value")), text)
    text = _CONN_FIELD.sub(lambda m: m.group("head") + _mask(m.group("value")), text)

    def key_value(m: re.Match[str]) -> str:
        value = m.group("value")
        if not is_secret_key(m.group("key")):
            return m.group(0)
        if value[:1] in "\"'" and len(value) >= 2:
            return m.group("head") + value[0] + _mask(value[1:-1]) + value[-1]
        return m.group("head") + _mask(value)

    return _KEY_VALUE.sub(key_value, text)


def _walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    yield where, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{where}[{i}]")


def literal_secrets(storage: dict[str, Any]) -> list[tuple[str, str]]:
    """(location, target type) of every credential written into a ``storage:`` section as is.

    ``${VAR}`` references are not credentials: only what remains around them counts.
    """
    found = []
    for name, target in storage.items():
        options = target if isinstance(target, dict) else {"type": getattr(target, "type", None),
                                                            **target.options()}
        kind = str(options.get("type"))
        for key, value in options.items():
            if _holds_secret(str(key), value):
                found.append((f"storage.{name}.{key}", kind))
    return found


def _holds_secret(key: str, value: Any) -> bool:
    if is_secret_key(key) and not isinstance(value, str) and value not in (None, "", {}, []):
        return True
    for _, leaf in _walk(value, ""):
        if isinstance(leaf, str):
            bare = ENV_REF.sub("", leaf)
            if (is_secret_key(key) and bare.strip()) or redact(bare) != bare:
                return True
    return False


def warning(found: list[tuple[str, str]], where: str = "tracker.yaml") -> str:
    """The one-line advice for credentials found in a config file."""
    kinds = sorted({k for _, k in found})
    chains = "; ".join(f"{k}: {CREDENTIAL_CHAIN[k]}" for k in kinds if k in CREDENTIAL_CHAIN)
    return (f"{where} holds credentials in {', '.join(loc for loc, _ in found)}: anyone who can read the file or "
            "its git history can use them (tracker masks them in what it prints and in code.patch); write "
            "${VAR} there to read them from the environment" + (f", or use the cloud's own chain ({chains})"
                                                                 if chains else ""))


def warn_literal(storage: dict[str, Any], where: str = "tracker.yaml") -> None:
    """Emit a :class:`~tracker.errors.TrackerWarning` when a storage section holds credentials."""
    import warnings

    found = literal_secrets(storage)
    if found:
        warnings.warn(warning(found, where), TrackerWarning, stacklevel=2)


def remember(values: Iterable[str]) -> None:
    """Mask these credential values in all text :func:`redact` sees from now on (4+ characters)."""
    with _lock:
        _known.update(v for v in values if isinstance(v, str) and len(v) >= 4)


def expand(options: dict[str, Any], where: str, lines: dict[Any, int] | None = None,
           path: object = "tracker.yaml") -> dict[str, Any]:
    """``options`` with ``${VAR}`` replaced from the environment; the credentials met are remembered.

    An unset variable is a ConfigError naming the option and its line.
    """
    def sub(value: Any, loc: tuple[Any, ...]) -> Any:
        if isinstance(value, dict):
            return {k: sub(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v, (*loc, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        def env(m: re.Match[str]) -> str:
            if m.group(1) not in os.environ:
                raise ConfigError(f"{where}.{'.'.join(map(str, loc))} refers to ${{{m.group(1)}}}, which is not set",
                                  path=path, line=(lines or {}).get(loc[:1]),
                                  hint=f"export {m.group(1)}=... before running tracker")
            return os.environ[m.group(1)]

        return ENV_REF.sub(env, value)

    expanded = sub(options, ())
    remember(secret_values(expanded))
    return expanded


def secret_values(options: dict[str, Any]) -> list[str]:
    """The credential strings in a target's options: values of credential keys, URL passwords, tokens."""
    found: list[str] = []
    for key, value in options.items():
        for _, leaf in _walk(value, ""):
            if not isinstance(leaf, str):
                continue
            if is_secret_key(str(key)):
                found += [line.strip() for line in leaf.splitlines() if line.strip()]
            found += [m.group("pw") for m in _URL_USERINFO.finditer(leaf) if m.group("pw")]
            found += [m.group("value") for rx in (_QUERY, _CONN_FIELD) for m in rx.finditer(leaf)]
    return [v for v in found if not _ONLY_REFS.match(v)]


def display(options: dict[str, Any]) -> dict[str, Any]:
    """Storage options as ``storage list`` shows them: credentials masked, ``${VAR}`` references kept."""
    def show(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: show(str(k), v) for k, v in value.items()} if not is_secret_key(key) else MASK
        if isinstance(value, list):
            return [show(key, v) for v in value]
        if is_secret_key(key) and value not in (None, ""):
            return _mask(value) if isinstance(value, str) else MASK
        return redact(value) if isinstance(value, str) else value

    return {k: show(str(k), v) for k, v in options.items()}
