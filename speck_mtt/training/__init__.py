"""Training: recipes, the training loop, and the training-time model surgery that makes a network
Speck-ready (BN calibration and absorption, the bias-removal phase)."""
