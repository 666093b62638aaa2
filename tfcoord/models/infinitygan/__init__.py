"""InfinityGAN (Lin et al., ICLR 2022): seamless patches of unbounded canvases, style fusion, outpainting."""
