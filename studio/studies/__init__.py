"""studies layer (see CONTRIBUTING.md)."""
