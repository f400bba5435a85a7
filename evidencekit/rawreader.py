"""The base of the raw binary streams evidencekit reads through: a bundle's member, its payload
read ahead or decrypted, an object in a store, a mail server's socket under a time limit.

``io.RawIOBase`` says a stream is not readable unless a class says otherwise, and
``io.BufferedReader`` refuses such a stream: each of them said so on its own before.
"""

from __future__ import annotations

import io


class RawReader(io.RawIOBase):
    """A raw stream that is only read: a subclass gives ``readinto``."""

    def readable(self) -> bool:
        return True
