"""The char-CNN-RNN text encoder of GAWWN, trained by structured joint embedding (Reed et al., CVPR 2016)."""

from tfcoord.models.text_encoder import config
from tfcoord.models.spec import ModelSpec, Ref

SPEC = ModelSpec(
    name="text-encoder",
    summary="char-CNN-RNN text encoder (Reed et al., CVPR 2016) for GAWWN's captions",
    sections=config.SECTIONS,
    default_preset=config.DEFAULT_PRESET,
    model=Ref("tfcoord.models.text_encoder.model", "TextEncoderModel"),
    generate_options=Ref("tfcoord.models.text_encoder.generate"),
)
