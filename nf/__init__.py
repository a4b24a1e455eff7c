"""nf: a NETCONF/YANG-managed serial-over-IP network function."""

__version__ = "0.1.0"
