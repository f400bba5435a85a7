"""libmagic in worker processes (evidencekit/identify.py): same answers as in-process, in order,
and a file that crashes libmagic costs that file's type only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from evidencekit import identify
from evidencekit.identify import Identifier, mime_type

SAMPLES = [b"%PDF-1.7\n", b"hello world\n" * 10, os.urandom(3000), b"\x89PNG\r\n\x1a\n" + bytes(100),
           b"PK\x03\x04" + bytes(100), b"<html><body>hi</body></html>\n", b'{"a": [1, 2]}\n',
           b"From: a@example.com\nTo: b@example.com\nSubject: hi\n\nbody\n", bytes(5000)]


def _identify_all(identifier: Identifier, blocks: list[bytes]) -> list[str | None]:
    try:
        pending = [identifier.identify(block) for block in blocks]
        return [p if isinstance(p, str) else p.result() for p in pending]
    finally:
        identifier.close()


def _fake_worker(tmp_path: Path, body: str) -> list[str]:
    """A worker that runs the real protocol (identify.serve) but misbehaves as *body* says."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent("""\
        import os, signal, sys
        from evidencekit import identify
        real_ask = identify._ask
        """) + textwrap.dedent(body) + "\nidentify.serve(sys.stdin.buffer, sys.stdout.buffer)\n")
    return [sys.executable, str(script)]


CRASH_ON_MARK = """
def _ask(handle, block):
    if block.startswith(b"CRASH"):
        os.kill(os.getpid(), signal.SIGSEGV)  # what a libmagic bug would do
    return real_ask(handle, block)
identify._ask = _ask
"""

HANG_ON_MARK = """
def _ask(handle, block):
    if block.startswith(b"HANG"):
        signal.pause()  # what a pattern that backtracks for ever would do
    return real_ask(handle, block)
identify._ask = _ask
"""


def test_workers_give_the_same_answers_as_libmagic_in_process_in_order():
    blocks = SAMPLES * 30  # several batches, spread over two workers
    identifier = Identifier(workers=2)
    identifier.BATCH_FILES = 7
    assert _identify_all(identifier, blocks) == [mime_type(b) for b in blocks]


def test_a_large_first_block_is_cut_to_what_libmagic_reads():
    big = b"%PDF-1.7\n" + os.urandom(3 * identify.MAGIC_BYTES)
    assert _identify_all(Identifier(workers=1), [big]) == [mime_type(big[:identify.MAGIC_BYTES])]


def test_done_turns_true_without_waiting_once_the_answer_is_in():
    identifier = Identifier(workers=1)
    try:
        pending = identifier.identify(b"hello\n")
        assert not pending.done()  # still collecting its batch: not sent yet
        identifier.flush()
        deadline = time.monotonic() + 30
        while not pending.done():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert pending.result() == "text/plain"
    finally:
        identifier.close()


def test_a_file_that_crashes_libmagic_loses_only_its_own_type(tmp_path: Path):
    blocks = [*SAMPLES[:4], b"CRASH this one", *SAMPLES[4:]]
    identifier = Identifier(workers=2, command=_fake_worker(tmp_path, CRASH_ON_MARK))
    answers = _identify_all(identifier, blocks)
    expected: list[str | None] = [mime_type(b) for b in blocks]
    expected[4] = None
    assert answers == expected and identifier.crashes == 1


def test_a_file_that_hangs_libmagic_is_given_up_on_after_a_while(tmp_path: Path):
    identifier = Identifier(workers=1, command=_fake_worker(tmp_path, HANG_ON_MARK),
                            hang_seconds=1.0)
    started = time.monotonic()
    answers = _identify_all(identifier, [b"hello\n", b"HANG here", b"%PDF-1.7\n"])
    assert answers == ["text/plain", None, "application/pdf"]
    assert identifier.crashes == 1 and time.monotonic() - started < 20


def test_after_too_many_crashes_the_rest_go_untyped_instead_of_restarting_forever(tmp_path: Path):
    command = _fake_worker(tmp_path, CRASH_ON_MARK)
    identifier = Identifier(workers=1, command=command)
    blocks = [b"CRASH %d" % n for n in range(Identifier.MAX_CRASHES + 10)] + [b"hello\n"]
    answers = _identify_all(identifier, blocks)
    assert answers[:-1] == [None] * (len(blocks) - 1)
    assert identifier.crashes == Identifier.MAX_CRASHES


@pytest.mark.parametrize("command", [
    ["/nonexistent/evidencekit-worker"],  # cannot be started at all
    [sys.executable, "-c", "pass"],  # exits before saying it is ready
    [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'\\0\\0\\0\\x0bUNAVAILABLE')"],
], ids=["cannot-start", "exits-at-once", "no-libmagic"])
def test_without_a_working_worker_libmagic_runs_in_this_process(command: list[str]):
    identifier = Identifier(workers=2, command=command)
    assert _identify_all(identifier, SAMPLES) == [mime_type(b) for b in SAMPLES]
    assert identifier.crashes == 0


def test_a_garbled_answer_is_trusted_for_no_file(tmp_path: Path):
    command = _fake_worker(tmp_path, """
        def _serve(stdin, stdout):
            identify._write_frame(stdout, identify._READY)
            while (header := identify._read_exact(stdin, 4)) is not None:
                count = identify._LENGTH.unpack(header)[0]
                for _ in range(count):
                    size = identify._LENGTH.unpack(identify._read_exact(stdin, 4))[0]
                    identify._read_exact(stdin, size)
                identify._write_frame(stdout, b"text/plain")  # one answer, whatever the count
        identify.serve = _serve
        """)
    identifier = Identifier(workers=1, command=command)
    identifier.BATCH_FILES = 3
    answers = _identify_all(identifier, [b"a\n", b"b\n", b"c\n"])
    assert answers == [None, None, None]


def test_the_worker_ignores_ctrl_c_and_leaves_when_its_input_closes():
    worker = subprocess.Popen([sys.executable, "-m", "evidencekit.identify"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert worker.stdout is not None and worker.stdin is not None
    assert worker.stdout.read(9) == b"\0\0\0\x05READY"
    worker.send_signal(2)
    worker.stdin.write(b"\0\0\0\x01\0\0\0\x06hello\n")
    worker.stdin.close()
    assert worker.stdout.read() == b"\0\0\0\x0atext/plain"
    assert worker.wait(timeout=30) == 0


def test_a_magic_py_in_the_working_folder_is_not_run(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    """`cd /mnt/suspect && evidencekit capture .`: the working folder is the evidence, and the
    workers must not import from it (python -m would put it first on the path)."""
    ran = tmp_path / "it-ran"
    (tmp_path / "magic.py").write_text(f"open({str(ran)!r}, 'w').close()\nraise ImportError\n")
    monkeypatch.chdir(tmp_path)
    identifier = Identifier(workers=1)
    assert _identify_all(identifier, SAMPLES) == [mime_type(b) for b in SAMPLES]
    assert not ran.exists()
    assert not identifier._in_process  # typed by the worker, not here


def test_a_crash_first_noticed_while_sending_costs_only_that_files_type(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The worker dies on the first batch; the capture finds out when the next write fails
    (broken pipe), before reading anything back. That is still one file's crash: READY is read
    from the dead worker's pipe, and nothing is typed in the capture's own process."""
    typed_here: list[bytes] = []
    real = identify.mime_type
    monkeypatch.setattr(identify, "mime_type", lambda b: typed_here.append(b) or real(b))
    identifier = Identifier(workers=1, command=_fake_worker(tmp_path, CRASH_ON_MARK))
    identifier.BATCH_FILES = 4
    first = [identifier.identify(b) for b in [b"CRASH here", *SAMPLES[:3]]]
    worker = identifier._workers[0]
    deadline = time.monotonic() + 30
    while worker.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    second = [identifier.identify(b) for b in SAMPLES[3:7]]
    try:
        answers = [p.result() for p in first + second]
    finally:
        identifier.close()
    assert answers == [None, *[real(b) for b in SAMPLES[:3]], *[real(b) for b in SAMPLES[3:7]]]
    assert identifier.crashes == 1 and typed_here == []


def test_a_hang_while_the_next_batch_is_sent_is_still_found(tmp_path: Path):
    """A worker stuck in libmagic stops reading its pipe. Sending it more than the pipe holds
    would wait for ever, before the hang could be noticed: the next batch waits instead."""
    identifier = Identifier(workers=1, command=_fake_worker(tmp_path, HANG_ON_MARK),
                            hang_seconds=1.0)
    # Random bytes are sometimes a type (one CI run drew "MZ", application/x-dosexec): the
    # answers are compared with libmagic's own, not with a fixed type.
    blocks = [b"HANG here", os.urandom(300 << 10), os.urandom(identify.MAGIC_BYTES)]
    answers: list[list[str | None]] = []
    run = threading.Thread(target=lambda: answers.append(_identify_all(identifier, blocks)),
                           daemon=True)
    run.start()
    run.join(timeout=60)
    assert not run.is_alive(), "sending to a hung worker never finished"
    assert answers == [[None, *(mime_type(b[:identify.MAGIC_BYTES]) for b in blocks[1:])]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_does_not_outlive_its_capture():
    """Killed with the capture (kill -9), a worker stuck in libmagic would never see its input
    close; it is killed with it instead."""
    code = textwrap.dedent("""\
        import subprocess, sys
        worker = subprocess.Popen([sys.executable, "-c",
            "import os, signal; from evidencekit.identify import _die_with; "
            f"_die_with({__import__('os').getpid()}); signal.pause()"])
        print(worker.pid, flush=True)
        signal = __import__("signal"); signal.pause()
        """)
    capture = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert capture.stdout is not None
    worker = int(capture.stdout.readline())
    time.sleep(0.5)  # until the worker has asked to die with its parent
    capture.kill()
    capture.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.05)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_capture_records_a_crash_as_untyped_and_says_which_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    from evidencekit.capture import CaptureRequest, CaseInfo, capture
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey
    from evidencekit.verify import verify

    monkeypatch.setattr(identify, "worker_command",
                        lambda: _fake_worker(tmp_path, CRASH_ON_MARK))
    tree = tmp_path / "evidence"
    tree.mkdir()
    (tree / "a-note.txt").write_bytes(b"hello\n")
    (tree / "b-sample.bin").write_bytes(b"CRASH libmagic\n")
    (tree / "c-page.html").write_bytes(b"<html><body>hi</body></html>\n")
    identity = age.X25519Identity.generate()
    bundle = tmp_path / "out.evidence"
    result = capture(CaptureRequest([os.fsencode(tree)], bundle, CaseInfo("CRASH-1", "Jane"),
                                    [identity.recipient()], SigningKey.generate(), ["test"]))
    assert result.warnings == ["evidence/b-sample.bin: libmagic crashed or hung on this file, so its "
                               "type is recorded as application/octet-stream"]
    assert result.problems == [] and result.seal.complete
    report = verify(bundle, [identity])
    assert report.ok and report.files_checked == 3
    assert report.manifest is not None
    with_mime = {e["path"]: e["mime"] for e in report.manifest.entries() if e["kind"] == "file"}
    assert with_mime == {"evidence/a-note.txt": "text/plain",
                         "evidence/b-sample.bin": "application/octet-stream",
                         "evidence/c-page.html": "text/html"}



def test_capture_starts_a_worker_before_reading_a_file_not_after(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    """A file is typed once read, and a large file's first bytes (a megabyte) do not fit in a
    worker's pipe: started then, the worker's start (0.1 s) was waited for at the end of the
    capture, after the file. It starts as the first file is opened, and types the same."""
    from evidencekit import capture as capture_module
    from evidencekit.capture import CaptureRequest, CaseInfo, capture
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey
    from evidencekit.verify import verify

    hashed = [0]
    started_after: list[int] = []  # bytes of the file read when each worker was started
    read_and_hashed = capture_module._hash_and_peek
    start = Identifier._start

    def counting(data: memoryview, digest: object, first: bytearray) -> None:
        hashed[0] += len(data)
        read_and_hashed(data, digest, first)

    def recording(self: Identifier) -> object:
        started_after.append(hashed[0])
        return start(self)

    monkeypatch.setattr(capture_module, "_hash_and_peek", counting)
    monkeypatch.setattr(Identifier, "_start", recording)
    content = b"%PDF-1.7\n" + os.urandom(2 * identify.MAGIC_BYTES)
    (tmp_path / "big.pdf").write_bytes(content)
    (tmp_path / "empty.txt").write_bytes(b"")
    identity = age.X25519Identity.generate()
    bundle = tmp_path / "out.evidence"
    capture(CaptureRequest([os.fsencode(tmp_path / "empty.txt"), os.fsencode(tmp_path / "big.pdf")],
                           bundle, CaseInfo("EARLY-1", "Jane"), [identity.recipient()],
                           SigningKey.generate(), ["test"]))
    assert started_after == [0]  # one worker, before a byte was read (none for the empty file)
    report = verify(bundle, [identity])
    assert report.ok and report.manifest is not None
    assert {e["path"]: e["mime"] for e in report.manifest.entries() if e["kind"] == "file"} == \
        {"empty.txt": "inode/x-empty", "big.pdf": mime_type(content[:identify.MAGIC_BYTES])}


def test_a_content_typed_before_takes_its_answer_and_libmagic_is_not_asked_again(tmp_path: Path):
    import hashlib

    identifier = Identifier(workers=1)
    try:
        keys = [hashlib.sha256(block).hexdigest() for block in SAMPLES]
        first = [identifier.identify(block, key) for block, key in zip(SAMPLES, keys, strict=True)]
        again = [identifier.identify(block, key) for block, key in zip(SAMPLES, keys, strict=True)]
        assert all(b is a for a, b in zip(first, again, strict=True))  # in flight: the same question
        answers = [a.result() for a in first if isinstance(a, identify.Pending)]
        assert answers == [mime_type(block) for block in SAMPLES]
        later = [identifier.identify(block, key) for block, key in zip(SAMPLES, keys, strict=True)]
        assert later == answers  # known: the answer itself
        assert identifier.identify(SAMPLES[0]) is not first[0]  # no key: asked again
    finally:
        identifier.close()


def test_the_table_of_known_contents_is_bounded(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(Identifier, "KNOWN_CONTENTS", 2)
    identifier = Identifier(workers=1)
    try:
        one = identifier.identify(b"one\n", "1")
        identifier.identify(b"two\n", "2")
        identifier.identify(b"three\n", "3")  # the oldest, "1", is forgotten
        assert identifier.identify(b"one\n", "1") is not one
        assert len(identifier._known) == 2
    finally:
        identifier.close()


_LOADED = textwrap.dedent("""\
    import json, subprocess, sys
    started = []
    real_popen = subprocess.Popen
    class Recording(real_popen):
        def __init__(self, args, *rest, **kw):
            started.append(str(args))
            super().__init__(args, *rest, **kw)
    subprocess.Popen = Recording
    {load}
    import ctypes.util
    print(json.dumps({{"started": started, "library": magic.libmagic._name,
                       "version": magic.version(), "pdf": magic.from_buffer(b"%PDF-1.7\\n", mime=True),
                       "find_library_restored": magic.loader.find_library is ctypes.util.find_library}}))
    """)


def _loaded(load: str) -> dict[str, object]:
    """What a fresh interpreter started and loaded when it imported python-magic by *load*."""
    import json

    code = _LOADED.format(load=load)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the soname shortcut is Linux's")
def test_python_magic_is_loaded_without_running_ldconfig_and_loads_the_same_library():
    plain = _loaded("import magic")
    shortcut = _loaded("from evidencekit.identify import import_magic; magic = import_magic()")
    assert any("ldconfig" in command for command in plain["started"])  # what issue 27 saw
    assert shortcut["started"] == []
    assert {k: shortcut[k] for k in ("library", "version", "pdf", "find_library_restored")} == \
        {k: plain[k] for k in ("library", "version", "pdf", "find_library_restored")}


def test_without_the_soname_python_magic_finds_libmagic_as_before():
    fallback = _loaded("from evidencekit import identify; identify._SONAME = 'libmagic-absent.so.9'; "
                       "magic = identify.import_magic()")
    plain = _loaded("import magic")
    assert fallback == plain
