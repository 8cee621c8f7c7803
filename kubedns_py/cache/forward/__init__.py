"""Forwarding: routes, the --dns-forward-max budget, the table of questions in flight, the upstream
sockets on random ports, health, and loop detection."""
