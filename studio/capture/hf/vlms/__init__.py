"""One module per VLM family, each one `Family` subclass decorated with `@register`.

Adding a family: copy the closest module here (llava.py for a CLIP/SigLIP tower and a projector,
qwen2_vl.py for dynamic-resolution patches), set its class attributes, override what differs, and add
its case to tests/test_hf_families.py. `studio.capture.hf.registry` imports every module of this package.
"""
