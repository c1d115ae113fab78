"""The Speck2e side: DynapCNN layout through sinabs and its fit checks, deploy, the devkit over
samna, spike events to and from the chip, NIR import/export."""
