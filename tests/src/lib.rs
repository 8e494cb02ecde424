//! Harness for the end-to-end tests: starts the simulator, gateways, Redis and real clients.
