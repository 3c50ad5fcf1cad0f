"""The heads of the Hello, World! example."""
