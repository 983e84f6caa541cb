"""The demo local one-stop system: an SQLite database shaped like a real one, kept alive.

`generate.init_demo` builds the history; `live.DemoActivity` makes dossiers arrive and
advance so the connector always has something to pull.
"""
