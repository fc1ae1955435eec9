"""The Docker-free local stack (moto, local API, pollers, vendor sandboxes)."""
