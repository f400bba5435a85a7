"""Start-up cost (issue 27): a command pays for its own imports only, not for every other
command's nor for a library that only an option needs (docs/performance.md, "Start-up").

Checked in a fresh interpreter, so that what the test session imported does not hide an import.
"""

from __future__ import annotations

import subprocess
import sys

# Libraries that only an option or one command needs: S3 stores, mailboxes, the live snapshot,
# PDF reports, trusted timestamps, MIME types of captured files.
HEAVY = ("boto3", "botocore", "imapclient", "psutil", "reportlab", "rfc3161_client")


def modules_after(code: str) -> set[str]:
    listing = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)), file=sys.stderr)"
    done = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True,
                          timeout=120)
    return set(done.stderr.split())


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_the_entry_point_imports_no_command_and_no_heavy_library() -> None:
    modules = modules_after("import evidencekit.cli.main")
    assert loaded(modules, HEAVY) == []
    assert [m for m in modules if m.startswith("evidencekit.cli.cmd_")] == []
    # the library's heavy parts: each command imports what it uses when it runs
    assert loaded(modules, ("evidencekit.verify", "evidencekit.capture", "evidencekit.custody",
                            "evidencekit.deliver", "evidencekit.sources")) == []


def modules_of_a_run(*argv: str) -> set[str]:
    return modules_after("import sys\nfrom evidencekit.cli.main import main\n"
                         f"sys.argv = ['evidencekit', *{argv!r}]\n"
                         "try:\n    main()\nexcept SystemExit:\n    pass")


def test_version_and_verify_import_no_heavy_library() -> None:
    assert loaded(modules_of_a_run("--version"), HEAVY) == []
    assert loaded(modules_of_a_run("verify", "--help"), HEAVY) == []


# What only one of capture's options needs: a remote host (SSH, SFTP), a store (evidencekit
# .deliver), the live state (psutil), a timestamp's check of the bundle (verify, custody), a
# mailbox (--imap), a web page (--url), a device (--device), a TSA's certificates (--tsa-ca),
# the guided session (a capture with nothing named, on a terminal), a profile (--profile),
# appending a timestamp (--tsa).
CAPTURE_OPTIONS_ONLY = (*HEAVY, "evidencekit.remote.receive", "evidencekit.remote.fallback",
                        "evidencekit.remote.sftp", "evidencekit.sources.remote_logical",
                        "evidencekit.deliver", "evidencekit.sources.live", "evidencekit.verify",
                        "evidencekit.custody.events", "evidencekit.custody.resealing",
                        "evidencekit.sources.mail", "evidencekit.sources.web",
                        "evidencekit.sources.device", "evidencekit.cli.guided",
                        "evidencekit.sources.files.profiles", "evidencekit.cli.cmd_profiles",
                        "evidencekit.custody.append",
                        "cryptography.x509")


def test_capture_imports_the_libraries_of_options_only_when_they_are_used(
        tmp_path, user, keys, tree) -> None:
    assert loaded(modules_of_a_run("capture", "--help"), CAPTURE_OPTIONS_ONLY) == []
    out = tmp_path / "one.evidence"
    modules = modules_of_a_run("capture", str(tree), "-R", str(keys["recipient"]), "--sign-key",
                               str(keys["signer"]), "-o", str(out), "--json")
    assert out.exists()  # the capture ran, and imported only what it used
    assert "evidencekit.capture" in modules
    assert loaded(modules, CAPTURE_OPTIONS_ONLY) == []


def test_the_live_option_default_is_the_live_sources() -> None:
    from evidencekit.cli.live import MEMORY_IDLE_TIMEOUT
    from evidencekit.sources.live.memory import DEFAULT_IDLE_TIMEOUT

    assert MEMORY_IDLE_TIMEOUT == DEFAULT_IDLE_TIMEOUT


def test_every_command_defined_is_named_with_its_module() -> None:
    # A command module that main.py does not name would never be imported: its command missing.
    code = ("import pkgutil, importlib, evidencekit.cli as package\n"
            "from evidencekit.cli.main import cli\n"
            "named = dict(cli.modules)\n"
            "for info in pkgutil.iter_modules(package.__path__):\n"
            "    importlib.import_module(f'evidencekit.cli.{info.name}')\n"
            "print(sorted(cli.commands) == sorted(named))\n"
            "print(all(cli.commands[name].callback.__module__ == module\n"
            "          for name, module in named.items()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_the_capture_library_does_not_import_what_reads_bundles() -> None:
    # evidencekit.deliver's __init__ imports custody and verify: capture needs only a type of it;
    # format.tree (capture takes STREAM_MODE from it) names payload's StoredMember in annotations
    modules = modules_after("import evidencekit.capture")
    assert loaded(modules, ("evidencekit.verify", "evidencekit.custody",
                            "evidencekit.deliver", "evidencekit.payload",
                            "evidencekit.addenda")) == []


# What only an option of verify needs: a device to compare with (--against: the sector reader and
# the sources), asking a timestamp authority (urllib), reading a YAML file (a configuration file,
# an incident file: PyYAML), a timestamp's certificates (cryptography.x509: read only when the
# bundle holds a timestamp).
VERIFY_OPTIONS_ONLY = (*HEAVY, "evidencekit.against", "evidencekit.sources", "urllib.request",
                       "yaml", "cryptography.x509")


def test_verify_imports_the_libraries_of_options_only_when_they_are_used(
        tmp_path, user, keys, tree) -> None:
    out = tmp_path / "one.evidence"
    subprocess.run([sys.executable, "-m", "evidencekit", "capture", str(tree), "-R",
                    str(keys["recipient"]), "--sign-key", str(keys["signer"]), "-o", str(out),
                    "--json"], check=True, capture_output=True, timeout=120)
    assert loaded(modules_of_a_run("verify", "--help"), VERIFY_OPTIONS_ONLY) == []
    modules = modules_of_a_run("verify", str(out), "--json")
    assert "evidencekit.verify" in modules  # it ran
    assert loaded(modules, VERIFY_OPTIONS_ONLY) == []


def test_ctrl_c_while_python_loads_evidencekit_is_said_plainly() -> None:
    """Ctrl-C pressed at once (here: while the CLI's modules load) printed a traceback."""
    interrupted = (
        "import sys, runpy\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'evidencekit.cli.keyring':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.argv = ['evidencekit', 'verify', 'x.evidence']\n"
        "runpy.run_module('evidencekit', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", interrupted], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "evidencekit: interrupted" in done.stderr
