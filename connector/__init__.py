"""The connector: local one-stop systems → Vietnam's National Public Service Portal."""

__version__ = "0.1.0"
