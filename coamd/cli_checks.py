"""Argument checks shared by the command lines (``coamd`` and ``coamd deploy``): one ``error:``
line for a bad option, found before any model loads. ``CLIError`` carries the message and the exit
status; the checks raise it naming the option.
"""
from __future__ import annotations

import argparse
from pathlib import Path


class CLIError(Exception):
    """An error to print as one line (``error: ...``) with exit status ``status`` (default 2:
    a bad argument)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


def _check_outputs(*pairs: tuple[str, str | None]) -> None:
    """Each (option, path) with a path must be writable now; raises CLIError naming the option."""
    from coamd.io.motion import OutputPathError, check_output_path

    for option, path in pairs:
        if path is not None:
            try:
                check_output_path(path, option)
            except OutputPathError as exc:
                raise CLIError(str(exc)) from exc


def _port(text: str) -> int:
    """argparse type of ``--port``: an integer in 0..65535 (0 = any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a whole number in 0..65535, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535 (0 = any free port), got {port}")
    return port


def _check_host(host: str) -> None:
    """``host`` must be an IP address or a name that resolves (e.g. localhost); raises CLIError."""
    import ipaddress
    import socket

    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not bare:
        raise CLIError("--host is empty; use e.g. 127.0.0.1 (loopback) or 0.0.0.0 (all interfaces)")
    try:
        ipaddress.ip_address(bare)
        return
    except ValueError:
        pass
    if all(part.isdigit() for part in bare.split(".")) or ":" in bare:
        raise CLIError(f"--host {host} is not a valid IP address")
    try:
        socket.getaddrinfo(bare, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise CLIError(f"--host {host} is neither an IP address nor a host name that resolves "
                       f"({getattr(exc, 'strerror', None) or exc})") from exc


def _check_bind(host: str, port: int) -> None:
    """Bind (host, port) once and let go, so a busy port or a foreign address fails before the
    models load (the server binds with SO_REUSEADDR too). Raises CLIError."""
    import errno
    import socket

    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise CLIError(f"--host {host}: {getattr(exc, 'strerror', None) or exc}") from exc
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            why = {errno.EADDRINUSE: f"port {port} is already in use on {host}",
                   errno.EADDRNOTAVAIL: f"{host} is not an address of this machine",
                   errno.EACCES: f"port {port} needs more privileges"}.get(exc.errno, exc.strerror or str(exc))
            raise CLIError(f"cannot bind {host}:{port}: {why}") from exc


def _read_token_file(path: str) -> str:
    """The bearer token in ``path`` (whitespace stripped); raises CLIError when missing,
    unreadable, not text or empty."""
    p = Path(path)
    if not p.exists():
        raise CLIError(f"--token-file {p} does not exist")
    if p.is_dir():
        raise CLIError(f"--token-file {p} is a folder, not a file")
    try:
        token = p.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise CLIError(f"--token-file {p} is not UTF-8 text") from exc
    except OSError as exc:
        raise CLIError(f"--token-file {p} cannot be read: {exc.strerror or exc}") from exc
    if not token:
        raise CLIError(f"--token-file {p} is empty")
    return token


def _pem_kinds(data: bytes) -> set[str]:
    """The PEM block types in ``data`` (e.g. {"CERTIFICATE", "PRIVATE KEY"})."""
    import re

    return {m.decode() for m in re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)}


def _ssl_reason(exc) -> str:
    import re

    return re.sub(r"\s*\(_ssl\.c:\d+\)", "", exc.reason or str(exc))


def _check_tls(cert: str, key: str) -> None:
    """The certificate file must hold a PEM certificate, the key file a PEM private key, and the
    key must belong to the certificate (checked with the standard ``ssl`` module). Raises CLIError."""
    import ssl

    blobs = {}
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        p = Path(path)
        if not p.is_file():
            raise CLIError(f"{option} {p} does not exist" if not p.exists() else f"{option} {p} is not a file")
        try:
            blobs[option] = p.read_bytes()
        except OSError as exc:
            raise CLIError(f"{option} {p} cannot be read: {exc.strerror or exc}") from exc
    cert_kinds, key_kinds = _pem_kinds(blobs["--tls-cert"]), _pem_kinds(blobs["--tls-key"])
    cert_is_key = any(k.endswith("PRIVATE KEY") for k in cert_kinds)
    key_is_cert = "CERTIFICATE" in key_kinds
    if "CERTIFICATE" not in cert_kinds:
        hint = (" (it holds a private key: are --tls-cert and --tls-key swapped?)" if cert_is_key
                else f" (PEM blocks found: {', '.join(sorted(cert_kinds))})" if cert_kinds else "")
        raise CLIError(f"--tls-cert {cert} is not a PEM certificate: no 'BEGIN CERTIFICATE' block{hint}")
    if not any(k.endswith("PRIVATE KEY") for k in key_kinds):
        hint = (" (it holds a certificate: are --tls-cert and --tls-key swapped?)" if key_is_cert
                else f" (PEM blocks found: {', '.join(sorted(key_kinds))})" if key_kinds else "")
        raise CLIError(f"--tls-key {key} is not a PEM private key: no 'BEGIN ... PRIVATE KEY' block{hint}")
    if "ENCRYPTED PRIVATE KEY" in key_kinds:
        raise CLIError(f"--tls-key {key} is encrypted; the server needs an unencrypted PEM key")
    try:  # the certificates alone
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError as exc:
        raise CLIError(f"--tls-cert {cert} holds a damaged certificate ({_ssl_reason(exc)})") from exc
    try:  # the key, and that it belongs to the first certificate
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        reason = _ssl_reason(exc)
        if "MISMATCH" in reason.upper():
            raise CLIError(f"--tls-key {key} does not belong to the certificate in --tls-cert {cert}") from exc
        raise CLIError(f"--tls-key {key} holds a damaged private key ({reason})") from exc


def _one_line(exc: BaseException) -> str:
    """The message of an expected error as one line (an OSError names its file and reason)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename and str(exc).startswith("["):
        msg = f"{exc.filename}: {exc.strerror}"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())
