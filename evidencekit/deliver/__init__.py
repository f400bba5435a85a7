"""Destinations for finished bundles, behind one interface (:class:`Destination`): a local file
(:mod:`evidencekit.deliver.local`) and an S3 evidence store (:mod:`evidencekit.deliver.s3`).

A delivery of an existing bundle is recorded in it as a ``transferred`` custody event whose
details name where it went (docs/FORMAT.md §6).
"""

from evidencekit.deliver.base import (
    BundleFacts,
    Delivery,
    Destination,
    already_recorded,
    checked_facts,
    record_delivery,
)
from evidencekit.deliver.local import LocalFile
from evidencekit.deliver.target import StreamTarget

__all__ = ["BundleFacts", "Delivery", "Destination", "LocalFile", "StreamTarget", "already_recorded",
           "checked_facts", "record_delivery"]
