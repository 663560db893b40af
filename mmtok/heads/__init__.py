"""Heads on cached features: the linear probe (default), a small MLP, and prediction."""
