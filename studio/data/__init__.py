"""Data that ships with the workbench: digit images from scikit-learn and generators built on them."""
