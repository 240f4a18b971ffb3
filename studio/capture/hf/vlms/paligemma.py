"""PaliGemma (PaliGemmaForConditionalGeneration): a SigLIP tower and a Gemma decoder, not interleaved.

Every image's tokens go first, then BOS, the text and a newline (the prefix the model was trained on);
the "<image>" placeholders only count the images.
"""

from __future__ import annotations

from studio.capture.hf.family import IMAGE, Family
from studio.capture.hf.registry import register


@register
class PaliGemma(Family):
    name = "paligemma"
    model_class = "PaliGemmaForConditionalGeneration"
    model_types = ("paligemma",)
    interleaved = False

    def manual_texts(self, texts, image_size, bos):
        n = self.tokens_per_image(image_size)  # image tokens first, then BOS, the text and a newline
        return [
            IMAGE * (n * t.count(IMAGE)) + bos + " ".join(t.replace(IMAGE, " ").split()) + "\n" for t in texts
        ], False

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        hidden = text["hidden_size"]
        return tf.PaliGemmaConfig(
            text_config=tf.GemmaConfig(**text, head_dim=hidden // 4),
            vision_config=tf.SiglipVisionConfig(**vision, projection_dim=hidden),
            image_token_index=ids[IMAGE],
            projection_dim=hidden,
            pad_token_id=text["pad_token_id"],
        )
