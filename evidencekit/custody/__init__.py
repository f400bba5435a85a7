"""Chain of custody (docs/FORMAT.md §6): signed events appended to a bundle (events.py), the
appending itself, which trusted timestamps share (append.py), resealing for a new holder
(resealing.py), and receipts (receipt.py).

Appending never decrypts or rewrites the payload and needs no decryption key; resealing writes
a new bundle whose payload is the same plaintext re-encrypted in one streaming pass.

The names below were evidencekit.custody's when it was one module; they stay importable from
here for code written before the split. New code imports them from their module.
"""

import importlib
from typing import Any

# name → its module, imported when the name is first asked for (events and resealing import
# verify, which appending a timestamp, say, does not need)
_HOMES = {
    **dict.fromkeys(("append_failed", "append_outer_members", "appendable", "check_appendable",
                     "require_intact"), "append"),
    **dict.fromkeys(("APPENDABLE", "COUNTERPARTY_OPTION", "EventRequest", "append_event",
                     "build_event", "checked_for_note", "counterparty_for", "counterparty_text",
                     "event_summary", "signer_of"), "events"),
    **dict.fromkeys(("RECEIPT_FIELDS", "RECEIPT_TITLE", "ReceiptCheck", "check_receipt",
                     "parse_receipt", "receipt_fields", "receipt_text"), "receipt"),
    **dict.fromkeys(("ResealResult", "reseal"), "resealing"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
