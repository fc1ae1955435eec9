"""Vendor sandboxes: real HTTP servers on 127.0.0.1 that follow the vendors' documented contracts."""
