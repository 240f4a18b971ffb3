"""`studio.hf`: the public name of the Hugging Face VLM adapters (studio.capture.hf).

Kept because users and earlier issues call `studio.hf.load_vlm`, `tiny_vlm`, `hf_icl_predictor`,
`run_with_cache` (a raw HF model or an adapter; `studio.capture.activations` never imports this),
`families()` (the registry: one class per family in studio/capture/hf/vlms/) and `frames_by_tokens`.
The module object is the implementation package itself, so private names stay reachable; since the split a
monkeypatch must target the defining submodule (e.g. studio.capture.hf.adapter.load_vlm) to reach its callers.
"""

import sys

from studio.capture import hf as _implementation

sys.modules[__name__] = _implementation
