"""Export to ONNX, FP16 conversion and TensorRT engine building (depends on ``realtime``)."""
