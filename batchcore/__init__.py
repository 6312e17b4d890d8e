"""Shared core of the gateway and the workers: settings, database, run store, Workbench client."""
