"""The two planes of the daemon and what joins them: the supervisor (nf run),
the control-plane process, the data-plane process and their local channel."""
