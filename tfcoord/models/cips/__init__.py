"""CIPS: Image Generators with Conditionally-Independent Pixel Synthesis (Anokhin et al., CVPR 2021).

``config`` (sections), ``coordinates``, ``generator`` (CIPSskip / CIPSres; the discriminator is
:class:`tfcoord.layers.stylegan_discriminator.StyleGan2Discriminator`), ``training`` (the step), ``sampling``
(latents, truncation, rendering at any coordinates), ``applications`` (tiles, super-resolution, foveation,
panoramas, style fields), ``canvas`` (the canvas-engine renderer), ``serving``, ``generate`` (CLI options),
``convert`` (official checkpoints); ``model`` wires them for the trainer, the generator CLI and the exporter.
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
