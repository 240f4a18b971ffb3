"""workbench layer (see CONTRIBUTING.md)."""
