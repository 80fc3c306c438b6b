"""A private Tor network (own directory authorities and relays) on one machine or a LAN."""
