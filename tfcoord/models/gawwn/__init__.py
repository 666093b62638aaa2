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
    example_inputs=Ref("tfcoord.models.gawwn.inputs", "example_inputs"),
    calibration_inputs=Ref("tfcoord.models.gawwn.inputs", "data_conditions"),
    # G turns a box into bilinear sampling weights (1 / box size, floor, compare) and keypoints into 16 x 16 map
    # cells (floor(16 v + 0.5), cast to int, compare). In int8 those positions have 8 bits for a 16-cell axis, and a
    # cast of a dequantised 13 (12.96) truncates to 12: on the trained tiny runs, int8 PSNR 16.3 dB (box) and 10.6 dB
    # (keypoints) against Keras; with these ops in float32, 41.8 and 44.1 dB (bench.int8). They are a few thousand
    # values per image; the weighted layers they feed stay int8.
    int8_float_inputs=("box", "keypoints"),
    capabilities=frozenset({Capability.IMAGES}),
)
