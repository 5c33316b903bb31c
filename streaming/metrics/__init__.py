"""Latency (SimulEval 1.1.x definitions), flicker and quality metrics."""
