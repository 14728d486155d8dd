"""Model: transforms, gain units, residual branch and the full RDC model."""

import warnings

with warnings.catch_warnings():
    # compressai 1.2.8 uses torch.jit.script at import time, which newer torch deprecates
    warnings.simplefilter("ignore", FutureWarning)
    import compressai.entropy_models  # noqa: F401
    import compressai.layers  # noqa: F401
