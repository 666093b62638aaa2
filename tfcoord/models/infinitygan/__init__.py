"""InfinityGAN (Lin et al., ICLR 2022): seamless patches of unbounded canvases, style fusion, outpainting."""

from tfcoord.models.infinitygan import config
from tfcoord.models.spec import Capability, ModelSpec, Ref

SPEC = ModelSpec(
    name="infinitygan",
    summary="InfinityGAN (Lin et al., ICLR 2022): seamless patches of unbounded canvases",
    sections=config.SECTIONS,
    default_preset=config.DEFAULT_PRESET,
    model=Ref("tfcoord.models.infinitygan.model", "InfinityGan"),
    generate_options=Ref("tfcoord.models.infinitygan.generate"),
    converter=Ref("tfcoord.models.infinitygan.convert"),
    tile_coordinates={"infinitygan": Ref("tfcoord.models.infinitygan.geometry", "tile_coordinates")},
    tile_recipe_keys={"infinitygan": ("window", "stride", "coordinate_system", "vertical_step",
                                      "horizontal_period")},
    example_inputs=Ref("tfcoord.models.infinitygan.infinite", "example_inputs"),
    capabilities=frozenset({Capability.IMAGES, Capability.CANVAS, Capability.TILES, Capability.PATCHES}),
)
