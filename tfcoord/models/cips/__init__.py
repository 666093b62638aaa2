"""CIPS: Image Generators with Conditionally-Independent Pixel Synthesis (Anokhin et al., CVPR 2021).

``config`` (sections), ``generator`` (CIPSskip / CIPSres), ``model`` (training, generation,
serving), ``applications`` (tiles, super-resolution, foveation, panoramas, style fields),
``canvas`` (the canvas-engine renderer), ``generate`` (CLI options), ``convert`` (official
checkpoints). The discriminator is :class:`tfcoord.layers.stylegan_discriminator.StyleGan2Discriminator`.
"""
