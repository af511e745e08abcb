"""One-shot commands that sit beside server.py: they may use config, store and node, as it does."""
