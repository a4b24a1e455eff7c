"""The relay runtime: the anyio side that applies configuration and relays bytes."""
