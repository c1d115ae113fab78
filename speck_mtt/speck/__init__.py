"""Speck preparation: BN absorption and bias removal, DynapCNN layout, the Speck2e devkit."""
