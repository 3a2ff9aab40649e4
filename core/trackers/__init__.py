"""The trackers behind core.tracking: TensorBoard, MLflow and Weights & Biases, one module each."""
