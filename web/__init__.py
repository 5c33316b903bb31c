"""Drivers that face people and networks: WebSocket server and client, Gradio page, static pages."""
