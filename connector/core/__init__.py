"""Pure logic: mapping, validation and delivery decisions. No I/O, no clock reads.

Nothing in this package may import httpx, zeep, sqlalchemy, apscheduler or touch files;
`tests/core/test_purity.py` checks it.
"""
