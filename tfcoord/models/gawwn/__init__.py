"""GAWWN: Learning What and Where to Draw (Reed et al., NeurIPS 2016)."""

from tfcoord.models.gawwn import config
from tfcoord.models.spec import Capability, ModelSpec, Ref

SPEC = ModelSpec(
    name="gawwn",
    summary="GAWWN (Reed et al., NeurIPS 2016): a bird for a caption, drawn into a box or at keypoints",
    sections=config.SECTIONS,
    default_preset=config.DEFAULT_PRESET,
    model=Ref("tfcoord.models.gawwn.model", "Gawwn"),
    generate_options=Ref("tfcoord.models.gawwn.generate"),
    capabilities=frozenset({Capability.IMAGES}),
)
