"""Chain of custody (docs/FORMAT.md §6): signed events appended to a bundle (events.py), the
appending itself, which trusted timestamps share (append.py), resealing for a new holder
(resealing.py), and receipts (receipt.py).

Appending never decrypts or rewrites the payload and needs no decryption key; resealing writes
a new bundle whose payload is the same plaintext re-encrypted in one streaming pass.

Import from the module that does the job (``evidencekit.custody.events`` and so on): this
package names nothing itself, so that importing one part does not import the others (events and
resealing import verify, which appending a timestamp, say, does not need).
"""
