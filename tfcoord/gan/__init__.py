"""The GAN training recipe every model composes, as pure functions (in the manner of TF-GAN's ``losses_impl``).

- :mod:`.losses`: adversarial losses per example (logistic / non-saturating, WGAN with both gradient-penalty
  variants, GAN-CLS);
- :mod:`.regularizers`: R1, path length, mode-seeking diversity;
- :mod:`.optimizers`: StyleGAN2's lazy-regularisation Adam;
- :mod:`.ema`: the generator's moving average;
- :mod:`.distribute`: averaging over the global batch and reductions across replicas.

Per-example terms have shape (B,) for this replica's batch; the caller averages them over the *global* batch
(:func:`.distribute.average`), so one replica and N replicas train alike (tensorflow.md §8.3). A model's training
step composes these and writes none of them again.
"""
