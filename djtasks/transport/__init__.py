"""Redis, the transport: queues and claims, scripts, coordination, streams. The only importer of redis."""
