"""Vision networks for the cognition loss and its evaluation.

- :mod:`.tflite`: TFLite flatbuffer -> equivalent float PyTorch module (training backbone).
- :mod:`.reference`: the same files run as shipped with LiteRT (evaluation).
Both need the optional extra ``rdcodec[cognition]`` (ai-edge-litert).
"""
