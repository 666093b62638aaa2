from setuptools import find_packages, setup

setup(
    name="tfcoord",
    version="0.1.0",
    description="Coordinate-conditioned image generation (COCO-GAN, CIPS, GAWWN, InfinityGAN) in TensorFlow 2 / Keras 3",
    python_requires=">=3.10",
    packages=find_packages(include=["tfcoord", "tfcoord.*", "export", "export.*"]) + ["tfcoord.configs"],
    # The presets live at the top of the repository (configs/<model>/<name>.yaml) and are
    # installed inside the package so that a non-editable install finds them too.
    package_dir={"tfcoord.configs": "configs"},
    package_data={"tfcoord.configs": ["*/*.yaml"]},
    install_requires=[
        "tensorflow==2.21.*",
        "keras>=3.12",
        "tensorflow-datasets",
        "tensorflow-serving-api==2.21.*",
        "ai-edge-litert",
        "numpy",
        "pillow",
        "pyyaml",
        "tqdm",
        "tensorboard",
        "pypng",
        "tifffile",
        "scipy",
    ],
    extras_require={
        "test": ["pytest", "hypothesis", "psutil", "jax", "jsonschema"],  # jax: the generators are also tested on Keras's JAX backend
        "convert": ["torch"],
    },
)
