"""WebSocket caption server: protocol, sessions, bounded outboxes."""
