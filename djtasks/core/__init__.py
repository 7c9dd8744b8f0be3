"""The core: message format, options, registry, context, states, exceptions, settings (stdlib and Django only)."""

# Every djtasks module logs through the "djtasks" logger; installing its escaping filter here
# covers them all, whichever is imported first.
from djtasks.core import logs as logs
