"""Adding trusted timestamps to a bundle: ask each TSA, then append what they answered.

The TSAs are asked first, outside the bundle's lock (a slow TSA must not hold up another writer),
with the bytes of ``seal.json.sig`` read from the bundle; then, under the lock, the bundle is
verified again, its ``seal.json.sig`` must still be those bytes, and every good token is appended
at once by the same atomic replacement as custody events (evidencekit.fs.replace_end): a kill or a
full disk at any instant leaves the bundle whole, with all the new timestamps or none.

A TSA that cannot be reached, or answers with something that is not a good token for this
request, never stops anything: it is reported in :attr:`Stamped.failed` with the reason, so the
caller can say how to add the timestamp later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evidencekit import fs, timestamps
from evidencekit.errors import BundleError

# The bundle's reader and the custody log's appending are imported where a timestamp is added:
# capture imports this module for its --tsa options and result, and a capture without --tsa
# reads no bundle (issue 27: 6 ms at every start).


@dataclass
class Stamped:
    added: list[tuple[str, str, timestamps.Token]] = field(default_factory=list)  # member, URL
    failed: list[tuple[str, str]] = field(default_factory=list)  # URL, why


def later_command(bundle: Path, urls: Sequence[str]) -> str:
    """The command that adds the missing timestamps later."""
    tsas = " ".join(f"--tsa {url}" for url in urls)
    return f"evidencekit timestamp {_quoted(str(bundle))} {tsas}"


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


def add_timestamps(bundle: Path, urls: Sequence[str],
                   roots: Sequence[timestamps.Certificate] | None = None,
                   waiting: Callable[[], None] | None = None) -> Stamped:
    """Ask every TSA in *urls* to timestamp the bundle's seal signature and append the good
    answers (docs/FORMAT.md §6.1). With *roots*, an answer must also verify against them."""
    from evidencekit.custody.append import append_failed, appendable, require_intact
    from evidencekit.verify import verify  # here: capture declares --tsa, and reads no bundle

    signature = _seal_signature(bundle)
    result = Stamped()
    tokens: list[tuple[str, timestamps.Token]] = []
    for url in urls:
        try:
            tokens.append((url, timestamps.request(url, signature, list(roots) if roots else None)))
        except timestamps.TimestampError as exc:
            result.failed.append((url, str(exc)))
    if not tokens:
        return result
    target = appendable(bundle)
    try:
        with fs.locked(target, waiting) as fd:
            current = verify(target)
            require_intact(current)
            if _seal_signature(target) != signature:
                raise BundleError("the bundle's seal changed while the TSAs were asked; no "
                                  "timestamp was added", hint="run the command again")
            result.added = _append(target, fd, tokens)
    except OSError as exc:
        raise append_failed(bundle, "the timestamp", exc,
                            "free some space on that disk, then run the command again") from None
    return result


def _seal_signature(bundle: Path) -> bytes:
    from evidencekit.format.documents import SEAL_SIG
    from evidencekit.format.reader import open_bundle

    opened = open_bundle(bundle)
    try:
        if SEAL_SIG not in opened.by_name:
            raise BundleError(f"{bundle} has no {SEAL_SIG}: there is nothing to timestamp",
                              hint="run 'evidencekit verify' to see every problem")
        return opened.read_small(SEAL_SIG)
    finally:
        opened.close()


def _append(bundle: Path, fd: int, tokens: list[tuple[str, timestamps.Token]]
            ) -> list[tuple[str, str, timestamps.Token]]:
    """Replace the end-of-archive blocks by the new timestamp members and a new end. Each
    member's header time is its token's genTime (whole seconds), which verify checks."""
    from evidencekit.custody.append import append_outer_members
    from evidencekit.format.documents import timestamp_member
    from evidencekit.format.reader import open_bundle, timestamp_names

    opened = open_bundle(bundle)
    try:
        first = len(timestamp_names(opened)) + 1
    finally:
        opened.close()
    names = [timestamp_member(first + offset) for offset in range(len(tokens))]
    append_outer_members(bundle, fd, [
        (name, token.der, int(token.gen_time.timestamp()))
        for name, (_, token) in zip(names, tokens, strict=True)])
    added = [(name, url, token) for name, (url, token) in zip(names, tokens, strict=True)]
    return added
