"""Formats shared by several producers and consumers: the deploy artifact tag, spike-count
recordings and the spike difference (docs/design.md#layers)."""
