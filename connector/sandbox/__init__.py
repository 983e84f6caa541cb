"""The sandbox portal: a local, strict implementation of the portal's REST profile.

Operators try a mapping against it before go-live; the demo, the daemon's crash tests and
the benchmarks push to it. It implements the contract on its own (it shares no validation
code with the connector), so a connector bug cannot hide behind a sandbox with the same bug.
"""

from connector.sandbox.app import create_app
from connector.sandbox.config import SandboxConfig
from connector.sandbox.server import SandboxThread, serve

__all__ = ["SandboxConfig", "SandboxThread", "create_app", "serve"]
