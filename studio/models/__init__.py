"""Models: frozen pretrained encoders, token/frame selection, tiny LMs, and their losses."""
