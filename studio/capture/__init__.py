"""capture layer (see CONTRIBUTING.md)."""
