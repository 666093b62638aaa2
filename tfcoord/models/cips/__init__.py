"""CIPS: Image Generators with Conditionally-Independent Pixel Synthesis (Anokhin et al., CVPR 2021).

``config`` (sections), ``generator`` (CIPSskip / CIPSres), ``model`` (training, generation,
serving), ``applications`` (tiles, super-resolution, foveation, panoramas, style fields),
``canvas`` (the canvas-engine renderer), ``generate`` (CLI options), ``convert`` (official
checkpoints). The discriminator is :class:`tfcoord.layers.stylegan_discriminator.StyleGan2Discriminator`.
"""

from tfcoord.models.cips import config
from tfcoord.models.spec import Capability, ModelSpec, Ref

SPEC = ModelSpec(
    name="cips",
    summary="CIPS (Anokhin et al., CVPR 2021): every pixel from its coordinates and one style",
    sections=config.SECTIONS,
    default_preset=config.DEFAULT_PRESET,
    model=Ref("tfcoord.models.cips.model", "Cips"),
    generate_options=Ref("tfcoord.models.cips.generate"),
    converter=Ref("tfcoord.models.cips.convert"),
    tile_coordinates={"cips": Ref("tfcoord.models.cips.coordinates", "tile_coordinates")},
    capabilities=frozenset({Capability.IMAGES, Capability.CANVAS, Capability.TILES}),
)
