"""Gemma 3 (Gemma3ForConditionalGeneration): a SigLIP tower average-pooled to mm_tokens_per_image tokens
(256 in the released checkpoints, whatever the image) and a Gemma 3 decoder with sliding-window layers.

One image is `<start_of_image>` + `<image_soft_token>` x mm_tokens_per_image + `<end_of_image>` (the
processor also puts blank lines around it, and may add pan-and-scan crops as more images); the model
reads token_type_ids (1 at image tokens) to let an image's tokens attend to each other both ways.
"""

from __future__ import annotations

from studio.capture.hf.family import IMAGE, Family
from studio.capture.hf.registry import register

BOI, EOI = "<start_of_image>", "<end_of_image>"


@register
class Gemma3(Family):
    name = "gemma3"
    model_class = "Gemma3ForConditionalGeneration"
    model_types = ("gemma3",)
    processor_image = BOI
    nested_images = True
    specials = (BOI, EOI)
    resolution = "fixed: mm_tokens_per_image per image (pan-and-scan crops add whole images)"

    def tokens_per_image(self, image_size):
        return int(self.config.mm_tokens_per_image)

    def expand_image(self, image_size):
        return BOI + IMAGE * self.tokens_per_image(image_size) + EOI

    def finish(self, out, counts):
        if "token_type_ids" not in out:
            out["token_type_ids"] = (out["input_ids"] == self.image_token_id).long()
        return out

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        head_dim = text["hidden_size"] // text["num_attention_heads"]
        return tf.Gemma3Config(
            text_config=tf.Gemma3TextConfig(
                **text, head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=64
            ),
            vision_config=tf.SiglipVisionConfig(**vision),
            mm_tokens_per_image=(image_size // patch // 2) ** 2,  # pooled 2x2, as 64x64 patches -> 16x16
            boi_token_index=ids[BOI],
            eoi_token_index=ids[EOI],
            image_token_index=ids[IMAGE],
            pad_token_id=text["pad_token_id"],
        )

    @classmethod
    def tiny_processor(cls, tokenizer, *, image_size, patch):
        import transformers as tf

        # Gemma3Processor reads boi_token, eoi_token and image_token off its tokenizer
        named = tf.PreTrainedTokenizerFast(
            tokenizer_object=tokenizer.backend_tokenizer,
            bos_token=tokenizer.bos_token,
            eos_token=tokenizer.eos_token,
            unk_token=tokenizer.unk_token,
            pad_token=tokenizer.pad_token,
            extra_special_tokens={"boi_token": BOI, "eoi_token": EOI, "image_token": IMAGE},
        )
        ip = tf.Gemma3ImageProcessor(size={"height": image_size, "width": image_size}, do_pan_and_scan=False)
        return tf.Gemma3Processor(image_processor=ip, tokenizer=named, image_seq_length=(image_size // patch // 2) ** 2)
