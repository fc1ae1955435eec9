"""Operator commands run from a workstation (make redrive, ...), never deployed."""
