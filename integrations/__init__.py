"""gymwire environments inside other trainers: TRL's GRPOTrainer (`gymwire.integrations.trl`) and
verl's agent loops (`gymwire.integrations.verl`). Each module imports its trainer lazily, so the core
install never needs them; `pip install "gymwire[trl]"` or `"gymwire[verl]"` brings one in."""
