"""Simultaneous translation policies (each implements :class:`streaming.policy.Policy`)."""
