"""gymwire environments inside other trainers: TRL's GRPOTrainer (`gymwire.integrations.trl`), verl's
agent loops (`gymwire.integrations.verl`, launched stage by stage by `gymwire.integrations.verl_stages`)
and SkyRL (`gymwire.integrations.skyrl`, `gymwire.integrations.skyrl_train`). This package imports none
of them, and only a module that needs its trainer imports it, so the core install never needs one;
`pip install "gymwire[trl]"`, `"gymwire[verl]"` or `"gymwire[skyrl]"` brings one in."""
