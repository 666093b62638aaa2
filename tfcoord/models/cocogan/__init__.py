"""COCO-GAN: Generation by Parts via Conditional Coordinating (Lin et al., ICCV 2019)."""

from tfcoord.models.cocogan import config
from tfcoord.models.spec import Capability, ModelSpec, Ref

SPEC = ModelSpec(
    name="cocogan",
    summary="COCO-GAN (Lin et al., ICCV 2019): micro patches by coordinates, assembled into macro patches",
    sections=config.SECTIONS,
    default_preset=config.DEFAULT_PRESET,
    model=Ref("tfcoord.models.cocogan.model", "CocoGan"),
    generate_options=Ref("tfcoord.models.cocogan.generate"),
    converter=Ref("tfcoord.models.cocogan.convert"),
    tile_coordinates={"cocogan": Ref("tfcoord.models.cocogan.coordinates", "tile_coordinates")},
    capabilities=frozenset({Capability.IMAGES, Capability.CANVAS, Capability.TILES}),
)
