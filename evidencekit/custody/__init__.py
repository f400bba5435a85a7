"""Chain of custody (docs/FORMAT.md §6): signed events appended to a bundle (events.py), the
appending itself, which trusted timestamps share (append.py), resealing for a new holder
(resealing.py), and receipts (receipt.py).

Appending never decrypts or rewrites the payload and needs no decryption key; resealing writes
a new bundle whose payload is the same plaintext re-encrypted in one streaming pass.

The names below were evidencekit.custody's when it was one module; they stay importable from
here for code written before the split. New code imports them from their module.
"""

from evidencekit.custody.append import (
    append_failed,
    append_outer_members,
    appendable,
    check_appendable,
    require_intact,
)
from evidencekit.custody.events import (
    APPENDABLE,
    COUNTERPARTY_OPTION,
    EventRequest,
    append_event,
    build_event,
    checked_for_note,
    counterparty_for,
    counterparty_text,
    event_summary,
    signer_of,
)
from evidencekit.custody.receipt import (
    RECEIPT_FIELDS,
    RECEIPT_TITLE,
    ReceiptCheck,
    check_receipt,
    parse_receipt,
    receipt_fields,
    receipt_text,
)
from evidencekit.custody.resealing import ResealResult, reseal

__all__ = ["APPENDABLE", "COUNTERPARTY_OPTION", "RECEIPT_FIELDS", "RECEIPT_TITLE", "EventRequest",
           "ReceiptCheck", "ResealResult", "append_event", "append_failed", "append_outer_members",
           "appendable", "build_event", "check_appendable", "check_receipt", "checked_for_note",
           "counterparty_for", "counterparty_text", "event_summary", "parse_receipt",
           "receipt_fields", "receipt_text", "require_intact", "reseal", "signer_of"]
