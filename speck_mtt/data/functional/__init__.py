"""Pure functions behind the data classes (tonic style): events in, events/frames out, no state."""
