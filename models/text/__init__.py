"""Text data and tokenisation shared by the translation model families."""
