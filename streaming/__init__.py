"""The I/O-free streaming core: source/target states, policies, caption state, latency bookkeeping, metrics.

Nothing here opens files or sockets, starts threads or imports torch; drivers (CLI, server, Gradio)
feed it and read its events.
"""
