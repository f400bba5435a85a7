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


def test_version_and_a_commands_help_import_no_heavy_library() -> None:
    for argv in (["--version"],):
        code = ("import sys\nfrom evidencekit.cli.main import main\n"
                f"sys.argv = ['evidencekit', *{argv!r}]\n"
                "try:\n    main()\nexcept SystemExit:\n    pass")
        assert loaded(modules_after(code), HEAVY) == [], argv
