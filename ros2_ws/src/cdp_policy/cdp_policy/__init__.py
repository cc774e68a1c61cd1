"""CDP policy node: exported ONNX sampler -> time-stamped action chunks at the control rate."""
