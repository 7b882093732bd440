"""Local stand-ins that speak the subsets of the Stripe, AvaTax and NetSuite REST
protocols o2c uses, plus o2c's own entitlements and notifications services.

    from sandbox import SandboxServer, create_app
"""

from sandbox.control_client import SandboxControl
from sandbox.server import SandboxServer, create_app, main, serve

__all__ = ["SandboxControl", "SandboxServer", "create_app", "main", "serve"]
