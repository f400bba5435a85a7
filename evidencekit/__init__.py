"""evidencekit: preserve digital evidence in one signed, encrypted, verifiable bundle."""

__version__ = "0.1.0"
