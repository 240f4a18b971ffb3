"""analysis layer (see CONTRIBUTING.md)."""
