-- Read the clock of the node that holds KEYS[1] (a coordination key, so every host asks the
-- same node of a cluster). KEYS[1] is not read: it only routes the call.
-- Returns TIME's {seconds, microseconds}.
return redis.call('TIME')
