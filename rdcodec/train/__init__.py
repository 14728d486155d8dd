"""Training: crop cache (``data``), loops for the base and residual stages (``loop``)."""
