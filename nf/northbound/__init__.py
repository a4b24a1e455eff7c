"""NETCONF northbound: the adapter between the protocol library and the pure core."""
