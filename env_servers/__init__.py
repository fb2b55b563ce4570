"""Environment servers: the SDK, the conformance suite and one sub-package per environment."""
