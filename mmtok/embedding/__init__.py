"""The embed step: projectors, the frozen shared encoder, pooling and the feature store."""
