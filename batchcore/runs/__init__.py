"""Pipeline runs: the typed run and its lifecycle, the store, the workflow contract."""
