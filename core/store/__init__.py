"""The run store: a run is a folder (config.json, status.json, metrics.jsonl, checkpoints, images),
written atomically, with its provenance, and forwarded to the trackers people already use."""
