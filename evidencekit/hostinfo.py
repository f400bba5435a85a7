"""Facts about the machine and the tool, recorded with every capture and custody event."""

from __future__ import annotations

import getpass
import platform
import socket

from evidencekit import __version__


def host_name() -> str:
    return socket.gethostname()


def user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def operating_system() -> str:
    return f"{platform.system()} {platform.release()} ({platform.version()}; {platform.machine()})"


def tool_versions() -> dict[str, str]:
    """Versions of evidencekit, Python and the libraries that touch the evidence or the crypto."""
    import importlib.metadata  # here: every command imports this module, only capture asks

    versions = {"evidencekit": __version__, "python": platform.python_version()}
    for package in ("cryptography", "bcrypt", "python-magic"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        versions["openssl"] = backend.openssl_version_text()
    except Exception:  # reporting only; never fail a capture over a version string
        pass
    try:
        from evidencekit.identify import import_magic  # libmagic by its soname: no ldconfig

        versions["libmagic"] = str(import_magic().version())
    except Exception:
        versions["libmagic"] = "not available"
    return versions
