"""The trackers behind core.store.tracking: TensorBoard, MLflow and Weights & Biases, one module each."""
