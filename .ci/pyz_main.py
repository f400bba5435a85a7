"""evidencekit as one file (evidencekit.pyz): the start of the app, run by any Python 3.

A zip cannot hold compiled modules that Python imports (cryptography, bcrypt, cffi and Pillow have
some), so the first run copies the app out of the zip, once, into a folder of the user's own
(``~/.cache/evidencekit/pyz-<build>``, mode 0700) and runs it from there; later runs start at once.
Which Pythons and which system the bundled modules serve is in ``evidencekit_pyz.json``, written by
.ci/build_release.py; any other is told so plainly, with the way out. docs/decisions/release.md
says why.

Kept to the syntax of Python 3.6, so that an older Python than the app needs can still read it
and say so.
"""

import atexit
import json
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
import zipfile

WAY_OUT = ("Install evidencekit from its wheel instead (pipx install ./evidencekit-VERSION-py3-none-"
           "any.whl), or build the .pyz on this system: python3 .ci/build_release.py")


def main():
    archive = os.path.dirname(os.path.abspath(__file__))
    with zipfile.ZipFile(archive) as app:
        info = json.loads(app.read("evidencekit_pyz.json").decode("utf-8"))
        python = "{}.{}".format(*sys.version_info[:2])
        if python not in info["pythons"] or sysconfig.get_platform() != info["platform"]:
            made_for = ", ".join(info["pythons"])
            sys.stderr.write(
                f"evidencekit: error: this evidencekit.pyz is made for Python {made_for} on "
                f"{info['platform']}; this is Python {python} on {sysconfig.get_platform()}.\n"
                f"evidencekit: hint: {WAY_OUT}\n")
            sys.exit(2)
        folder = _unpacked(app, info["build"])
    tag = "cp{}{}".format(*sys.version_info[:2])
    found = [os.path.join(folder, "lib", part) for part in (tag, "common")]
    found = [path for path in found if os.path.isdir(path)]
    # the app's folders before anything else; not the .pyz itself (nothing in it is imported)
    sys.path[:] = found + [p for p in sys.path if p and os.path.abspath(p) != archive]
    from evidencekit.cli.main import main as evidencekit_main

    evidencekit_main()


def _unpacked(app, build):
    """The folder holding the app's files: the cache's, unpacked there the first time; a
    temporary one (removed at exit) where the cache cannot be used."""
    cache = _cache_folder()
    if cache is not None:
        folder = os.path.join(cache, "pyz-" + build[:32])
        if _complete_and_ours(folder, build):
            return folder
        try:
            os.makedirs(cache, mode=0o700, exist_ok=True)
            fresh = tempfile.mkdtemp(prefix=".unpacking-", dir=cache)
            _unpack(app, fresh, build)
            if os.path.isdir(folder) and not os.path.islink(folder) and \
                    not _complete_and_ours(folder, build):
                shutil.rmtree(folder, ignore_errors=True)  # a broken one would never complete
            try:
                os.rename(fresh, folder)
            except OSError:  # another run unpacked it first (or a stale one is in the way)
                shutil.rmtree(fresh, ignore_errors=True)
            if _complete_and_ours(folder, build):
                return folder
        except OSError:
            pass
    fresh = tempfile.mkdtemp(prefix="evidencekit-pyz-")
    atexit.register(shutil.rmtree, fresh, True)
    _unpack(app, fresh, build)
    return fresh


def _cache_folder():
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or (
            os.path.join(os.path.expanduser("~"), ".cache") if os.path.expanduser("~") != "~"
            else None)
    return os.path.join(base, "evidencekit") if base and os.path.isabs(base) else None


def _complete_and_ours(folder, build):
    """Whether *folder* was unpacked whole from this build, and only its owner may change it
    (code that others could write to is never run)."""
    try:
        info = os.stat(folder)
        with open(os.path.join(folder, "BUILD"), "rb") as f:
            written = f.read().decode("ascii", "replace")
    except OSError:
        return False
    if os.name != "nt" and (info.st_uid != os.getuid() or
                            info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        return False
    return written == build


def _unpack(app, folder, build):
    """Every file under lib/ (zipfile checks each one's CRC-32: a damaged .pyz stops here)."""
    for member in app.infolist():
        if member.filename.startswith("lib/") and not member.is_dir():
            app.extract(member, folder)
    with open(os.path.join(folder, "BUILD"), "w") as f:  # written last: "unpacked whole"
        f.write(build)


if __name__ == "__main__":
    main()
