"""`studio.icl`: the public names of the ICL episodes and probes, in one place.

Kept because users and earlier issues call `studio.icl.digit_episodes`, `probe`, `visual_reliance`.
The implementations live in studio.data.episodes (episodes), studio.analysis.icl_predictors (planted
predictors, model adapters), studio.analysis.icl_conditions (ablations) and studio.analysis.icl_probe
(evaluate, probe, visual_reliance, bootstraps).
"""

from studio.analysis.icl_conditions import (
    CONDITIONS,
    IMAGE_ABLATIONS,
    apply_condition,
    cond_demo_images_blank,
    cond_demo_images_noise,
    cond_demo_images_removed,
    cond_demo_images_shuffled,
    cond_labels_permuted,
    cond_labels_shuffled,
    cond_original,
    cond_query_image_blank,
    cond_symbols,
)
from studio.analysis.icl_predictors import (
    Predictor,
    episodes_to_arrays,
    last_label_predictor,
    majority_predictor,
    nearest_image_predictor,
    random_demo_label_predictor,
    scores_predictor,
)
from studio.analysis.icl_probe import (
    bootstrap_accuracy,
    evaluate,
    in_demo_labels,
    paired_bootstrap,
    probe,
    probe_many,
    visual_reliance,
)
from studio.data.episodes import (
    DIGIT_WORDS,
    EPISODE_COLOURS,
    EPISODE_RGB,
    EPISODE_SHAPES,
    PRIVATE_META,
    QUESTIONS,
    SYMBOLS,
    Episode,
    Shot,
    answer_vocabulary,
    blind,
    digit_episodes,
    render_scene,
    scene_episodes,
)

__all__ = [
    "CONDITIONS",
    "DIGIT_WORDS",
    "EPISODE_COLOURS",
    "EPISODE_RGB",
    "EPISODE_SHAPES",
    "IMAGE_ABLATIONS",
    "PRIVATE_META",
    "QUESTIONS",
    "SYMBOLS",
    "Episode",
    "Predictor",
    "Shot",
    "answer_vocabulary",
    "apply_condition",
    "blind",
    "bootstrap_accuracy",
    "cond_demo_images_blank",
    "cond_demo_images_noise",
    "cond_demo_images_removed",
    "cond_demo_images_shuffled",
    "cond_labels_permuted",
    "cond_labels_shuffled",
    "cond_original",
    "cond_query_image_blank",
    "cond_symbols",
    "digit_episodes",
    "episodes_to_arrays",
    "evaluate",
    "in_demo_labels",
    "last_label_predictor",
    "majority_predictor",
    "nearest_image_predictor",
    "paired_bootstrap",
    "probe",
    "probe_many",
    "random_demo_label_predictor",
    "render_scene",
    "scene_episodes",
    "scores_predictor",
    "visual_reliance",
]
