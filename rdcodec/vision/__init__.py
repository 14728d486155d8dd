"""Vision networks for the cognition loss and its evaluation.

- :mod:`.tflite`: TFLite flatbuffer -> equivalent float PyTorch module (training backbone).
- :mod:`.reference`: the same files run as shipped with LiteRT (evaluation).
- :mod:`.features`: a network seen through its feature maps, and ``D_feat`` (stage I's feature
  term; the encoder's refinement for machines, ``rdcodec encode --machines``).
Both need the optional extra ``rdcodec[cognition]`` (ai-edge-litert).
"""
