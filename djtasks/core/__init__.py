"""The core: message format, options, registry, context, states, exceptions, settings (stdlib and Django only)."""
