"""GAN latent edits: generator backends, inversion, semantic directions, face edits blended back.

Importing this package registers the tools (gan_edit, gan_inpaint, gan_generate) and
loads no weights: the generator, encoder and directions load on the first call.
"""

from tools.gan import tools as _tools  # noqa: F401  (registers the tools)
